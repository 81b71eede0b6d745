"""Import leads (CSV) and activities (JSONL or CSV) into an engine, row by row.

A bad row never stops an import: it is reported as a :class:`RowError` (the file's line, the
column and the reason) and the good rows are kept. That holds for hostile rows too: a line that
is not UTF-8, a number outside the 64-bit range that :class:`~nurturekit.Lead` and
:class:`~nurturekit.Activity` accept (even one of thousands of digits), a JSON line nested more
than :data:`MAX_JSON_DEPTH` levels deep. Files are read as a stream, line by line, so a file of
any size fits in memory; only the row errors are kept.

A lead's value that no rule of the program can match (``job_level`` "Department Head" where
the rules test for "department_head", ``employees`` "abc" where they compare numbers) is
imported as given and reported as a :class:`RowWarning`, one per column and value (see
:mod:`nurturekit.attribute_values`). Activities of the past are recorded as history
(``history_before``): scored and staged, but they start no scenario and send nothing. Each
import can report its progress (``progress``), in bytes of the file read.

    >>> from nurturekit.importer import import_leads       # doctest: +SKIP
    >>> summary = import_leads(engine, "leads.csv")        # doctest: +SKIP
    >>> print(summary)                                     # doctest: +SKIP
    leads: 3 read, 2 imported, 0 duplicates, 1 error, 1 warning
    >>> for line in summary.warning_lines():               # doctest: +SKIP
    ...     print(line)
    job_level 'Department Head' (line 3): no rule of the program matches it (did you mean …
"""

from __future__ import annotations

import csv
import json
import os
import re
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import date, datetime, time, timezone
from typing import IO, Any

import attrs
from dateutil.parser import isoparse

from nurturekit._time import aware_utc
from nurturekit.activity import Activity
from nurturekit.attribute_values import AttributeValueCheck
from nurturekit.checks import int_problem as _int_problem
from nurturekit.checks import shown as _shown
from nurturekit.engine import Engine
from nurturekit.errors import InvalidInput, InvalidLead, NurtureError, UnknownLead
from nurturekit.lead import EMPLOYEES, AttributeValue, Consent, Lead

__all__ = [
    "CONSENT_COLUMNS",
    "MAX_JSON_DEPTH",
    "MAX_WARNINGS",
    "PROGRESS_EVERY",
    "ImportFileError",
    "ImportSummary",
    "Progress",
    "RowError",
    "RowWarning",
    "import_activities",
    "import_file",
    "import_leads",
]

#: What an import calls now and then with ``(done, total)``: the bytes of the file read so
#: far and the file's size in bytes, or ``None`` when the size is not known (a pipe). Bytes,
#: not rows: a file is read as a stream, so its rows are counted only at its end, while its
#: size gives a share done from the start. It is called every :data:`PROGRESS_EVERY` rows and
#: once at the end with ``done == total`` (the bytes read, whatever the size said).
#: :func:`nurturekit.demo.terminal_progress` with ``in_bytes=True`` shows it on a terminal.
Progress = Callable[[int, int | None], None]

#: Activities recorded per call of :meth:`Engine.record_many` (one transaction each).
BATCH_SIZE = 500
#: Leads upserted per call of :meth:`Engine.upsert_leads` (one transaction each).
LEADS_BATCH_SIZE = 1000
#: Deepest nesting of arrays and objects a JSONL line may have; a deeper line is a row error.
#: An activity needs 2 (the object and its properties), so 32 only tells deep nesting apart
#: from a bad property. The check walks the line without recursing, where the JSON parser
#: would recurse once per level and fail past about 1,000.
MAX_JSON_DEPTH = 32

#: Rows read between two calls of an import's ``progress``.
PROGRESS_EVERY = 1000
#: Distinct (column, value) warnings an import of leads keeps; the cells beyond are counted.
MAX_WARNINGS = 50
#: The columns of a leads file that make its opt-in record (:class:`~nurturekit.lead.Consent`):
#: not attributes. ``consent_at``, ``consent_method`` and ``consent_wording`` are needed for
#: one; ``consent_source`` is optional.
CONSENT_COLUMNS = ("consent_at", "consent_method", "consent_wording", "consent_source")

