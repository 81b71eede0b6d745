"""Short reprs and plain HTML tables for the objects a notebook user holds.

Every ``__repr__`` of nurturekit's values (a lead, an activity, a score, a scenario, a program,
an engine …) follows one style::

    <StageHistory lead='l1' current='interest' since=2026-04-02T09:00Z, 3 moves>

- Angle brackets: the repr is a summary to recognise the object by, not code that rebuilds it
  (its attrs fields, or ``attrs.asdict``, give everything).
- The class name, then ``key=value`` pairs: first what identifies the object (an id, a name,
  its lead), then its main values. A text is quoted and cut to a few dozen characters, ending
  in "…" (:func:`cut`; line breaks read as spaces); a time is UTC to the minute, or to the
  second when it has seconds (``2026-04-01T09:00Z``); a list of names shows its first few
  (``['awareness', 'interest', …+3]``); whether something is there at all reads ``yes`` or
  ``no`` (``consent=yes``); an enum shows its value (``status=active``); anything else is
  its Python repr (``stored=True``). A field that does not apply may be left out (an
  enrolment's end time while it runs, a run's zero bounces).
- Then, after a comma, counts of what the object holds: ``, 6 ledger lines, 2 refused``, so
  a score reads ``<Score lead='l1' total=85 fit=45 engagement=40 levels=['MQL']
  temperature='warm' at=2026-04-01T09:00Z, 6 ledger lines>``.
- At most :data:`MAX_REPR` (200) characters, whatever the size of the object: :func:`summary`
  cuts anything longer, ending in ``…>``.
- Never a secret: adapters are named by their type (``mailer=SmtpMailer``), never by their
  own repr; no password, key or signed token is shown (a mail's repr leaves its body out, as
  its links carry the lead's tokens).

``_repr_html_`` (which Jupyter and other notebooks show) is that repr as a heading over plain
HTML tables (:func:`html_block`, :func:`html_table`, :func:`html_pairs`): every value escaped
with :func:`html.escape`, no script, no style; a table shows at most :data:`MAX_ROWS` rows and
says in its last row how many it left out.

Nothing here runs when an object is built or compared: only when it is shown.
"""

from __future__ import annotations

import enum
import html
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from itertools import islice

__all__ = [
    "MAX_REPR",
    "MAX_ROWS",
    "counted",
    "cut",
    "hours",
    "html_block",
    "html_pairs",
    "html_table",
    "mapping",
    "moment",
    "names",
    "percent",
    "quoted",
    "summary",
    "yes_no",
]

#: The longest repr, in characters.
MAX_REPR = 200
#: The most rows one HTML table shows.
MAX_ROWS = 500


def cut(text: str, limit: int = 40) -> str:
    """``text`` on one line (runs of white space as one space), cut to at most ``limit``
    characters with "…" at the end when it was longer.

    >>> cut("Bonjour\\n  tout le monde", 12)
    'Bonjour tou…'
    >>> cut("short")
    'short'
    """
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: max(limit - 1, 0)] + "…"


def quoted(value: str | None, limit: int = 40) -> str:
    """A text as a repr shows it: quoted and :func:`cut`; ``None`` as ``None``.

    >>> quoted("whitepaper follow-up"), quoted(None), quoted("a" * 50, 10)
    ("'whitepaper follow-up'", 'None', "'aaaaaaaaa…'")
    """
    return "None" if value is None else repr(cut(value, limit))


def moment(value: datetime | None) -> str:
    """A time in UTC to the minute, or to the second when it has seconds; ``None`` as ``None``.

    >>> moment(datetime(2026, 4, 1, 9, 0, tzinfo=timezone.utc))
    '2026-04-01T09:00Z'
    >>> moment(datetime(2026, 4, 1, 9, 0, 30, 5, tzinfo=timezone.utc))
    '2026-04-01T09:00:30Z'
    """
    if value is None:
        return "None"
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    shape = "%Y-%m-%dT%H:%M:%SZ" if value.second or value.microsecond else "%Y-%m-%dT%H:%MZ"
    return value.strftime(shape)


def names(items: Iterable[str], shown: int = 4, limit: int = 24) -> str:
    """The first ``shown`` names, each :func:`quoted`, and how many more there are.

    >>> names(["awareness", "interest", "consideration", "decision", "customer", "dormant"])
    "['awareness', 'interest', 'consideration', 'decision', …+2]"
    >>> names([])
    '[]'
    """
    listed = list(items)
    head = [quoted(item, limit) for item in listed[:shown]]
    if len(listed) > shown:
        head.append(f"…+{len(listed) - shown}")
    return "[" + ", ".join(head) + "]"


def _item(value: object, limit: int) -> str:
    return quoted(value, limit) if isinstance(value, str) else cut(repr(value), limit)


def mapping(items: Mapping[str, object], shown: int = 3, limit: int = 24) -> str:
    """The first ``shown`` entries of ``items``, names and texts :func:`quoted`, and how many
    more there are.

    >>> mapping({"page": "/pricing", "ref": "x" * 40, "n": 3, "m": True})
    "{'page': '/pricing', 'ref': 'xxxxxxxxxxxxxxxxxxxxxxx…', 'n': 3, …+1}"
    """
    head = [
        f"{quoted(key, limit)}: {_item(value, limit)}"
        for key, value in islice(items.items(), shown)
    ]
    if len(items) > shown:
        head.append(f"…+{len(items) - shown}")
    return "{" + ", ".join(head) + "}"


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """``'1 move'``, ``'3 moves'``; ``plural`` when adding an "s" is wrong.

    >>> counted(1, "move"), counted(3, "move"), counted(2, "ledger line")
    ('1 move', '3 moves', '2 ledger lines')
    """
    return f"{number} {noun if number == 1 else (plural or noun + 's')}"


