"""Export a store's data for reports, BI tools and other systems: leads, activities, hand-offs,
sends and scores as rows of plain values with documented, stable columns, written as CSV or
JSON Lines.

Each export reads the store through the :class:`~nurturekit.ports.Storage` API only (memory,
SQLite and PostgreSQL alike, rows in the same order on each but for the sends) and is a
stream: it gives one row at a time and holds at most a batch of the store in memory, whatever
the store's size. It writes nothing to the store and never reads the clock. It is not a
snapshot: what is written to the store while an export runs may or may not be in it (stop the
workers first for a consistent copy).

(Some 850 lines, most of them the columns' documentation: five exports and the one writer
whose rules for values they share, kept together as the one API a user reads.)

    >>> import io
    >>> from nurturekit import export
    >>> from nurturekit.lead import Lead
    >>> from nurturekit.storage.memory import InMemoryStorage
    >>> storage = InMemoryStorage()
    >>> storage.put_lead(Lead(id="l1", email="tanaka@example.co.jp", name="田中",
    ...                       attributes={"industry": "saas", "employees": 120}))
    >>> rows = export.leads(storage, layout="import")
    >>> rows.columns[-4:]
    ('consent_wording', 'consent_source', 'employees', 'industry')
    >>> out = io.StringIO()
    >>> export.write(rows, out, "csv")
    1
    >>> print(out.getvalue().splitlines()[1])
    l1,tanaka@example.co.jp,田中,,,,,subscribed,,,,,,,120,saas

The exports (each function's docstring says what every column holds):

- :func:`leads` ``(storage, *, since=None, layout="nested")``: :data:`LEAD_COLUMNS` (id,
  email, name, company, source, owner, created_at, contactability, contact_since,
  contact_reason, consent_at, consent_method, consent_wording, consent_source, attributes);
  ``layout="columns"`` gives every attribute a column of its own instead of ``attributes``,
  and ``layout="import"`` writes what ``nurturekit import`` reads back
  (:data:`LEAD_IMPORT_COLUMNS` and a column per attribute).
- :func:`activities` ``(storage, *, since=None)``: :data:`ACTIVITY_COLUMNS` (lead_id, kind,
  at, key, properties), the form ``nurturekit import`` reads from a ``.jsonl`` file.
- :func:`handoffs` ``(storage, *, since=None)``: :data:`HANDOFF_COLUMNS`.
- :func:`sends` ``(storage, *, since=None)``: :data:`SEND_COLUMNS` (the outbox; no bodies;
  in the store's order, which differs between stores).
- :func:`scores` ``(storage, program, *, now)``: :data:`SCORE_COLUMNS`.

Each returns :class:`Rows`: an iterator of dicts, each with exactly the keys of its
``columns``, and :func:`write` writes them to a text stream as CSV (a header, then a line per
row) or JSON Lines (an object per line).

**Values.** A row's values are plain: ``str``, ``int``, ``float``, ``bool``, ``None``, and
for a few columns a list or a dict of these. Times are ISO 8601 strings in UTC with their
offset (``"2026-04-01T09:00:00+00:00"``). In CSV, ``None`` is an empty cell, ``True`` and
``False`` are ``true`` and ``false``, and a list or a dict is JSON text (``["MQL"]``,
``{"page":"/pricing"}``); in JSON Lines they are ``null``, ``true``, ``false``, arrays and
objects. Text is written as it is (UTF-8, ``ensure_ascii=False``): a cell starting with
``=`` is not escaped for spreadsheets.

**Round trip.** ``nurturekit import`` (:func:`nurturekit.importer.import_file`) reads back
the leads and the activities into another store:

    export.write(export.leads(storage), leads_jsonl, "jsonl")
    export.write(export.activities(storage), activities_jsonl, "jsonl")
    # nurturekit import leads.jsonl; nurturekit import activities.jsonl --backfill

gives equal leads and activities: every field of each (``created_at``, the contactability,
the opt-in record, the attributes with their types: str, int, float, bool, ``None``, a list
of str) and the activities' keys, so a second import skips them all as already present.
The leads CSV of ``layout="import"`` (what ``nurturekit export leads`` writes by default)
and the activities CSV import back too, but a CSV cell is text, so for the leads CSV:

- the attributes come back as text: an int, float, bool or list attribute comes back as its
  CSV text (``"3"``, ``"0.5"``, ``"true"``, ``'["a","b"]'``), but ``employees``, an int when
  it is digits (and a str ``employees`` of digits comes back as an int);
- a cell is stripped and an empty one is left out: an attribute that is ``None`` or ``""``
  comes back missing, a text field that is ``""`` comes back ``None``, and one with spaces at
  its ends comes back stripped.

The activities CSV keeps everything, as its ``properties`` column is a JSON object. Use JSON
lines for an exact copy.

Hand-offs, sends and scores are for reading; nothing imports them.
"""

