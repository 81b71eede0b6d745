"""Import leads (CSV or JSONL) and activities (JSONL or CSV) into an engine, a batch at a time.

A bad row never stops an import: it is reported as a :class:`RowError` (the file's line, the
column and the reason) and the good rows are kept. That holds for hostile rows too: a line that
is not UTF-8, a number outside the 64-bit range that :class:`~nurturekit.Lead` and
:class:`~nurturekit.Activity` accept (even one of thousands of digits), a JSON line nested more
than :data:`MAX_JSON_DEPTH` levels deep. Files are read as a stream, line by line, so a file of
any size fits in memory; only the row errors are kept.

An import is resumable: an import stopped at any point (Ctrl-C, ``kill -9``, a power cut) and
run again ends with every row stored once. Each batch is one transaction, so a batch is in the
store whole or not at all; run again, the rows already stored as the file says are counted as
``skipped`` ("skipped as already present") and not written again: a lead stored exactly as its
row would store it, an activity whose idempotency key is stored. Ctrl-C raises
:class:`ImportInterrupted`, which says how far the import got.

A lead's value that no rule of the program can match (``job_level`` "Department Head" where
the rules test for "department_head", ``employees`` "abc" where they compare numbers) is
imported as given and reported as a :class:`RowWarning`, one per column and value (see
:mod:`nurturekit.attribute_values`). Activities of the past are recorded as history
(``history_before``): scored and staged, but they start no scenario and send nothing. Each
import can report its progress (``progress``), in bytes of the file read.

(Some 1,200 lines: the readers of the four kinds of file and the two imports share the row
errors, the batches, the summary and the interruption, kept together as the one API a user
reads.)

    >>> from nurturekit.importer import import_leads       # doctest: +SKIP
    >>> summary = import_leads(engine, "leads.csv")        # doctest: +SKIP
    >>> print(summary)                                     # doctest: +SKIP
    leads: 3 read, 2 imported, 0 skipped as already present, 1 error, 1 warning
    >>> for line in summary.warning_lines():               # doctest: +SKIP
    ...     print(line)
    job_level 'Department Head' (line 3): no rule of the program matches it (did you mean …
"""

from __future__ import annotations

import csv
import gc
import itertools
import json
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime, time, timezone
from typing import IO, Any, TypeVar

import attrs

from nurturekit._history_runs import HistoryRun
from nurturekit._time import aware_utc, parse_iso_time
from nurturekit.activity import Activity
from nurturekit.attribute_values import AttributeValueCheck
from nurturekit.checks import int_problem as _int_problem
from nurturekit.checks import shown as _shown
from nurturekit.engine import Engine, RecordResult
from nurturekit.engine.core import _merged
from nurturekit.errors import InvalidInput, InvalidLead, NurtureError, StorageError, UnknownLead
from nurturekit.lead import (
    EMPLOYEES,
    AttributeValue,
    Consent,
    Contactability,
    ContactStatus,
    Lead,
)

__all__ = [
    "CONSENT_COLUMNS",
    "CONTACT_COLUMNS",
    "MAX_JSON_DEPTH",
    "MAX_WARNINGS",
    "PROGRESS_EVERY",
    "ImportFileError",
    "ImportInterrupted",
    "ImportSummary",
    "Progress",
    "RowError",
    "RowWarning",
    "import_activities",
    "import_file",
    "import_leads",
]

#: What an import calls now and then with ``(done, total)``: the bytes of the file done so
#: far (read; for history, which is sorted before it is recorded, read and recorded) and the
#: file's size in bytes, or ``None`` when the size is not known (a pipe). Bytes,
#: not rows: a file is read as a stream, so its rows are counted only at its end, while its
#: size gives a share done from the start. It is called every :data:`PROGRESS_EVERY` rows and
#: once at the end with ``done == total`` (the bytes read, whatever the size said).
#: :func:`nurturekit.demo.terminal_progress` with ``in_bytes=True`` shows it on a terminal.
Progress = Callable[[int, int | None], None]

#: A good row of a file: a lead or an activity.
_Row = TypeVar("_Row", Lead, Activity)

#: Activities recorded per call of :meth:`Engine.record_many` (one transaction each).
BATCH_SIZE = 500
#: Activities recorded as history per transaction, and sorted in memory at a time (see
#: :func:`import_activities`). Large, so that the rows of many leads share the store's pages;
#: a transaction holds these activities and their leads' states in memory (some 3 KB each).
HISTORY_BATCH_SIZE = 20_000
#: Leads upserted per call of :meth:`Engine.upsert_leads` (one transaction each). 1,000,000
#: leads, alternating runs: PostgreSQL 16,315 leads/s at 1,000, 16,963 and 16,725 at 5,000;
#: SQLite 17,094, then 17,037 and 16,706 (the same within the noise).
LEADS_BATCH_SIZE = 5000
#: Deepest nesting of arrays and objects a JSONL line may have; a deeper line is a row error.
#: A lead or an activity needs 3 (the object, its attributes or properties, a list), so 32
#: only tells deep nesting apart from a bad value. The check walks the line without
#: recursing, where the JSON parser would recurse once per level and fail past about 1,000.
MAX_JSON_DEPTH = 32

#: Rows read between two calls of an import's ``progress``.
PROGRESS_EVERY = 1000
#: Distinct (column, value) warnings an import of leads keeps; the cells beyond are counted.
MAX_WARNINGS = 50
#: The columns of a leads file that make its opt-in record (:class:`~nurturekit.lead.Consent`):
#: not attributes. ``consent_at``, ``consent_method`` and ``consent_wording`` are needed for
#: one; ``consent_source`` is optional.
CONSENT_COLUMNS = ("consent_at", "consent_method", "consent_wording", "consent_source")
#: The columns of a leads file that make its :class:`~nurturekit.lead.Contactability`: the
#: status (``subscribed``, ``unsubscribed``, ``bounced``, ``do_not_contact``), since when and
#: why. Not attributes.
CONTACT_COLUMNS = ("contactability", "contact_since", "contact_reason")

#: How many activities of a batch the store refused as a whole are recorded alone, all
#: failing, before the import takes the store (not those rows) to be failing.
_GIVE_UP = 3

_LEAD_FIELDS = ("id", "email", "name", "company", "source", "owner")
_NOT_ATTRIBUTES = frozenset((*_LEAD_FIELDS, "created_at", *CONTACT_COLUMNS, *CONSENT_COLUMNS))
_ACTIVITY_COLUMNS = ("lead_id", "kind", "at", "key", "properties")
_JSONL_SUFFIXES = (".jsonl", ".ndjson")
# "Lead.attributes['employees']", "Activity.properties['page']" (maybe followed by "[0]").
_NAMED = re.compile(r"^(?:attributes|properties)\[(['\"])(.*)\1\]")