_LEAD_FIELDS = ("id", "email", "name", "company", "source", "owner")
_NOT_ATTRIBUTES = frozenset(_LEAD_FIELDS + CONSENT_COLUMNS)
_ACTIVITY_COLUMNS = ("lead_id", "kind", "at", "key")
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
    data rows (blank lines aside) and equals ``imported + duplicates + len(errors)``.

    ``history`` counts the imported activities recorded as history (``history_before``);
    0 for leads. ``warnings`` are the values of imported leads no rule of the program can
    match, one per column and value, the first :data:`MAX_WARNINGS` of them; a warning is
    not an error (its row is imported). ``warnings_left_off`` counts the cells holding such
    values beyond those (values that are not among ``warnings``).
    """

    kind: str
    read: int
    imported: int
    duplicates: int
    errors: tuple[RowError, ...]
    history: int = 0
    warnings: tuple[RowWarning, ...] = ()
    warnings_left_off: int = 0

    def __str__(self) -> str:
        """``"activities: 10 read, 10 imported (7 as history), 0 duplicates, 0 errors"``;
        the history and the warnings are said only when there are some."""
        history = f" ({self.history} as history)" if self.history else ""
        text = (
            f"{self.kind}: {self.read} read, {self.imported} imported{history}, "
            f"{_count(self.duplicates, 'duplicate')}, {_count(len(self.errors), 'error')}"
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


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


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

    __slots__ = ("callback", "done", "total")

    def __init__(self, callback: Progress, path: str | os.PathLike[str]) -> None:
        self.callback = callback
        self.done = 0
        try:
            status = os.stat(path)
        except OSError:
            self.total: int | None = None  # _open says why
        else:
            self.total = status.st_size if stat.S_ISREG(status.st_mode) else None

    def tell(self) -> None:
        self.callback(self.done, self.total)

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
_CONSENT_WHERE = {
    "Consent.at": "Lead.consent_at",
    "Consent.method": "Lead.consent_method",
    "Consent.wording": "Lead.consent_wording",
    "Consent.source": "Lead.consent_source",
}
_CONSENT_EXAMPLE = "'2026-04-01T09:00:00+09:00', or the date alone, '2026-04-01' (00:00 UTC)"


def _consent_time(value: str) -> datetime:
    """A ``consent_at`` cell: an ISO 8601 time with a UTC offset, or a date (00:00 UTC)."""
    where = "Lead.consent_at"
    try:
        if _DATE.fullmatch(value):
            return datetime.combine(date.fromisoformat(value), time(), _UTC)
        parsed = isoparse(value)
    except (ValueError, OverflowError):
        raise InvalidLead(
            where, f"{_shown(value)} is not an ISO 8601 time or date; write {_CONSENT_EXAMPLE}"
        ) from None
    if parsed.tzinfo is None:
        raise InvalidLead(
            where, f"{_shown(value)} has no UTC offset; add one, or write {_CONSENT_EXAMPLE}"
        )
    return parsed


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _consent(row: Mapping[str, str]) -> Consent | None:
    """The opt-in record of a row: ``None`` when its consent cells are all empty."""
    cells = {column: row.get(column, "") for column in CONSENT_COLUMNS}
    if not any(cells.values()):
        return None
    missing = [column for column in CONSENT_COLUMNS[:3] if not cells[column]]
    if missing:
        given = [column for column in CONSENT_COLUMNS if cells[column]]
        raise InvalidLead(
            f"Lead.{missing[0]}",
            f"{_and(missing)} {'is' if len(missing) == 1 else 'are'} empty while "
            f"{_and(given)} {'is' if len(given) == 1 else 'are'} given; an opt-in "
            f"record needs consent_at, consent_method and consent_wording (consent_source "
            f"is optional): fill them in, or leave every consent cell of the row empty",
        )
    at = _consent_time(cells["consent_at"])
    try:
        return Consent(
            at=at,
            method=cells["consent_method"],
            wording=cells["consent_wording"],
            source=cells["consent_source"] or None,
        )
    except InvalidInput as exc:
        raise InvalidLead(_CONSENT_WHERE.get(exc.where, exc.where), exc.message) from None


def _lead(row: Mapping[str, str]) -> Lead:
    attributes: dict[str, Any] = {}
    for column, value in row.items():
        if column in _NOT_ATTRIBUTES or not value:
            continue
        if column == EMPLOYEES and value.isdecimal():
            attributes[column] = _int_cell(f"Lead.attributes[{column!r}]", value)
        else:
            attributes[column] = value
    return Lead(
        id=row["id"],
        email=row["email"],
        name=row.get("name") or None,
        company=row.get("company") or None,
        source=row.get("source") or None,
        owner=row.get("owner") or None,
        attributes=attributes,
        consent=_consent(row),
    )


def import_leads(
    engine: Engine, path: str | os.PathLike[str], *, progress: Progress | None = None
) -> ImportSummary:
    """Upsert every good lead of the CSV file at ``path``; report the bad rows.

    The header names the columns: ``id`` and ``email`` (required), ``name``, ``company``,
    ``source``, ``owner``, the opt-in record's columns (:data:`CONSENT_COLUMNS`, below), and
    any other column becomes an attribute (``industry``, ``time_zone`` …). Empty cells are
    left out; ``employees`` is stored as an int when it is digits. A lead already stored is
    updated (see :meth:`Engine.upsert_lead`) and counted as imported; ``duplicates`` is
    always 0 for leads. The good rows are upserted :data:`LEADS_BATCH_SIZE` at a time with
    :meth:`Engine.upsert_leads`, a transaction each; a row the store refuses to write is a
    :class:`RowError` ("not stored: …") and the rest of its batch is stored.

    The opt-in record (:attr:`Lead.consent <nurturekit.Lead.consent>`, which marketing mail
    needs): ``consent_at``, when, an ISO 8601 time with a UTC offset
    (``2026-04-01T09:00:00+09:00`` or ``…Z``) or a date alone (``2026-04-01``, read as 00:00
    UTC that day); ``consent_method``, how (``web form`` …); ``consent_wording``, the exact
    text agreed to; ``consent_source``, where (optional: the form's URL, the event). A row
    with some of the first three but not all is a :class:`RowError` naming the empty ones,
    and so is a bad ``consent_at``. A row whose consent cells are all empty has no record, and
    a stored lead keeps the one it has.

    A value of an imported lead that no condition of ``engine.program`` can match is a
    :class:`RowWarning` in the summary (see :mod:`nurturekit.attribute_values`): the row is
    imported all the same. ``progress`` is told the bytes read now and then (see
    :data:`Progress`).

    Raises :class:`ImportFileError` when the file cannot be read or lacks a required column.
    """
    tracker = _progress(progress, path)
    check = AttributeValueCheck(engine.program)
    matches = check.matches
    read = imported = left_off = 0
    errors: list[RowError] = []
    # (column, type, value) → [rows, first line]; the type keeps 1 and True apart.
    flagged: dict[tuple[str, type, AttributeValue], list[int]] = {}
    batch: list[tuple[int, Lead]] = []

    def flush() -> None:
        nonlocal imported, left_off
        summary = engine.upsert_leads([lead for _, lead in batch], batch_size=len(batch))
        refused = dict(summary.refused)
        for index, (line, lead) in enumerate(batch):
            error = refused.get(index)
            if error is not None:
                errors.append(RowError(line, None, f"not stored: {error}"))
                continue
            imported += 1
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

    for line, row in _csv_rows(path, ("id", "email"), tracker):
        read += 1
        if tracker is not None and read % PROGRESS_EVERY == 0:
            tracker.tell()
        if isinstance(row, RowError):
            errors.append(row)
            continue
        try:
            lead = _lead(row)
        except InvalidInput as exc:
            errors.append(_row_error(line, exc))
            continue
        batch.append((line, lead))
        if len(batch) >= LEADS_BATCH_SIZE:
            flush()
    if batch:
        flush()
    if tracker is not None:
        tracker.end()
    errors.sort(key=lambda error: error.line)
    warnings = tuple(
        RowWarning(column, value, rows, first, check.explain(column, value).reason)
        for (column, _, value), (rows, first) in flagged.items()
    )
    return ImportSummary(
        "leads",
        read,
        imported,
        0,
        tuple(errors),
        warnings=warnings,
        warnings_left_off=left_off,
    )


# --- activities -----------------------------------------------------------------------------------


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


def _long_int_error(line: int, text: str, exc: ValueError) -> RowError:
    """The row error for a JSON line that ``json.loads`` refused with a plain ValueError: an
    int too long for ``int()``, reported with the property (or field) that holds it."""
    data = json.loads(text, parse_int=_int_or_long)
    todo: list[tuple[str | None, Any]] = []
    if isinstance(data, dict):
        # A property is named by its own name (as in "Activity.properties['n']"), a field by its.
        for key, value in reversed(data.items()):
            if key == "properties" and isinstance(value, dict):
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


def _jsonl_activity(line: int, text: str) -> Activity | RowError:
    if _too_deep(text):
        return RowError(
            line,
            None,
            f"is nested more than {MAX_JSON_DEPTH} levels deep; write one JSON object per "
            f"line whose properties are str, int, float or bool",
        )
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return RowError(line, None, f"is not valid JSON: {exc.msg} (character {exc.colno})")
    except ValueError as exc:  # an int beyond Python's int-to-str limit (4,300 digits)
        return _long_int_error(line, text, exc)
    try:
        return Activity.from_dict(data)
    except InvalidInput as exc:
        return _row_error(line, exc)


def _jsonl_rows(
    path: str | os.PathLike[str], progress: _Progress | None = None
) -> Iterator[tuple[int, Activity | RowError]]:
    problems: dict[int, str] = {}
    with _open(path) as file:
        for line, text in enumerate(_lines(file, problems, progress), 1):
            if problems:
                yield line, RowError(line, None, problems.pop(line))
            elif text.strip():
                yield line, _jsonl_activity(line, text)


def _csv_activity_rows(
    path: str | os.PathLike[str], progress: _Progress | None = None
) -> Iterator[tuple[int, Activity | RowError]]:
    for line, row in _csv_rows(path, ("lead_id", "kind", "at"), progress):
        if isinstance(row, RowError):
            yield line, row
            continue
        data: dict[str, Any] = {
            "lead_id": row["lead_id"],
            "kind": row["kind"],
            "at": row["at"],
            "properties": {
                column: value
                for column, value in row.items()
                if column not in _ACTIVITY_COLUMNS and value
            },
        }
        if row.get("key"):
            data["key"] = row["key"]
        try:
            yield line, Activity.from_dict(data)
        except InvalidInput as exc:
            yield line, _row_error(line, exc)


def read_activities(path: str | os.PathLike[str]) -> Iterator[tuple[int, Activity | RowError]]:
    """The activities of a ``.jsonl`` or ``.csv`` file, one ``(line, activity or RowError)``
    per data row, streamed (see :func:`import_activities` for the columns)."""
    return _read_activities(path, None)


def _read_activities(
    path: str | os.PathLike[str], progress: _Progress | None
) -> Iterator[tuple[int, Activity | RowError]]:
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix in _JSONL_SUFFIXES:
        return _jsonl_rows(path, progress)
    if suffix == ".csv":
        return _csv_activity_rows(path, progress)
    raise ImportFileError(
        f"{os.fspath(path)}: activities are read from .jsonl or .csv files, "
        f"not {suffix or 'a file without a suffix'}"
    )


def import_activities(
    engine: Engine,
    path: str | os.PathLike[str],
    *,
    batch_size: int = BATCH_SIZE,
    history_before: datetime | None = None,
    progress: Progress | None = None,
) -> ImportSummary:
    """Record every good activity of the file at ``path``; report the bad rows.

    ``.jsonl`` (or ``.ndjson``): one JSON object per line in :meth:`Activity.from_dict` form
    (``lead_id``, ``kind``, ``at`` as ISO 8601 with a UTC offset, optional ``properties`` and
    ``key``). ``.csv``: columns ``lead_id``, ``kind``, ``at`` and optionally ``key``; every
    other column is a str property (empty cells left out).

    Activities are recorded with :meth:`Engine.record_many`, ``batch_size`` at a time, in the
    file's order. A row whose lead is not stored is reported (column ``lead_id``) and the rest
    are still recorded. An activity whose key is already stored counts as a duplicate.

    ``history_before`` (an aware datetime): an activity whose ``at`` is before it is recorded
    as history (``record_many(..., history=True)``): stored, scored and moving the lead
    through the stages, but starting no scenario and handing nobody off, so the import of a
    download of months ago sends no "thanks for downloading" now. The activities at or after
    it are recorded live. A batch holds activities of one kind only (one transaction each), so
    the file's order is kept when the two alternate. ``None`` (the default) records all live.
    The summary's ``history`` counts the activities recorded as history.

    ``progress`` is told the bytes read now and then (see :data:`Progress`).

    Raises :class:`ImportFileError` for another suffix, an unreadable file or a missing column;
    :class:`~nurturekit.errors.NaiveDatetime` for a ``history_before`` without a time zone.
    """
    tracker = _progress(progress, path)
    rows = _read_activities(path, tracker)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    cutoff = None if history_before is None else aware_utc(history_before, "history_before")
    read = imported = duplicates = history = 0
    errors: list[RowError] = []
    batch: list[tuple[int, Activity]] = []
    batch_is_history = False
    known: set[str] = set()

    def flush() -> None:
        nonlocal imported, duplicates, history
        # The leads not seen yet, looked up together: a row whose lead is not stored is an
        # error, and the rest are recorded.
        unseen = list(dict.fromkeys(a.lead_id for _, a in batch if a.lead_id not in known))
        if unseen:
            found = engine.storage.get_leads(unseen)
            missing = {lead_id for lead_id in unseen if lead_id not in found}
            if len(known) + len(found) > 100_000:
                known.clear()
            known.update(found)
            if missing:
                rows = batch[:]
                batch.clear()
                for line, activity in rows:
                    if activity.lead_id in missing:
                        errors.append(RowError(line, "lead_id", str(UnknownLead(activity.lead_id))))
                    else:
                        batch.append((line, activity))
                if not batch:
                    return
        try:
            results = engine.record_many(
                (activity for _, activity in batch), history=batch_is_history
            )
        except UnknownLead:
            # A lead removed since it was looked up: record the batch one by one instead.
            results = []
            for line, activity in batch:
                try:
                    results.append(engine.record(activity, history=batch_is_history))
                except UnknownLead as exc:
                    errors.append(RowError(line, "lead_id", str(exc)))
        for result in results:
            if result.stored:
                imported += 1
                if batch_is_history:
                    history += 1
            else:
                duplicates += 1
        batch.clear()

    for line, item in rows:
        read += 1
        if tracker is not None and read % PROGRESS_EVERY == 0:
            tracker.tell()
        if isinstance(item, RowError):
            errors.append(item)
            continue
        is_history = cutoff is not None and item.at < cutoff
        if batch and is_history is not batch_is_history:
            flush()
        batch_is_history = is_history
        batch.append((line, item))
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    if tracker is not None:
        tracker.end()
    errors.sort(key=lambda error: error.line)
    return ImportSummary("activities", read, imported, duplicates, tuple(errors), history=history)


def import_file(
    engine: Engine,
    path: str | os.PathLike[str],
    *,
    history_before: datetime | None = None,
    progress: Progress | None = None,
) -> ImportSummary:
    """Import leads or activities, telling them apart by the file: ``.jsonl``/``.ndjson`` are
    activities; a ``.csv`` whose header has ``lead_id`` is activities, else leads.

    ``history_before`` and ``progress`` are passed to :func:`import_activities` (a file of
    leads has no history: there it is not used) and ``progress`` to :func:`import_leads`.
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
        if "lead_id" in (cell.strip() for cell in header):
            return import_activities(engine, path, history_before=history_before, progress=progress)
        return import_leads(engine, path, progress=progress)
    if suffix in _JSONL_SUFFIXES:
        return import_activities(engine, path, history_before=history_before, progress=progress)
    raise ImportFileError(
        f"{os.fspath(path)}: the file is told apart by its suffix: leads come in a .csv file; "
        f"activities in a .jsonl (or .ndjson) file, or a .csv with a lead_id column; not "
        f"{suffix or 'a file without a suffix'}: rename it"
    )