from __future__ import annotations

import csv
import enum
import io
import itertools
import json
import math
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from typing import IO, Any, Final

from nurturekit._time import UTC, aware_utc
from nurturekit.activity import Activity
from nurturekit.errors import InvalidInput, StorageError
from nurturekit.handoff import Handoff
from nurturekit.lead import Lead
from nurturekit.ports import OutboxEntry, Storage
from nurturekit.program import Program

__all__ = [
    "ACTIVITY_COLUMNS",
    "FORMATS",
    "HANDOFF_COLUMNS",
    "LAYOUTS",
    "LEAD_COLUMNS",
    "LEAD_IMPORT_COLUMNS",
    "SCORE_COLUMNS",
    "SEND_COLUMNS",
    "Rows",
    "activities",
    "handoffs",
    "leads",
    "scores",
    "sends",
    "write",
]

#: The columns of :func:`leads` (``layout="nested"``), in order.
LEAD_COLUMNS: Final = (
    "id",
    "email",
    "name",
    "company",
    "source",
    "owner",
    "created_at",
    "contactability",
    "contact_since",
    "contact_reason",
    "consent_at",
    "consent_method",
    "consent_wording",
    "consent_source",
    "attributes",
)
#: The columns of :func:`leads` with ``layout="import"`` before the attributes' columns: the
#: lead's fields, contactability and opt-in record as
#: :func:`nurturekit.importer.import_leads` reads them (those of :data:`LEAD_COLUMNS` but
#: ``attributes``).
LEAD_IMPORT_COLUMNS: Final = LEAD_COLUMNS[:-1]
#: The columns of :func:`activities`, in order.
ACTIVITY_COLUMNS: Final = ("lead_id", "kind", "at", "key", "properties")
#: The columns of :func:`handoffs`, in order.
HANDOFF_COLUMNS: Final = (
    "id",
    "lead_id",
    "owner",
    "status",
    "definition",
    "score",
    "at",
    "deadline",
    "contacted_at",
    "closed_at",
    "outcome_note",
    "escalated_at",
    "notified_at",
    "escalation_notified_at",
    "explanation",
    "score_explanation",
    "recent",
)
#: The columns of :func:`sends`, in order.
SEND_COLUMNS: Final = (
    "key",
    "lead_id",
    "scenario",
    "step",
    "template",
    "to",
    "subject",
    "created_at",
    "status",
    "detail",
    "attempts",
    "updated_at",
    "retry_at",
    "marketing",
    "message_id",
    "enrollment_id",
)
#: The columns of :func:`scores`, in order.
SCORE_COLUMNS: Final = ("lead_id", "total", "fit", "engagement", "temperature", "levels", "stage")
#: The layouts of :func:`leads`.
LAYOUTS: Final = ("nested", "columns", "import")
#: The formats :func:`write` writes.
FORMATS: Final = ("csv", "jsonl")

#: Lead states read per :meth:`~nurturekit.ports.Storage.get_states` call by :func:`scores`.
_STATE_BATCH = 500