class ImportFileError(NurtureError):
    """The file as a whole cannot be imported: unknown type, no header, a required column
    missing, a header that is not UTF-8, a row the CSV reader cannot split … Nothing after the
    point named was imported. (A data line that is not UTF-8 is a :class:`RowError`.)"""


@attrs.frozen
class RowError:
    """One bad row: its line in the file (the header is line 1), the column at fault (``None``
    when the row as a whole is bad) and why."""

    line: int
    column: str | None
    reason: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.column is None else f"line {self.line}, {self.column}"
        return f"{where}: {self.reason}"


@attrs.frozen
class RowWarning:
    """A lead's value imported as given that no condition of the program can match (see
    :mod:`nurturekit.attribute_values`): one per column and value, with how many imported
    rows hold it, the first one's line and why, naming what the program's rules test for.

    ``str()`` gives ``"job_level 'Department Head' (12 rows, first at line 3): no rule of the
    program matches it (did you mean 'department_head'?); the program's rules test job_level
    for 'executive', …"``.
    """

    column: str
    value: AttributeValue
    rows: int
    first_line: int
    reason: str

    def __str__(self) -> str:
        where = (
            f"line {self.first_line}"
            if self.rows == 1
            else f"{self.rows:,} rows, first at line {self.first_line}"
        )
        return f"{self.column} {self.value!r} ({where}): {self.reason}"


@attrs.frozen
class ImportSummary:
    """What one import did. ``kind`` is ``"leads"`` or ``"activities"``; ``read`` counts the
    data rows (blank lines aside) and equals ``imported + skipped + len(errors)``.

    ``imported`` counts the rows written: new leads and activities, and leads updated.
    ``skipped`` counts the rows already present, not written again: a lead stored exactly as
    the row would store it (see :func:`import_leads`), an activity whose idempotency key is
    stored (an earlier import, or an earlier row of the file). Run an interrupted import
    again and the rows it had stored are skipped. (``duplicates`` is its former name, kept
    as an alias.)

    ``history`` counts the imported activities recorded as history (``history_before``);
    0 for leads. ``warnings`` are the values of stored leads no rule of the program can
    match, one per column and value, the first :data:`MAX_WARNINGS` of them; a warning is
    not an error (its row is imported). ``warnings_left_off`` counts the cells holding such
    values beyond those (values that are not among ``warnings``).
    """

    kind: str
    read: int
    imported: int
    skipped: int
    errors: tuple[RowError, ...]
    history: int = 0
    warnings: tuple[RowWarning, ...] = ()
    warnings_left_off: int = 0

    @property
    def duplicates(self) -> int:
        """The former name of :attr:`skipped`."""
        return self.skipped

    def __str__(self) -> str:
        """``"activities: 1,000 read, 400 imported (7 as history), 600 skipped as already
        present, 0 errors"``; the history and the warnings are said only when there are some.
        """
        history = f" ({self.history:,} as history)" if self.history else ""
        text = (
            f"{self.kind}: {self.read:,} read, {self.imported:,} imported{history}, "
            f"{self.skipped:,} skipped as already present, "
            f"{_count(len(self.errors), 'error')}"
        )
        if self.warnings:
            more = "+" if self.warnings_left_off else ""
            text += f", {len(self.warnings)}{more} warning{'' if len(self.warnings) == 1 else 's'}"
        return text

    def warning_lines(self) -> Iterator[str]:
        """One line per warning, and a last one saying how many cells were left off."""
        for warning in self.warnings:
            yield str(warning)
        if self.warnings_left_off:
            yield (
                f"… and {self.warnings_left_off:,} more cell(s) holding other values no rule "
                f"of the program matches (the first {len(self.warnings)} values are listed)"
            )


class ImportInterrupted(KeyboardInterrupt):
    """Ctrl-C (``KeyboardInterrupt``) during an import, with how far it got: ``summary``
    counts the rows up to ``line`` of the file at ``path``, all of whose batches are
    committed (0 when none is), and the ``sorted_rows`` after it whose batches are committed
    too: history recorded sorted by lead (see :func:`import_activities`) is in the store a
    batch of leads at a time, not a stretch of lines. A batch cut short is rolled back, or
    was committed just before the interrupt: running the same import again resumes either
    way, skipping the rows already present.

    It is a ``KeyboardInterrupt``, so code that does not look for it stops as on any Ctrl-C.
    """

    def __init__(self, summary: ImportSummary, path: str, line: int, sorted_rows: int = 0) -> None:
        super().__init__(summary, path, line, sorted_rows)
        self.summary = summary
        self.path = path
        self.line = line
        self.sorted_rows = sorted_rows

    def __str__(self) -> str:
        """``"interrupted after line 40,001 of leads.csv: leads: 40,000 read, …"``; with
        history rows after that line recorded: ``"interrupted after line 1,000 of
        history.jsonl and 20,000 rows of the history after it (recorded sorted by lead): …"``
        (``"interrupted after 20,000 rows of the history of history.jsonl (…): …"`` when
        they are the first).
        """
        if self.sorted_rows:
            rows = _count(self.sorted_rows, "row")
            where = (
                f"after line {self.line:,} of {self.path} and {rows} of the history after it"
                if self.line
                else f"after {rows} of the history of {self.path}"
            )
            return f"interrupted {where} (recorded sorted by lead): {self.summary}"
        if not self.line:
            return f"interrupted before any row of {self.path} was imported"
        return f"interrupted after line {self.line:,} of {self.path}: {self.summary}"


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}" if number == 1 else f"{number:,} {noun}s"


def _column(where: str) -> str | None:
    """The column an error's ``where`` points at: ``"Lead.email"`` → ``"email"``,
    ``"Lead.attributes['employees']"`` → ``"employees"``; ``None`` for the row as a whole."""
    _, dot, rest = where.partition(".")
    if not dot or rest == "from_dict":
        return None
    named = _NAMED.match(rest)
    if named is not None:
        return named.group(2)
    return rest


def _row_error(line: int, exc: InvalidInput) -> RowError:
    return RowError(line, _column(exc.where), exc.message)


# --- reading files --------------------------------------------------------------------------------


_BOM = b"\xef\xbb\xbf"
# A line ended by CR alone (old Mac files) is split there too, as text mode with newline=""
# did before: the same line numbers, and the CSV reader joins a quoted cell's lines again.
_AFTER_LONE_CR = re.compile(r"(?<=\r)(?!\n)")


def _open(path: str | os.PathLike[str]) -> IO[bytes]:
    try:
        # Bytes, decoded line by line: a line that is not UTF-8 is then one bad row.
        return open(path, "rb")
    except OSError as exc:
        raise ImportFileError(f"{os.fspath(path)}: cannot open ({exc.strerror})") from None