def yes_no(flag: object) -> str:
    """``'yes'`` when ``flag`` is there (not ``None``, not false), else ``'no'``."""
    return "no" if flag is None or flag is False else "yes"


def percent(rate: float | None) -> str:
    """A rate from 0 to 1 as a percentage with one decimal; ``None`` as ``None``.

    >>> percent(0.4167), percent(None)
    ('41.7%', 'None')
    """
    return "None" if rate is None else f"{rate * 100:.1f}%"


def hours(value: timedelta | None) -> str:
    """A duration in hours with one decimal; ``None`` as ``None``.

    >>> hours(timedelta(hours=3, minutes=15)), hours(None)
    ('3.2h', 'None')
    """
    return "None" if value is None else f"{value.total_seconds() / 3600:.1f}h"


def _shown(value: object) -> str:
    """A field's value as a repr shows it, by the rules above."""
    if value is None:
        return "None"
    if isinstance(value, str):
        return quoted(value)
    if isinstance(value, datetime):
        return moment(value)
    if isinstance(value, enum.Enum):
        return str(value.value)
    return cut(repr(value), 60)


def summary(name: str, fields: Iterable[tuple[str, object]], counts: Iterable[str] = ()) -> str:
    """``<name key=value …, count, count>``, at most :data:`MAX_REPR` characters.

    A field's value that is a ``str`` is taken as already shown (made with :func:`quoted`,
    :func:`names` …); any other value is shown by its kind (a time with :func:`moment`, an enum
    by its value, ``None`` as ``None``, anything else by its repr). When it all would be too
    long, the fields are cut (ending in "…") so that the counts still show.

    >>> summary("Lead", [("id", quoted("l1")), ("consent", "yes")], [counted(5, "attribute")])
    "<Lead id='l1' consent=yes, 5 attributes>"
    >>> big = summary("Big", [("text", quoted("x" * 900, 900))], ["3 things"])
    >>> len(big), big[-15:]
    (200, 'xxx…, 3 things>')
    """
    shown_fields = (
        f"{key}={value if isinstance(value, str) else _shown(value)}" for key, value in fields
    )
    head = " ".join([name, *shown_fields])
    notes = list(counts)
    tail = ", " + ", ".join(notes) if notes else ""
    room = MAX_REPR - 2 - len(tail)
    if len(head) > room:
        head = head[: max(room - 1, len(name))] + "…"
    text = f"<{head}{tail}>"
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 2] + "…>"


# --------------------------------------------------------------------------- HTML


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return moment(value)
    if isinstance(value, enum.Enum):
        value = value.value
    lines = html.escape(str(value)).split("\n")
    # An explanation's tree is indented with spaces, which HTML would fold away.
    return "<br>".join(
        "&nbsp;" * (len(line) - len(line.lstrip(" "))) + line.lstrip(" ") for line in lines
    )


def html_table(
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    total: int | None = None,
    noun: str = "row",
) -> str:
    """A plain ``<table>``: a header row, then at most :data:`MAX_ROWS` of ``rows``; when
    ``total`` says there are more, a last row says how many were left out. Cells are escaped;
    a line break in a cell becomes ``<br>`` (and the spaces that indent the next line
    ``&nbsp;``), a ``None`` an empty cell, a time :func:`moment`.

    >>> print(html_table(["rule", "points"], [("pricing <page>", 10)]))
    <table>
    <thead><tr><th>rule</th><th>points</th></tr></thead>
    <tbody>
    <tr><td>pricing &lt;page&gt;</td><td>10</td></tr>
    </tbody>
    </table>
    """
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    lines = ["<table>", f"<thead><tr>{head}</tr></thead>", "<tbody>"]
    count = 0
    for row in islice(rows, MAX_ROWS):
        lines.append("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>")
        count += 1
    if total is not None and total > count:
        number, nouns = counted(total - count, noun).split(" ", 1)
        left = html.escape(f"… and {number} more {nouns}, not shown")
        lines.append(f'<tr><td colspan="{len(headers)}">{left}</td></tr>')
    lines += ["</tbody>", "</table>"]
    return "\n".join(lines)


def html_pairs(pairs: Iterable[tuple[str, object]]) -> str:
    """A two-column ``<table>`` of names and values, the names as row headers."""
    lines = ["<table>", "<tbody>"]
    for key, value in pairs:
        lines.append(f"<tr><th>{html.escape(key)}</th><td>{_cell(value)}</td></tr>")
    lines += ["</tbody>", "</table>"]
    return "\n".join(lines)


def html_block(title: str, *parts: str) -> str:
    """``title`` (a repr) as an escaped heading over ``parts`` (tables), in one ``<div>``."""
    return "\n".join([f"<div>\n<p><code>{html.escape(title)}</code></p>", *parts, "</div>"])