class Rows(Iterator[dict[str, Any]]):
    """The rows of one export, one dict at a time, and their ``columns``.

    Each row is a new dict with exactly the keys of ``columns``, in that order. It is an
    iterator: it is read once, as the store is read (nothing is read before the first row is
    asked for, but the attribute names of :func:`leads` with ``layout="columns"`` or
    ``"import"``). ``name`` says what it exports.

    >>> rows = Rows("numbers", ("n",), iter([{"n": 1}, {"n": 2}]))
    >>> rows
    <Rows numbers: n>
    >>> [row["n"] for row in rows]
    [1, 2]
    """

    __slots__ = ("_rows", "columns", "name")

    def __init__(self, name: str, columns: Sequence[str], rows: Iterator[dict[str, Any]]) -> None:
        #: What the rows are: ``"leads"``, ``"activities"`` …
        self.name = name
        #: The rows' keys, in order: the header of a CSV.
        self.columns: tuple[str, ...] = tuple(columns)
        self._rows = rows

    def __iter__(self) -> Rows:
        return self

    def __next__(self) -> dict[str, Any]:
        return next(self._rows)

    def __repr__(self) -> str:
        """The export's name and its columns (the first 8 of them)."""
        shown = ", ".join(self.columns[:8])
        more = f" … ({len(self.columns)} columns)" if len(self.columns) > 8 else ""
        return f"<Rows {self.name}: {shown}{more}>"


# --------------------------------------------------------------------------- values


def _time(value: datetime | None) -> str | None:
    """A stored time as ISO 8601 in UTC with its offset, ``None`` kept."""
    return None if value is None else value.astimezone(UTC).isoformat()


def _since(value: datetime | None, where: str) -> datetime | None:
    return None if value is None else aware_utc(value, f"{where}(since)")


def _plain(value: object) -> Any:
    """An attribute's value as plain data: a tuple of str becomes a list."""
    return list(value) if isinstance(value, tuple) else value


# --------------------------------------------------------------------------- leads


def _lead_row(lead: Lead) -> dict[str, Any]:
    consent = lead.consent
    contact = lead.contactability
    return {
        "id": lead.id,
        "email": lead.email,
        "name": lead.name,
        "company": lead.company,
        "source": lead.source,
        "owner": lead.owner,
        "created_at": _time(lead.created_at),
        "contactability": contact.status.value,
        "contact_since": _time(contact.since),
        "contact_reason": contact.reason,
        "consent_at": None if consent is None else _time(consent.at),
        "consent_method": None if consent is None else consent.method,
        "consent_wording": None if consent is None else consent.wording,
        "consent_source": None if consent is None else consent.source,
    }


def _reserved(layout: str) -> frozenset[str]:
    """The names an attribute cannot have in a layout with a column per attribute."""
    if layout == "import":
        # The importer reads a CSV whose header has lead_id as a file of activities.
        return frozenset((*LEAD_IMPORT_COLUMNS, "lead_id"))
    return frozenset(LEAD_COLUMNS[:-1])


def _attribute_names(
    storage: Storage, since: datetime | None, layout: str, where: str
) -> tuple[str, ...]:
    """The first pass of a layout with a column per attribute: every attribute name of the
    leads exported, sorted by code point."""
    reserved = _reserved(layout)
    names: set[str] = set()
    for lead in _wanted(storage, since):
        for name in lead.attributes:
            if name in names:
                continue
            if name in reserved:
                why = "a column" if name != "lead_id" else "what makes the importer read activities"
                raise InvalidInput(
                    f"{where}(layout)",
                    f"lead {lead.id!r} has an attribute named {name!r}, which is {why} in "
                    f"the {layout!r} layout; export with layout='nested', where the attributes "
                    f"are one object",
                )
            names.add(name)
    return tuple(sorted(names))