class _Progress:
    """Counts the bytes of one file read (:func:`_lines` adds to ``done``) and tells them
    to an import's ``progress`` callback every :data:`PROGRESS_EVERY` rows and at the end."""

    __slots__ = ("callback", "done", "held", "total")

    def __init__(self, callback: Progress, path: str | os.PathLike[str]) -> None:
        self.callback = callback
        self.done = 0
        #: What is told instead of ``done`` while rows read are not recorded yet (a history
        #: run, sorted before it is recorded): the bytes up to the rows recorded.
        self.held: int | None = None
        try:
            status = os.stat(path)
        except OSError:
            self.total: int | None = None  # _open says why
        else:
            self.total = status.st_size if stat.S_ISREG(status.st_mode) else None

    def tell(self) -> None:
        self.callback(self.done if self.held is None else self.held, self.total)

    def end(self) -> None:
        self.callback(self.done, self.done)


def _progress(callback: Progress | None, path: str | os.PathLike[str]) -> _Progress | None:
    return None if callback is None else _Progress(callback, path)


def _not_utf8(raw: bytes, exc: UnicodeDecodeError) -> str:
    return (
        f"is not UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the line: "
        f"{exc.reason}); save the file as UTF-8"
    )


def _lines(
    file: Iterable[bytes], problems: dict[int, str], progress: _Progress | None = None
) -> Iterator[str]:
    """The lines of ``file`` as text, with their line ends, one at a time. A line that is not
    UTF-8 is decoded with U+FFFD in place of the bad bytes, and why it is bad is put in
    ``problems`` under its number (the first line is 1). ``progress`` counts the bytes."""
    number = 0
    first = True
    for raw in file:
        if progress is not None:
            progress.done += len(raw)
        if first:
            first = False
            # A byte-order mark written by spreadsheet programs is not part of the header.
            raw = raw.removeprefix(_BOM)
        try:
            text = raw.decode("utf-8")
            problem = None
        except UnicodeDecodeError as exc:
            text = raw.decode("utf-8", "replace")
            problem = _not_utf8(raw, exc)
        # Most lines have no CR, or one in a CRLF at their end: those need no split.
        lone_cr = text.count("\r") > text.endswith("\r\n")
        for piece in _AFTER_LONE_CR.split(text) if lone_cr else (text,):
            if piece:
                number += 1
                if problem is not None:
                    problems[number] = problem
                yield piece


def _csv_rows(
    path: str | os.PathLike[str], required: tuple[str, ...], progress: _Progress | None = None
) -> Iterator[tuple[int, dict[str, str] | RowError]]:
    """Yield ``(line, row)`` for each non-blank data row: the line the row starts on and the
    row by header name (stripped cells, short rows padded with ""), or a :class:`RowError`
    for a row with more cells than the header has columns or a line that is not UTF-8."""
    name = os.fspath(path)
    problems: dict[int, str] = {}
    with _open(path) as file:
        reader = csv.reader(_lines(file, problems, progress))
        try:
            header = [cell.strip() for cell in next(reader)]
        except StopIteration:
            raise ImportFileError(f"{name}: is empty; the first line must be a header") from None
        except csv.Error as exc:
            raise ImportFileError(f"{name}, line 1: cannot read the header ({exc})") from None
        if problems:
            line = min(problems)
            raise ImportFileError(f"{name}, line {line}: the header {problems[line]}")
        missing = [column for column in required if column not in header]
        if missing:
            raise ImportFileError(
                f"{name}, line 1: the header has no {', '.join(repr(c) for c in missing)} "
                f"column; it has {', '.join(repr(c) for c in header)}"
            )
        doubled = sorted({column for column in header if header.count(column) > 1})
        if doubled:
            raise ImportFileError(
                f"{name}, line 1: the header names {', '.join(map(repr, doubled))} twice"
            )
        end = reader.line_num
        while True:
            start = end + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise ImportFileError(
                    f"{name}, line {start}: cannot read the row ({exc})"
                ) from None
            end = reader.line_num
            if problems:
                # The reader reads no line past this row's, so each problem is one of its lines.
                line = min(problems)
                yield start, RowError(line, None, problems[line])
                problems.clear()
                continue
            if not cells or all(not cell.strip() for cell in cells):
                continue
            if len(cells) > len(header):
                yield start, _extra_cells(start, len(cells) - len(header))
                continue
            row = {column: "" for column in header}
            row.update(zip(header, (cell.strip() for cell in cells), strict=False))
            yield start, row


def _extra_cells(line: int, extra: int) -> RowError:
    return RowError(
        line, None, f"has {extra} more cell(s) than the header has columns; check the quoting"
    )


# --- JSON lines -----------------------------------------------------------------------------------