def leads(storage: Storage, *, since: datetime | None = None, layout: str = "nested") -> Rows:
    """Every stored lead, ordered by id (as :meth:`Storage.leads` gives them).

    ``since`` (an aware datetime): only the leads created at or after it (``created_at``; a
    lead without one, put in the store without an engine, is left out then).

    Columns (:data:`LEAD_COLUMNS`), ``None`` where the lead has no value:

    - ``id``, ``email``, ``name``, ``company``, ``source``, ``owner``: the lead's fields.
    - ``created_at``: when the engine first stored the lead.
    - ``contactability``: whether mail may go to the address: ``subscribed``,
      ``unsubscribed``, ``bounced`` or ``do_not_contact``; ``contact_since``, since when, and
      ``contact_reason``, why (the activity kind that set it, such as ``unsubscribed``).
    - ``consent_at``, ``consent_method``, ``consent_wording``, ``consent_source``: the opt-in
      record (all ``None`` for a lead without one).
    - ``attributes``: every attribute, by name (sorted), as a dict (an object in JSON Lines,
      JSON text in CSV); a list attribute is a list.

    ``layout`` says where the attributes go:

    - ``"nested"`` (the default): in ``attributes``, as above.
    - ``"columns"``: a column each, named by the attribute, after ``consent_source`` in place
      of ``attributes``; ``None`` for a lead without it.
    - ``"import"``: the columns ``nurturekit import`` reads (:data:`LEAD_IMPORT_COLUMNS`),
      then a column per attribute, as in ``"columns"``, and an attribute named ``lead_id``
      refused (see the module's docstring for what the round trip keeps).

    A column per attribute needs the attributes' names before the first row (a CSV's header
    comes first), so those two layouts read the leads twice: once, when this function is
    called, to collect the attribute names (only the names are kept), then row by row. An
    attribute whose name is also a column of the layout (``created_at``, ``consent_at`` …;
    for ``"import"``, ``lead_id`` too) is an
    :class:`~nurturekit.errors.InvalidInput` then, raised before any row; and a lead that
    gains a new attribute between the two reads is a :class:`~nurturekit.errors.StorageError`
    when its row is reached (export again).

    >>> from nurturekit.lead import Lead
    >>> from nurturekit.storage.memory import InMemoryStorage
    >>> storage = InMemoryStorage()
    >>> storage.put_lead(Lead(id="l1", email="ann@example.com", attributes={"region": "kanto"}))
    >>> row = next(leads(storage))
    >>> row["id"], row["contactability"], row["consent_at"], row["attributes"]
    ('l1', 'subscribed', None, {'region': 'kanto'})
    >>> leads(storage, layout="columns").columns[-2:]
    ('consent_source', 'region')
    """
    where = "export.leads"
    start = _since(since, where)
    if layout not in LAYOUTS:
        raise InvalidInput(
            f"{where}(layout)",
            f"{layout!r} is not a layout; give one of {', '.join(map(repr, LAYOUTS))}",
        )
    if layout == "nested":
        return Rows("leads", LEAD_COLUMNS, _nested_leads(storage, start))
    names = _attribute_names(storage, start, layout, where)
    fixed: tuple[str, ...] = LEAD_COLUMNS[:-1]  # LEAD_IMPORT_COLUMNS too
    return Rows("leads", fixed + names, _flat_leads(storage, start, fixed, names))


def _wanted(storage: Storage, since: datetime | None) -> Iterator[Lead]:
    for lead in storage.leads():
        if since is None or (lead.created_at is not None and lead.created_at >= since):
            yield lead


def _nested_leads(storage: Storage, since: datetime | None) -> Iterator[dict[str, Any]]:
    for lead in _wanted(storage, since):
        row = _lead_row(lead)
        row["attributes"] = {
            name: _plain(lead.attributes[name]) for name in sorted(lead.attributes)
        }
        yield row


def _flat_leads(
    storage: Storage, since: datetime | None, fixed: tuple[str, ...], names: tuple[str, ...]
) -> Iterator[dict[str, Any]]:
    known = frozenset(names)
    for lead in _wanted(storage, since):
        new = [name for name in lead.attributes if name not in known]
        if new:
            raise StorageError(
                f"export.leads: lead {lead.id!r} has the attribute {new[0]!r}, which no lead "
                f"had when the export read the attribute names: the store changed during the "
                f"export; export again (or with layout='nested', which reads the leads once)"
            )
        full = _lead_row(lead)
        row = {column: full[column] for column in fixed}
        attributes = lead.attributes
        for name in names:
            row[name] = _plain(attributes.get(name))
        yield row


# --------------------------------------------------------------------------- activities


def _activity_row(activity: Activity) -> dict[str, Any]:
    properties = activity.properties
    return {
        "lead_id": activity.lead_id,
        "kind": activity.kind,
        "at": _time(activity.at),
        "key": activity.key,
        "properties": {name: properties[name] for name in sorted(properties)},
    }


def activities(storage: Storage, *, since: datetime | None = None) -> Rows:
    """Every activity of every stored lead: the leads by id, each lead's activities ordered by
    ``(at, key)`` (as :meth:`Storage.activities` gives them).

    ``since`` (an aware datetime): only the activities at or after it (``at``).

    Columns (:data:`ACTIVITY_COLUMNS`), the form :meth:`Activity.from_dict
    <nurturekit.activity.Activity.from_dict>` reads, so that ``nurturekit import`` of the
    JSON Lines into another store records equal activities with the same keys:

    - ``lead_id``, ``kind``: whose activity, and what it was.
    - ``at``: when it happened.
    - ``key``: its idempotency key (the store keeps one activity per key).
    - ``properties``: its properties by name (sorted), as a dict (an object in JSON Lines,
      JSON text in CSV); ``{}`` for none.

    The store is read a lead at a time (one :meth:`Storage.activities` call each), so the
    memory held is one lead's history.

    >>> from datetime import datetime, timezone
    >>> from nurturekit.activity import Activity
    >>> from nurturekit.lead import Lead
    >>> from nurturekit.storage.memory import InMemoryStorage
    >>> storage = InMemoryStorage()
    >>> storage.put_lead(Lead(id="l1", email="ann@example.com"))
    >>> storage.add_activity(Activity(lead_id="l1", kind="page_view", key="evt-1",
    ...     at=datetime(2026, 4, 1, 9, 0, tzinfo=timezone.utc), properties={"page": "/pricing"}))
    True
    >>> row = next(activities(storage))
    >>> row["lead_id"], row["kind"], row["at"]
    ('l1', 'page_view', '2026-04-01T09:00:00+00:00')
    >>> row["key"], row["properties"]
    ('evt-1', {'page': '/pricing'})
    """
    start = _since(since, "export.activities")
    return Rows("activities", ACTIVITY_COLUMNS, _activities(storage, start))


def _activities(storage: Storage, since: datetime | None) -> Iterator[dict[str, Any]]:
    for lead in storage.leads():
        history = storage.activities(lead.id)
        first = 0 if since is None else bisect_left(history, since, key=_at)
        for index in range(first, len(history)):
            yield _activity_row(history[index])


def _at(activity: Activity) -> datetime:
    return activity.at


# --------------------------------------------------------------------------- hand-offs


def _handoff_row(handoff: Handoff) -> dict[str, Any]:
    return {
        "id": handoff.id,
        "lead_id": handoff.lead_id,
        "owner": handoff.owner,
        "status": handoff.status.value,
        "definition": handoff.definition,
        "score": handoff.score,
        "at": _time(handoff.at),
        "deadline": _time(handoff.deadline),
        "contacted_at": _time(handoff.contacted_at),
        "closed_at": _time(handoff.closed_at),
        "outcome_note": handoff.outcome_note,
        "escalated_at": _time(handoff.escalated_at),
        "notified_at": _time(handoff.notified_at),
        "escalation_notified_at": _time(handoff.escalation_notified_at),
        "explanation": handoff.explanation,
        "score_explanation": handoff.score_explanation,
        "recent": list(handoff.recent),
    }


def handoffs(storage: Storage, *, since: datetime | None = None) -> Rows:
    """Every hand-off of a lead to sales, ordered by id (as :meth:`Storage.handoffs` gives
    them).

    ``since`` (an aware datetime): only the hand-offs made at or after it (``at``).

    Columns (:data:`HANDOFF_COLUMNS`), ``None`` where a time has not come:

    - ``id``, ``lead_id``: the hand-off and its lead.
    - ``owner``: the salesperson, or ``queue:<name>`` when nobody was assigned.
    - ``status``: ``open`` (no first contact yet), ``contacted``, ``accepted`` (SQL),
      ``recycled`` ("not now") or ``disqualified`` ("not a fit").
    - ``definition``: the MQL definition that fired; ``score``: the score then.
    - ``at``: when the lead was handed over; ``deadline``: the SLA's first-contact deadline;
      ``contacted_at``: the first contact; ``closed_at``: when sales accepted, recycled or
      disqualified it; ``outcome_note``: what sales wrote then (``""`` for nothing).
    - ``escalated_at``: when a breach of the SLA was escalated; ``notified_at`` and
      ``escalation_notified_at``: when the sales system was told of the hand-off and of the
      breach.
    - ``explanation``: why the MQL definition held; ``score_explanation``: the score's lines
      then; ``recent``: the lead's latest activities then, a list of str (JSON text in CSV).

    >>> from nurturekit.storage.memory import InMemoryStorage
    >>> handoffs(InMemoryStorage()).columns[:6]
    ('id', 'lead_id', 'owner', 'status', 'definition', 'score')
    """
    start = _since(since, "export.handoffs")
    return Rows("handoffs", HANDOFF_COLUMNS, _handoffs(storage, start))