# A JSON string, to be left out when counting brackets, and the brackets themselves.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def _too_deep(text: str) -> bool:
    """Whether the JSON ``text`` nests arrays and objects more than :data:`MAX_JSON_DEPTH`
    levels deep (brackets inside strings aside), found without recursing."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False  # the usual line: too few brackets to nest that deep
    depth = 0
    for bracket in _BRACKET.finditer(_JSON_STRING.sub('""', text)):
        if bracket.group() in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        else:
            depth -= 1
    return False


class _LongInt:
    """Stands in for an int too long for ``int()`` while looking for where a line holds it."""

    __slots__ = ("digits",)

    def __init__(self, digits: int) -> None:
        self.digits = digits


def _int_or_long(text: str) -> int | _LongInt:
    try:
        return int(text)
    except ValueError:
        return _LongInt(len(text.lstrip("-")))


def _long_int_error(line: int, text: str, exc: ValueError, nested: str) -> RowError:
    """The row error for a JSON line that ``json.loads`` refused with a plain ValueError: an
    int too long for ``int()``, reported with the value (or field) that holds it; the values
    of the object under the key ``nested`` (``"properties"``, ``"attributes"``) by their own
    names."""
    data = json.loads(text, parse_int=_int_or_long)
    todo: list[tuple[str | None, Any]] = []
    if isinstance(data, dict):
        # A property is named by its own name (as in "Activity.properties['n']"), a field by its.
        for key, value in reversed(data.items()):
            if key == nested and isinstance(value, dict):
                todo += reversed(value.items())
            else:
                todo.append((key, value))
    else:
        todo.append((None, data))
    while todo:  # in the line's order, at most MAX_JSON_DEPTH levels deep, without recursing
        column, value = todo.pop()
        if isinstance(value, _LongInt):
            return RowError(line, column, _int_problem(f"<int of {value.digits:,} digits>"))
        if isinstance(value, dict):
            todo += ((column, item) for item in reversed(value.values()))
        elif isinstance(value, list):
            todo += ((column, item) for item in reversed(value))
    return RowError(line, None, f"cannot be read as JSON ({exc})")


def _json_line(line: int, text: str, nested: str) -> Any:
    """The JSON value of ``text`` (line ``line``), or a :class:`RowError` saying why it cannot
    be read; ``nested`` names the object whose values are named by their own names."""
    if _too_deep(text):
        return RowError(
            line,
            None,
            f"is nested more than {MAX_JSON_DEPTH} levels deep; write one JSON object per "
            f"line whose {nested} are str, int, float or bool",
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        return RowError(line, None, f"is not valid JSON: {exc.msg} (character {exc.colno})")
    except ValueError as exc:  # an int beyond Python's int-to-str limit (4,300 digits)
        return _long_int_error(line, text, exc, nested)


def _jsonl_rows(
    path: str | os.PathLike[str],
    read: Callable[[int, str], Lead | Activity | RowError],
    progress: _Progress | None = None,
) -> Iterator[tuple[int, Any]]:
    """``(line, read(line, text))`` for each non-blank line of the JSON lines file."""
    problems: dict[int, str] = {}
    with _open(path) as file:
        for line, text in enumerate(_lines(file, problems, progress), 1):
            if problems:
                yield line, RowError(line, None, problems.pop(line))
            elif text.strip():
                yield line, read(line, text)


# --- leads ----------------------------------------------------------------------------------------


def _int_cell(where: str, value: str) -> int:
    """The int a cell of digits holds. One too long for ``int()`` (over 4,300 digits) is
    refused, like any int out of range, by its number of digits."""
    try:
        return int(value)
    except ValueError:
        raise InvalidLead(where, _int_problem(f"<int of {len(value):,} digits>")) from None


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_UTC = timezone.utc
_FIELD_WHERE = {
    "Consent.at": "Lead.consent_at",
    "Consent.method": "Lead.consent_method",
    "Consent.wording": "Lead.consent_wording",
    "Consent.source": "Lead.consent_source",
    "Contactability.status": "Lead.contactability",
    "Contactability.since": "Lead.contact_since",
    "Contactability.reason": "Lead.contact_reason",
}
_TIME_EXAMPLE = "'2026-04-01T09:00:00+09:00', or the date alone, '2026-04-01' (00:00 UTC)"


def _time_value(where: str, value: object) -> datetime | None:
    """A time of a lead (``created_at``, ``contact_since``): see :func:`_time`; ``None`` for
    an empty cell or a JSON null."""
    return None if value is None or value == "" else _time(where, value)


def _time(where: str, value: object) -> datetime:
    """A time of a lead's row: an ISO 8601 time with a UTC offset, or a date (00:00 UTC)."""
    if not isinstance(value, str):
        raise InvalidLead(
            where,
            f"expected an ISO 8601 time as a str, got {type(value).__name__} {_shown(value)}; "
            f"write {_TIME_EXAMPLE}",
        )
    try:
        if _DATE.fullmatch(value):
            return datetime.combine(date.fromisoformat(value), time(), _UTC)
        parsed = parse_iso_time(value)
    except (ValueError, OverflowError):
        raise InvalidLead(
            where, f"{_shown(value)} is not an ISO 8601 time or date; write {_TIME_EXAMPLE}"
        ) from None
    if parsed.tzinfo is None:
        raise InvalidLead(
            where, f"{_shown(value)} has no UTC offset; add one, or write {_TIME_EXAMPLE}"
        )
    return parsed


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _consent(cells: Mapping[str, Any]) -> Consent | None:
    """The opt-in record of a row's consent cells (``None`` or ``""`` where empty): ``None``
    when they are all empty."""
    if not any(cells.get(column) for column in CONSENT_COLUMNS):
        return None
    missing = [column for column in CONSENT_COLUMNS[:3] if not cells.get(column)]
    if missing:
        given = [column for column in CONSENT_COLUMNS if cells.get(column)]
        raise InvalidLead(
            f"Lead.{missing[0]}",
            f"{_and(missing)} {'is' if len(missing) == 1 else 'are'} empty while "
            f"{_and(given)} {'is' if len(given) == 1 else 'are'} given; an opt-in "
            f"record needs consent_at, consent_method and consent_wording (consent_source "
            f"is optional): fill them in, or leave every consent cell of the row empty",
        )
    at = _time("Lead.consent_at", cells["consent_at"])
    try:
        return Consent(
            at=at,
            method=cells["consent_method"],
            wording=cells["consent_wording"],
            source=cells.get("consent_source"),
        )
    except InvalidInput as exc:
        raise InvalidLead(_FIELD_WHERE.get(exc.where, exc.where), exc.message) from None


_SUBSCRIBED = Contactability()


def _contactability(cells: Mapping[str, Any]) -> Contactability:
    """A row's :data:`CONTACT_COLUMNS` (``None`` or ``""`` where empty) as a contactability:
    the default "subscribed" when they are all empty, as when a status alone is empty."""
    status, since, reason = (cells.get(column) for column in CONTACT_COLUMNS)
    if not (status or since or reason):
        return _SUBSCRIBED
    try:
        return Contactability(
            status=status or ContactStatus.SUBSCRIBED,
            since=_time_value("Lead.contact_since", since),
            reason=reason,
        )
    except InvalidInput as exc:
        raise InvalidLead(_FIELD_WHERE.get(exc.where, exc.where), exc.message) from None


def _lead(row: Mapping[str, str]) -> Lead:
    """The lead of a CSV row (stripped cells, ``""`` where empty)."""
    attributes: dict[str, Any] = {}
    for column, value in row.items():
        if column in _NOT_ATTRIBUTES or not value:
            continue
        if column == EMPLOYEES and value.isdecimal():
            attributes[column] = _int_cell(f"Lead.attributes[{column!r}]", value)
        else:
            attributes[column] = value
    cells = {column: row.get(column) or None for column in (*CONTACT_COLUMNS, *CONSENT_COLUMNS)}
    return Lead(
        id=row["id"],
        email=row["email"],
        name=row.get("name") or None,
        company=row.get("company") or None,
        source=row.get("source") or None,
        owner=row.get("owner") or None,
        attributes=attributes,
        consent=_consent(cells),
        contactability=_contactability(cells),
        created_at=_time_value("Lead.created_at", row.get("created_at")),
    )


def _csv_leads(
    path: str | os.PathLike[str], progress: _Progress | None
) -> Iterator[tuple[int, Lead | RowError]]:
    for line, row in _csv_rows(path, ("id", "email"), progress):
        if isinstance(row, RowError):
            yield line, row
            continue
        try:
            lead: Lead | RowError = _lead(row)
        except InvalidInput as exc:
            lead = _row_error(line, exc)
        yield line, lead