def _handoffs(storage: Storage, since: datetime | None) -> Iterator[dict[str, Any]]:
    for handoff in storage.handoffs():
        if since is None or handoff.at >= since:
            yield _handoff_row(handoff)


# --------------------------------------------------------------------------- sends


def _send_row(entry: OutboxEntry) -> dict[str, Any]:
    mail = entry.mail
    return {
        "key": mail.key,
        "lead_id": mail.lead_id,
        "scenario": mail.scenario,
        "step": mail.step,
        "template": mail.template,
        "to": mail.to,
        "subject": mail.subject,
        "created_at": _time(mail.created_at),
        "status": None if entry.status is None else entry.status.value,
        "detail": entry.detail,
        "attempts": entry.attempts,
        "updated_at": _time(entry.updated_at),
        "retry_at": _time(entry.retry_at),
        "marketing": mail.marketing,
        "message_id": mail.message_id,
        "enrollment_id": mail.enrollment_id,
    }


def sends(storage: Storage, *, since: datetime | None = None) -> Rows:
    """Every send in the outbox and what became of it, without its bodies, in the order the
    store gives them: :meth:`Storage.outbox` promises none (the in-memory and SQLite stores
    give the order the sends were written in, PostgreSQL the keys' order), and sorting would
    hold the whole outbox, so sort the file if the order matters (by ``key`` or
    ``created_at``).

    ``since`` (an aware datetime): only the sends written at or after it (``created_at``).

    Columns (:data:`SEND_COLUMNS`):

    - ``key``: the send's idempotency key; ``lead_id``: to whom.
    - ``scenario``, ``step``, ``template``: what sent it (``None`` for a mail outside a
      scenario).
    - ``to``: the address as the lead gave it; ``subject``: the rendered subject.
    - ``created_at``: when the send was written to the outbox.
    - ``status``: what the mailer or the provider said: ``sent``, ``bounced``, ``deferred``,
      ``suppressed``, ``rejected``, ``failed``; ``None`` while not handed over yet.
    - ``detail``: the mailer's or provider's detail (``""`` for none); ``attempts``: the
      hand-overs tried; ``updated_at``: when the status was last set; ``retry_at``: when a
      deferred send may be tried again.
    - ``marketing``: whether it is marketing mail (suppressed by an unsubscribe);
      ``message_id``: its Message-ID; ``enrollment_id``: the scenario enrolment that sent it.

    >>> from nurturekit.storage.memory import InMemoryStorage
    >>> list(sends(InMemoryStorage()))
    []
    """
    start = _since(since, "export.sends")
    return Rows("sends", SEND_COLUMNS, _sends(storage, start))


def _sends(storage: Storage, since: datetime | None) -> Iterator[dict[str, Any]]:
    for entry in storage.outbox():
        if since is None or entry.mail.created_at >= since:
            yield _send_row(entry)


# --------------------------------------------------------------------------- scores


def scores(storage: Storage, program: Program, *, now: datetime) -> Rows:
    """Every stored lead with an engine state and its score at ``now``, ordered by lead id
    (leads without a state, stored without an engine, are left out).

    Columns (:data:`SCORE_COLUMNS`), as :func:`nurturekit.reports.lead_scores` computes them:

    - ``lead_id``: the lead.
    - ``total``, ``fit``, ``engagement``: ``program.scoring.score(state.card, now)``, decay
      applied (ints).
    - ``temperature``: the score's band (``hot``, ``warm``, ``cold`` in the bundled program),
      ``None`` when the model has no bands.
    - ``levels``: the levels the lead holds now, lowest first, a list of str (JSON text in
      CSV: ``["MQL"]``); ``[]`` for none.
    - ``stage``: the stage the lead is in, ``None`` without a stage machine.

    The states are read :data:`500 <_STATE_BATCH>` leads at a time.

    >>> from datetime import datetime, timezone
    >>> from nurturekit.programs import b2b_program
    >>> from nurturekit.storage.memory import InMemoryStorage
    >>> now = datetime(2026, 4, 1, tzinfo=timezone.utc)
    >>> scores(InMemoryStorage(), b2b_program(), now=now).columns
    ('lead_id', 'total', 'fit', 'engagement', 'temperature', 'levels', 'stage')
    """
    where = "export.scores"
    current = aware_utc(now, f"{where}(now)")
    if not isinstance(program, Program):
        raise InvalidInput(
            f"{where}(program)",
            f"expected a Program (nurturekit.programs.b2b_program() or load_program(path)), "
            f"got {type(program).__name__}",
        )
    return Rows("scores", SCORE_COLUMNS, _scores(storage, program, current))


def _scores(storage: Storage, program: Program, now: datetime) -> Iterator[dict[str, Any]]:
    scoring = program.scoring
    ids = (lead.id for lead in storage.leads())
    while batch := list(itertools.islice(ids, _STATE_BATCH)):
        found = storage.get_states(batch)
        for lead_id in batch:
            state = found.get(lead_id)
            if state is None:
                continue
            score = scoring.score(state.card, now)
            yield {
                "lead_id": lead_id,
                "total": score.total,
                "fit": score.fit,
                "engagement": score.engagement,
                "temperature": score.temperature,
                "levels": list(score.levels),
                "stage": state.moves[-1].target if state.moves else None,
            }


# --------------------------------------------------------------------------- writing


def _json_value(value: object, where: str) -> Any:
    """``value`` as JSON data: times in ISO 8601 (UTC), enums by value, tuples as lists."""
    if isinstance(value, enum.Enum):  # before str: a str enum is written by its value
        return _json_value(value.value, where)
    if value is None or isinstance(value, (str, int)):  # bool is an int
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(where, f"{value!r} is not a finite number; JSON has no such value")
        return value
    if isinstance(value, datetime):
        return aware_utc(value, where).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(name): _json_value(item, where) for name, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(item, where) for item in value]
    raise InvalidInput(
        where,
        f"a {type(value).__name__} cannot be written ({value!r:.60}); a row's values are str, "
        f"int, float, bool, None, a datetime, or a list or dict of these",
    )


_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _csv_cell(value: object, where: str) -> str:
    """How a value is written in a CSV cell (see the module's docstring)."""
    if isinstance(value, str) and not isinstance(value, enum.Enum):
        return value
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    plain = _json_value(value, where)
    if isinstance(plain, str):
        return plain
    return _JSON.encode(plain)


def _stream(out: object) -> IO[str]:
    if not callable(getattr(out, "write", None)):
        raise InvalidInput(
            "export.write(out)",
            f"expected a text stream such as sys.stdout or open(path, 'w', encoding='utf-8', "
            f"newline=''), got {type(out).__name__}",
        )
    if isinstance(out, (io.RawIOBase, io.BufferedIOBase)) or "b" in str(getattr(out, "mode", "")):
        raise InvalidInput(
            "export.write(out)",
            "is a binary stream; open the file in text mode: "
            "open(path, 'w', encoding='utf-8', newline='')",
        )
    return out  # type: ignore[return-value]


def _columns(given: object) -> tuple[str, ...]:
    where = "export.write(columns)"
    if isinstance(given, str) or not isinstance(given, Iterable):
        raise InvalidInput(
            where, f"expected a list of column names such as ['id', 'email'], got {given!r:.80}"
        )
    columns = tuple(given)
    for column in columns:
        if not isinstance(column, str) or not column:
            raise InvalidInput(where, f"{column!r} is not a column name; a name is a non-empty str")
    if not columns:
        raise InvalidInput(where, "is empty; name at least one column, or leave it out for all")
    doubled = sorted({column for column in columns if columns.count(column) > 1})
    if doubled:
        raise InvalidInput(where, f"names {', '.join(map(repr, doubled))} twice; name each once")
    return columns