_TEXT_KEYS = ("name", "company", "source", "owner", *CONTACT_COLUMNS, *CONSENT_COLUMNS)


def _text_or_null(data: Mapping[str, Any], key: str) -> Any:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidLead(
            f"Lead.{key}", f"expected a str or null, got {type(value).__name__} {_shown(value)}"
        )
    return value


def _json_lead(data: object) -> Lead:
    """The lead of a JSON object, as ``nurturekit export leads --format jsonl`` writes one;
    a key that is not a field (:data:`nurturekit.export.LEAD_COLUMNS`) is an attribute too."""
    if not isinstance(data, dict):
        raise InvalidLead(
            "Lead.from_dict",
            f"expected a JSON object, got {type(data).__name__} {_shown(data)}",
        )
    missing = [key for key in ("id", "email") if key not in data]
    if missing:
        raise InvalidLead(
            "Lead.from_dict",
            f"has no {' and no '.join(map(repr, missing))}; a lead needs an id and an email",
        )
    nested = data.get("attributes")
    if nested is None:
        nested = {}
    elif not isinstance(nested, dict):
        raise InvalidLead(
            "Lead.attributes",
            f"expected an object of names to values, got {type(nested).__name__} {_shown(nested)}",
        )
    attributes = dict(nested)
    for key, value in data.items():
        if key in _NOT_ATTRIBUTES or key == "attributes":
            continue
        if key in nested:
            raise InvalidLead(
                f"Lead.attributes[{key!r}]",
                "is given twice, as a key of the line and in its attributes; give it once",
            )
        attributes[key] = value
    cells = {key: _text_or_null(data, key) for key in _TEXT_KEYS}
    return Lead(
        id=data["id"],
        email=data["email"],
        name=cells["name"],
        company=cells["company"],
        source=cells["source"],
        owner=cells["owner"],
        attributes=attributes,
        consent=_consent(cells),
        contactability=_contactability(cells),
        created_at=_time_value("Lead.created_at", data.get("created_at")),
    )


def _jsonl_lead(line: int, text: str) -> Lead | RowError:
    data = _json_line(line, text, "attributes")
    if isinstance(data, RowError):
        return data
    try:
        return _json_lead(data)
    except InvalidInput as exc:
        return _row_error(line, exc)


def _same_values(given: Mapping[str, AttributeValue], stored: Mapping[str, AttributeValue]) -> bool:
    """Equal attributes of the same types (``1``, ``1.0`` and ``True`` are equal in Python)."""
    return given == stored and all(type(stored[name]) is type(v) for name, v in given.items())


def _stored_as(lead: Lead, old: Lead, now: datetime) -> bool:
    """Whether ``old``, a stored lead, is what upserting ``lead`` at ``now`` would store over
    it (:meth:`Engine.upsert_lead`'s rules, ``_merged``), its attributes of the same types."""
    merged = _merged(lead, old, now)
    return merged == old and _same_values(merged.attributes, old.attributes)


def _lead_rows(
    path: str | os.PathLike[str], progress: _Progress | None
) -> Iterator[tuple[int, Lead | RowError]]:
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix in _JSONL_SUFFIXES:
        return _jsonl_rows(path, _jsonl_lead, progress)
    return _csv_leads(path, progress)


class _Tally:
    """The counts of one import as it goes, and as they were when its last batch was
    committed: what an interrupted import reports."""

    __slots__ = ("_committed", "errors", "history", "imported", "kind", "read", "skipped")

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.read = self.imported = self.skipped = self.history = 0
        self.errors: list[RowError] = []
        self._committed = (0, 0, 0, 0, 0, 0, 0, 0)

    def committed(
        self, read: int, line: int, after: int = 0, found_from: int | None = None
    ) -> None:
        """The batch whose last row is the ``read``-th row of the file, at ``line``, is in
        the store; with ``after``, so are that many rows after ``line`` (counted in
        ``read``), recorded sorted by lead, and the errors from ``errors[found_from]`` on are
        errors of those rows (found while recording them)."""
        end = len(self.errors)
        found = end if found_from is None else found_from
        counts = (read, self.imported, self.skipped, self.history)
        self._committed = (*counts, line, after, found, end)

    def committed_up_to(self) -> tuple[int, int]:
        """The rows read and the line up to which every row is in the store."""
        read, _, _, _, line, after, _, _ = self._committed
        return read - after, line

    def summary(
        self, warnings: tuple[RowWarning, ...] = (), warnings_left_off: int = 0
    ) -> ImportSummary:
        return ImportSummary(
            self.kind,
            self.read,
            self.imported,
            self.skipped,
            tuple(sorted(self.errors, key=_line)),
            history=self.history,
            warnings=warnings,
            warnings_left_off=warnings_left_off,
        )

    def interrupted(self, path: str | os.PathLike[str]) -> ImportInterrupted:
        read, imported, skipped, history, line, after, found, end = self._committed
        reported = [e for e in self.errors[:found] if e.line <= line] + self.errors[found:end]
        errors = tuple(sorted(reported, key=_line))
        summary = ImportSummary(self.kind, read, imported, skipped, errors, history=history)
        return ImportInterrupted(summary, os.fspath(path), line, after)


def _line(error: RowError) -> int:
    return error.line


def _good_rows(
    rows: Iterable[tuple[int, _Row | RowError]], tally: _Tally, tracker: _Progress | None
) -> Iterator[tuple[int, _Row]]:
    """The good rows of ``rows``, each counted as read (the tracker told every
    :data:`PROGRESS_EVERY` rows); a bad one is put in the tally's errors."""
    for line, row in rows:
        tally.read += 1
        if tracker is not None and tally.read % PROGRESS_EVERY == 0:
            tracker.tell()
        if isinstance(row, RowError):
            tally.errors.append(row)
            continue
        yield line, row