def write(
    rows: Iterable[Mapping[str, Any]],
    out: IO[str],
    format: str = "csv",
    *,
    columns: Sequence[str] | None = None,
) -> int:
    """Write ``rows`` to the text stream ``out`` as they come, and return how many were
    written.

    ``format``: ``"csv"``, a header line of the column names, then a line per row (cells
    quoted where needed, lines ended by ``\\n``); or ``"jsonl"``, a JSON object per line
    (UTF-8 text, not ``\\u`` escapes), keys in the columns' order. Values are written as the
    module's docstring says (``None``: an empty cell, ``null``; a list or a dict: JSON text
    in a CSV cell). A :class:`datetime` (aware) is written in ISO 8601 in UTC, so the rows of
    a :class:`~nurturekit.reports.Report` may be written too.

    ``columns`` picks and orders the columns written; by default, all: those of ``rows`` when
    it is :class:`Rows`, else the keys of the first row. A column of ``rows`` that a row lacks
    is written empty (``null``). With no columns to go by (a plain iterable with no rows),
    nothing is written.

    Open a file with ``open(path, "w", encoding="utf-8", newline="")``: UTF-8 for any text,
    and ``newline=""`` so that a line break inside a cell stays as it is.

    Raises :class:`~nurturekit.errors.InvalidInput` for a format other than those two, a
    binary stream, a column not among the rows' columns, a row that is not a mapping, or a
    value that cannot be written (naming the row and the column).

    >>> import io
    >>> rows = [{"lead_id": "l1", "levels": ["MQL"], "stage": None}]
    >>> out = io.StringIO()
    >>> write(rows, out, "csv")
    1
    >>> print(out.getvalue(), end="")
    lead_id,levels,stage
    l1,"[""MQL""]",
    >>> out = io.StringIO()
    >>> write(rows, out, "jsonl", columns=["stage", "lead_id"])
    1
    >>> print(out.getvalue(), end="")
    {"stage":null,"lead_id":"l1"}
    """
    if format not in FORMATS:
        raise InvalidInput(
            "export.write(format)",
            f"{format!r} is not an export format; give {' or '.join(map(repr, FORMATS))}",
        )
    stream = _stream(out)
    if isinstance(rows, Mapping) or not isinstance(rows, Iterable):
        raise InvalidInput(
            "export.write(rows)",
            f"expected rows, an iterable of dicts such as export.leads(storage), got "
            f"{type(rows).__name__}",
        )
    items: Iterator[Mapping[str, Any]] = iter(rows)
    known: tuple[str, ...] | None = rows.columns if isinstance(rows, Rows) else None
    if known is None:
        first = next(items, None)
        if first is None:
            return 0
        _check_row(first, 1)
        known = tuple(first)
        items = itertools.chain((first,), items)
    if columns is None:
        chosen = known
    else:
        chosen = _columns(columns)
        unknown = [column for column in chosen if column not in known]
        if unknown:
            raise InvalidInput(
                "export.write(columns)",
                f"{', '.join(map(repr, unknown))} {'is' if len(unknown) == 1 else 'are'} not "
                f"among the rows' columns; they are {', '.join(known)}",
            )
    if format == "csv":
        return _write_csv(items, stream, chosen)
    return _write_jsonl(items, stream, chosen)


def _check_row(row: object, number: int) -> None:
    if not isinstance(row, Mapping):
        raise InvalidInput(
            f"export.write(rows), row {number}",
            f"expected a dict of column names to values, got {type(row).__name__} {row!r:.60}",
        )


def _write_csv(rows: Iterator[Mapping[str, Any]], out: IO[str], columns: tuple[str, ...]) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    count = 0
    for count, row in enumerate(rows, 1):
        _check_row(row, count)
        writer.writerow(
            [
                _csv_cell(row.get(column), f"export.write, row {count}, {column}")
                for column in columns
            ]
        )
    return count


def _write_jsonl(rows: Iterator[Mapping[str, Any]], out: IO[str], columns: tuple[str, ...]) -> int:
    count = 0
    for count, row in enumerate(rows, 1):
        _check_row(row, count)
        data = {
            column: _json_value(row.get(column), f"export.write, row {count}, {column}")
            for column in columns
        }
        out.write(_JSON.encode(data))
        out.write("\n")
    return count