@contextmanager
def _collector_off() -> Iterator[None]:
    """While an import runs (``with`` it), Python's cyclic garbage collector does not.

    An import keeps a batch's leads, states and activities, and the store's cache, alive:
    each automatic collection walks all of them, though an import makes almost no cyclic
    garbage (126 objects in 200,000 cold activities, none in 30,000 bad rows). On 200,000
    cold activities into SQLite (benchmarks/bulk.py's data) the automatic collector took a
    quarter of the time: 29 full collections, 17 s of 69 s. Collecting the young generations
    after each batch instead still cost 14–25% (200,000 activities sorted by lead, into
    1,000,000 leads, alternating: 6,912 and 6,067 activities/s, 8,059 and 8,105 without).
    The collector is switched back on at the end, whatever happens; if it was off already,
    it is left alone.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def import_leads(
    engine: Engine, path: str | os.PathLike[str], *, progress: Progress | None = None
) -> ImportSummary:
    """Upsert every good lead of the CSV or JSON lines file at ``path``; report the bad rows.

    **CSV** (any suffix but ``.jsonl`` and ``.ndjson``): the header names the columns: ``id``
    and ``email`` (required), ``name``, ``company``, ``source``, ``owner``, ``created_at``,
    the contactability (:data:`CONTACT_COLUMNS`), the opt-in record (:data:`CONSENT_COLUMNS`,
    below); any other column becomes an attribute (``industry``, ``time_zone`` …). Cells are
    stripped and empty ones left out; an attribute is a str, but ``employees``, an int when it
    is digits.

    **JSON lines** (``.jsonl``, ``.ndjson``): an object per line with the same keys, as
    ``nurturekit export leads --format jsonl`` writes it (:func:`nurturekit.export.leads`):
    ``null`` where empty, and the attributes in an ``attributes`` object (any other key of
    the line is an attribute too), with their JSON types: str, int, float, bool, ``null`` or
    a list of str. What it holds is stored exactly, the types of the attributes included.

    Times (``created_at``, ``contact_since``, ``consent_at``) are ISO 8601 with a UTC offset
    (``2026-04-01T09:00:00+09:00`` or ``…Z``) or a date alone (``2026-04-01``, read as 00:00
    UTC). A lead without ``created_at`` is stamped with the time it is first stored.

    The good rows are upserted :data:`LEADS_BATCH_SIZE` at a time with
    :meth:`Engine.upsert_leads`, a transaction each (its rules: a row with the default
    contactability, or without an opt-in record, keeps the stored one). A row whose lead is
    already stored exactly as the row would store it is not written again: the summary
    counts it as ``skipped`` (as already present), so an interrupted import run again says
    how many rows it had stored. A new or changed lead counts as imported. A row the store
    refuses to write is a :class:`RowError` ("not stored: …") and the rest of its batch is
    stored.

    ``contactability`` is ``subscribed``, ``unsubscribed``, ``bounced`` or
    ``do_not_contact``; ``contact_since`` and ``contact_reason`` say since when and why
    (empty: the default, subscribed, which never overwrites a stored unsubscribe). The opt-in
    record (:attr:`Lead.consent <nurturekit.Lead.consent>`, which marketing mail needs):
    ``consent_at``, when; ``consent_method``, how (``web form`` …); ``consent_wording``, the
    exact text agreed to; ``consent_source``, where (optional: the form's URL, the event). A
    row with some of the first three but not all is a :class:`RowError` naming the empty
    ones, and so is a bad time. A row whose consent cells are all empty has no record, and a
    stored lead keeps the one it has.

    A value of a stored lead that no condition of ``engine.program`` can match is a
    :class:`RowWarning` in the summary (see :mod:`nurturekit.attribute_values`): the row is
    imported all the same. ``progress`` is told the bytes read now and then (see
    :data:`Progress`).

    Raises :class:`ImportFileError` when the file cannot be read or lacks a required column,
    and :class:`ImportInterrupted` on Ctrl-C (``KeyboardInterrupt``).
    """
    tracker = _progress(progress, path)
    check = AttributeValueCheck(engine.program)
    matches = check.matches
    tally = _Tally("leads")
    left_off = 0
    # (column, type, value) → [rows, first line]; the type keeps 1 and True apart.
    flagged: dict[tuple[str, type, AttributeValue], list[int]] = {}
    batch: list[tuple[int, Lead]] = []
    last_read = 0

    def flush() -> None:
        nonlocal left_off
        # A row whose lead is stored as the row says is not written again: an import run
        # again after an interruption skips what it had stored, one read per batch.
        stored = engine.storage.get_leads(list(dict.fromkeys(lead.id for _, lead in batch)))
        now = engine.clock.now()
        fresh: list[tuple[int, Lead]] = []
        for line, lead in batch:
            old = stored.get(lead.id)
            if old is not None and _stored_as(lead, old, now):
                tally.skipped += 1
            else:
                fresh.append((line, lead))
        refused: set[int] = set()
        if fresh:
            summary = engine.upsert_leads([lead for _, lead in fresh], batch_size=len(fresh))
            for index, error in summary.refused:
                line = fresh[index][0]
                refused.add(line)
                tally.errors.append(RowError(line, None, f"not stored: {error}"))
            tally.imported += len(fresh) - len(summary.refused)
        tally.committed(last_read, batch[-1][0])
        for line, lead in batch:
            if line in refused:
                continue
            for column, value in lead.attributes.items():
                if matches(column, value):
                    continue
                key = (column, type(value), value)
                seen = flagged.get(key)
                if seen is not None:
                    seen[0] += 1
                elif len(flagged) < MAX_WARNINGS:
                    flagged[key] = [1, line]
                else:
                    left_off += 1
        batch.clear()

    try:
        with _collector_off():
            for line, row in _good_rows(_lead_rows(path, tracker), tally, tracker):
                batch.append((line, row))
                last_read = tally.read
                if len(batch) >= LEADS_BATCH_SIZE:
                    flush()
            if batch:
                flush()
    except KeyboardInterrupt:
        raise tally.interrupted(path) from None
    if tracker is not None:
        tracker.end()
    warnings = tuple(
        RowWarning(column, value, rows, first, check.explain(column, value).reason)
        for (column, _, value), (rows, first) in flagged.items()
    )
    return tally.summary(warnings, left_off)


# --- activities -----------------------------------------------------------------------------------


def _jsonl_activity(line: int, text: str) -> Activity | RowError:
    data = _json_line(line, text, "properties")
    if isinstance(data, RowError):
        return data
    try:
        return Activity.from_dict(data)
    except InvalidInput as exc:
        return _row_error(line, exc)


def _csv_activity(line: int, row: Mapping[str, str]) -> Activity | RowError:
    properties: dict[str, Any] = {
        column: value for column, value in row.items() if column not in _ACTIVITY_COLUMNS and value
    }
    if row.get("properties"):
        given = _json_line(line, row["properties"], "properties")
        if isinstance(given, RowError):
            return RowError(line, "properties", given.reason)
        if not isinstance(given, dict):
            return RowError(
                line,
                "properties",
                f"expected a JSON object of names to values such as "
                f'{{"page": "/pricing"}}, got {_shown(row["properties"])}',
            )
        doubled = sorted(properties.keys() & given.keys())
        if doubled:
            return RowError(
                line,
                doubled[0],
                "is both a column and a key of the properties column; give it once",
            )
        properties.update(given)
    data: dict[str, Any] = {
        "lead_id": row["lead_id"],
        "kind": row["kind"],
        "at": row["at"],
        "properties": properties,
    }
    if row.get("key"):
        data["key"] = row["key"]
    try:
        return Activity.from_dict(data)
    except InvalidInput as exc:
        return _row_error(line, exc)


def _csv_activity_rows(
    path: str | os.PathLike[str], progress: _Progress | None = None
) -> Iterator[tuple[int, Activity | RowError]]:
    for line, row in _csv_rows(path, ("lead_id", "kind", "at"), progress):
        yield line, row if isinstance(row, RowError) else _csv_activity(line, row)


def read_activities(path: str | os.PathLike[str]) -> Iterator[tuple[int, Activity | RowError]]:
    """The activities of a ``.jsonl`` or ``.csv`` file, one ``(line, activity or RowError)``
    per data row, streamed (see :func:`import_activities` for the columns)."""
    return _read_activities(path, None)


def _read_activities(
    path: str | os.PathLike[str], progress: _Progress | None
) -> Iterator[tuple[int, Activity | RowError]]:
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix in _JSONL_SUFFIXES:
        return _jsonl_rows(path, _jsonl_activity, progress)
    if suffix == ".csv":
        return _csv_activity_rows(path, progress)
    raise ImportFileError(
        f"{os.fspath(path)}: activities are read from .jsonl or .csv files, "
        f"not {suffix or 'a file without a suffix'}"
    )


def _record(
    engine: Engine, batch: list[tuple[int, Activity]], history: bool, errors: list[RowError]
) -> list[RecordResult]:
    """Record ``batch`` in one transaction; if the store refuses it, one by one, each row
    the store refuses alone (or whose lead is gone) put in ``errors``. When the first
    :data:`_GIVE_UP` tried alone all fail, the store is failing: that error is raised."""
    try:
        return engine.record_many((activity for _, activity in batch), history=history)
    except (UnknownLead, StorageError):
        pass  # a lead the store does not know (removed since), or a row it refuses
    results: list[RecordResult] = []
    failed = 0
    for tried, (line, activity) in enumerate(batch, 1):
        try:
            results.append(engine.record(activity, history=history))
        except UnknownLead as exc:
            errors.append(RowError(line, "lead_id", str(exc)))
        except StorageError as exc:
            failed += 1
            if failed == tried >= _GIVE_UP:
                raise
            errors.append(RowError(line, None, f"not stored: {exc}"))
    return results


def _record_rows(
    engine: Engine,
    rows: list[tuple[int, Activity]],
    history: bool,
    errors: list[RowError],
    batch_size: int,
) -> list[RecordResult]:
    """Record ``rows`` in the order given, in one transaction, each row whose lead is not
    stored put in ``errors``: history ``batch_size`` rows a call of
    :meth:`Engine.record_many` (see :func:`import_activities`); live rows with one call,
    whose transaction ends before the hand-offs it made are told to the sink.

    The leads are assumed stored: only when the store says one is not are they looked up,
    and the rows of the missing ones reported. If the store refuses the rows, they are
    recorded ``batch_size`` at a time, each such batch as :func:`_record` records it.
    """
    try:
        if not history:
            return engine.record_many((activity for _, activity in rows))
        with engine.storage.transaction():
            results: list[RecordResult] = []
            for start in range(0, len(rows), batch_size):
                chunk = rows[start : start + batch_size]
                results.extend(engine.record_many((a for _, a in chunk), history=True))
            return results
    except UnknownLead:
        ids = list(dict.fromkeys(activity.lead_id for _, activity in rows))
        found = engine.storage.get_leads(ids)
        kept = []
        for line, activity in rows:
            if activity.lead_id in found:
                kept.append((line, activity))
            else:
                errors.append(RowError(line, "lead_id", str(UnknownLead(activity.lead_id))))
        rows = kept
    except StorageError:
        pass
    results = []
    for start in range(0, len(rows), batch_size):
        results.extend(_record(engine, rows[start : start + batch_size], history, errors))
    return results


def import_activities(
    engine: Engine,
    path: str | os.PathLike[str],
    *,
    batch_size: int = BATCH_SIZE,
    history_before: datetime | None = None,
    history_batch_size: int = HISTORY_BATCH_SIZE,
    progress: Progress | None = None,
) -> ImportSummary:
    """Record every good activity of the file at ``path``; report the bad rows.

    ``.jsonl`` (or ``.ndjson``): one JSON object per line in :meth:`Activity.from_dict` form
    (``lead_id``, ``kind``, ``at`` as ISO 8601 with a UTC offset, optional ``properties`` and
    ``key``), as ``nurturekit export activities --format jsonl`` writes it. ``.csv``: columns
    ``lead_id``, ``kind``, ``at`` and optionally ``key`` and ``properties`` (a JSON object, as
    ``nurturekit export activities`` writes it); every other column is a str property (empty
    cells left out).

    Live activities are recorded with :meth:`Engine.record_many`, ``batch_size`` at a time,
    in the file's order, a transaction each; history in larger batches sorted by lead (see
    below). A row whose lead is not stored is reported (column ``lead_id``) and the rest are
    still recorded. An activity whose idempotency key is
    already stored (an earlier import, an earlier row: the same key, given or derived from
    the same content) is not recorded again and counts as ``skipped`` (as already present):
    an interrupted import run again skips what it had recorded. If the store refuses a batch,
    its activities are recorded one by one and a row the store refuses alone is a
    :class:`RowError` ("not stored: …"); when the first three tried alone all fail, the
    store's error is raised (the batches before are kept).

    ``history_before`` (an aware datetime): an activity whose ``at`` is before it is recorded
    as history (``record_many(..., history=True)``): stored, scored and moving the lead
    through the stages, but starting no scenario and handing nobody off, so the import of a
    download of months ago sends no "thanks for downloading" now. The activities at or after
    it are recorded live. Where the two alternate in the file, each stretch of one kind is
    recorded before the next is read, so the file's order is kept between them. ``None``
    (the default) records all live. The summary's ``history`` counts the activities
    recorded as history.

    A stretch of history rows (a file of history only: all of it) is sorted by lead before
    any of it is recorded: each lead's rows in the file's order, the leads in the order of
    their ids; then recorded ``history_batch_size`` rows a transaction
    (:data:`HISTORY_BATCH_SIZE`). Up to ``history_batch_size`` rows are sorted in memory;
    a longer stretch is sorted through temporary files (in :func:`tempfile.gettempdir`,
    ``TMPDIR``: some 100 bytes a row, deleted when the import ends, however it ends).
    Recording one lead's history reads and changes that lead alone, so the outcome is the
    one of the file's order, and in lead order each transaction reads and writes a narrow
    band of the store's pages instead of pages all over the file. (A stretch where one
    idempotency ``key`` is given to activities of two leads is recorded in the file's order:
    the first row with the key is the one stored.) Live activities keep the file's order
    across leads (a hand-off's owner rotation follows it). Interrupted while a sorted
    stretch is recorded, the import says how many of its rows are in the store
    (:class:`ImportInterrupted`); run again, it skips them.

    ``progress`` is told the bytes of the file done now and then (see :data:`Progress`):
    while a stretch of history is read and sorted they stay where the stretch began, then
    they move as its transactions commit.

    Raises :class:`ImportFileError` for another suffix, an unreadable file or a missing column;
    :class:`~nurturekit.errors.NaiveDatetime` for a ``history_before`` without a time zone;
    :class:`ImportInterrupted` on Ctrl-C (``KeyboardInterrupt``).
    """
    tracker = _progress(progress, path)
    rows = _read_activities(path, tracker)
    for name, size in (("batch_size", batch_size), ("history_batch_size", history_batch_size)):
        if size < 1:
            raise ValueError(f"{name} must be at least 1, got {size}")
    cutoff = None if history_before is None else aware_utc(history_before, "history_before")
    tally = _Tally("activities")
    batch: list[tuple[int, Activity]] = []  # live rows
    run: HistoryRun | None = None  # history rows
    last_read = 0
    done_before = 0

    def counted(results: list[RecordResult], history: bool) -> None:
        for result in results:
            if result.stored:
                tally.imported += 1
                if history:
                    tally.history += 1
            else:
                tally.skipped += 1

    def flush() -> None:
        counted(_record_rows(engine, batch, False, tally.errors, batch_size), False)
        tally.committed(last_read, batch[-1][0])
        batch.clear()

    def no_room(error: OSError) -> ImportFileError:
        _, line = tally.committed_up_to()
        kept = f"the rows up to line {line:,} are in the store" if line else "no row is stored"
        return ImportFileError(
            f"{path}: cannot sort the history in temporary files in {tempfile.gettempdir()} "
            f"({error}); {kept}. Free space there or set TMPDIR to a folder with room (some "
            f"100 bytes a row of history), and run the import again"
        )

    def record_run(run: HistoryRun) -> None:
        # A key given to two leads' rows: the first row with it is the one stored.
        try:
            in_order = run.shares_a_key()
        except OSError as error:
            raise no_room(error) from error
        ordered = run.in_file_order() if in_order else run.by_lead()
        started = None if tracker is None else tracker.held
        ended = 0 if tracker is None else tracker.done
        read_before, line_before = tally.committed_up_to()
        found_from = len(tally.errors)
        recorded = 0
        while True:
            try:
                chunk = list(itertools.islice(ordered, history_batch_size))
            except OSError as error:
                raise no_room(error) from error
            if not chunk:
                break
            counted(_record_rows(engine, chunk, True, tally.errors, batch_size), True)
            recorded += len(chunk)
            tally.committed(read_before + recorded, line_before, recorded, found_from)
            if tracker is not None and started is not None:
                tracker.held = started + (ended - started) * recorded // run.count
                tracker.tell()
        if tracker is not None:
            tracker.held = None
        # Only now is every row up to the run's last one in the store.
        tally.committed(last_read, run.last_line)

    try:
        with _collector_off():
            for line, item in _good_rows(rows, tally, tracker):
                if cutoff is not None and item.at < cutoff:
                    if batch:
                        flush()
                    if run is None:
                        run = HistoryRun(history_batch_size)
                        if tracker is not None:
                            tracker.held = done_before
                    try:
                        run.add((line, item))
                    except OSError as error:
                        raise no_room(error) from error
                else:
                    if run is not None:
                        with run:
                            record_run(run)
                        run = None
                    batch.append((line, item))
                last_read = tally.read
                if len(batch) >= batch_size:  # only live rows are batched
                    flush()
                if tracker is not None:
                    done_before = tracker.done  # the bytes up to this row's end
            if run is not None:
                with run:
                    record_run(run)
                run = None
            if batch:
                flush()
    except KeyboardInterrupt:
        raise tally.interrupted(path) from None
    finally:
        if run is not None:
            run.close()
    if tracker is not None:
        tracker.end()
    return tally.summary()


def _jsonl_holds_leads(path: str | os.PathLike[str]) -> bool:
    """Whether a JSON lines file holds leads: the first object among its first 100 lines has
    an ``email`` and no ``lead_id`` (activities have a ``lead_id``)."""
    with _open(path) as file:
        for raw in itertools.islice(file, 100):
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError:
                continue
            if not text.strip() or _too_deep(text):
                continue
            try:
                data = json.loads(text)
            except ValueError:
                continue
            if isinstance(data, dict):
                return "email" in data and "lead_id" not in data
    return False


def import_file(
    engine: Engine,
    path: str | os.PathLike[str],
    *,
    history_before: datetime | None = None,
    history_batch_size: int = HISTORY_BATCH_SIZE,
    progress: Progress | None = None,
) -> ImportSummary:
    """Import leads or activities, telling them apart by the file: a ``.csv`` whose header
    has ``lead_id`` is activities, else leads; a ``.jsonl``/``.ndjson`` file whose first JSON
    object has an ``email`` and no ``lead_id`` is leads, else activities.

    ``history_before``, ``history_batch_size`` and ``progress`` are passed to
    :func:`import_activities` (a file of leads has no history: there they are not used) and
    ``progress`` to :func:`import_leads`.
    """
    if history_before is not None:
        aware_utc(history_before, "history_before")  # refused whatever the file holds
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix == ".csv":
        problems: dict[int, str] = {}
        with _open(path) as file:
            try:
                header = next(csv.reader(_lines(file, problems)), [])
            except csv.Error as exc:
                raise ImportFileError(
                    f"{os.fspath(path)}, line 1: cannot read the header ({exc})"
                ) from None
        if problems:
            line = min(problems)
            raise ImportFileError(f"{os.fspath(path)}, line {line}: the header {problems[line]}")
        holds_leads = "lead_id" not in (cell.strip() for cell in header)
    elif suffix in _JSONL_SUFFIXES:
        holds_leads = _jsonl_holds_leads(path)
    else:
        raise ImportFileError(
            f"{os.fspath(path)}: the file is told apart by its suffix: leads come in a .csv "
            f"file (or a .jsonl file of leads); activities in a .jsonl (or .ndjson) file, or a "
            f".csv with a lead_id column; not {suffix or 'a file without a suffix'}: rename it"
        )
    if holds_leads:
        return import_leads(engine, path, progress=progress)
    return import_activities(
        engine,
        path,
        history_before=history_before,
        history_batch_size=history_batch_size,
        progress=progress,
    )
