"""Import leads (CSV) and activities (JSONL or CSV) into an engine, row by row.

A bad row never stops an import: it is reported as a :class:`RowError` (the file's line, the
column and the reason) and the good rows are kept. That holds for hostile rows too: a line that
is not UTF-8, a number outside the 64-bit range that :class:`~nurturekit.Lead` and
:class:`~nurturekit.Activity` accept (even one of thousands of digits), a JSON line nested more
than :data:`MAX_JSON_DEPTH` levels deep. Files are read as a stream, line by line, so a file of
any size fits in memory; only the row errors are kept.

    >>> from nurturekit.importer import import_leads       # doctest: +SKIP
    >>> print(import_leads(engine, "leads.csv"))           # doctest: +SKIP
    leads: 3 read, 2 imported, 0 duplicates, 1 error
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

import attrs

from nurturekit.activity import Activity
from nurturekit.checks import int_problem as _int_problem
from nurturekit.engine import Engine
from nurturekit.errors import InvalidInput, InvalidLead, NurtureError, UnknownLead
from nurturekit.lead import EMPLOYEES, Lead

__all__ = [
    "MAX_JSON_DEPTH",
    "ImportFileError",
    "ImportSummary",
    "RowError",
    "import_activities",
    "import_file",
    "import_leads",
]

#: Activities recorded per call of :meth:`Engine.record_many` (one transaction each).
BATCH_SIZE = 500
#: Deepest nesting of arrays and objects a JSONL line may have; a deeper line is a row error.
#: An activity needs 2 (the object and its properties), so 32 only tells deep nesting apart
#: from a bad property. The check walks the line without recursing, where the JSON parser
#: would recurse once per level and fail past about 1,000.
MAX_JSON_DEPTH = 32

_LEAD_FIELDS = ("id", "email", "name", "company", "source", "owner")
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
class ImportSummary:
    """What one import did. ``kind`` is ``"leads"`` or ``"activities"``; ``read`` counts the
    data rows (blank lines aside) and equals ``imported + duplicates + len(errors)``."""

    kind: str
    read: int
    imported: int
    duplicates: int
    errors: tuple[RowError, ...]

    def __str__(self) -> str:
        return (
            f"{self.kind}: {self.read} read, {self.imported} imported, "
            f"{_count(self.duplicates, 'duplicate')}, {_count(len(self.errors), 'error')}"
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


def _not_utf8(raw: bytes, exc: UnicodeDecodeError) -> str:
    return (
        f"is not UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} of the line: "
        f"{exc.reason}); save the file as UTF-8"
    )


def _lines(file: Iterable[bytes], problems: dict[int, str]) -> Iterator[str]:
    """The lines of ``file`` as text, with their line ends, one at a time. A line that is not
    UTF-8 is decoded with U+FFFD in place of the bad bytes, and why it is bad is put in
    ``problems`` under its number (the first line is 1)."""
    number = 0
    first = True
    for raw in file:
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
    path: str | os.PathLike[str], required: tuple[str, ...]
) -> Iterator[tuple[int, dict[str, str] | RowError]]:
    """Yield ``(line, row)`` for each non-blank data row: the line the row starts on and the
    row by header name (stripped cells, short rows padded with ""), or a :class:`RowError`
    for a row with more cells than the header has columns or a line that is not UTF-8."""
    name = os.fspath(path)
    problems: dict[int, str] = {}
    with _open(path) as file:
        reader = csv.reader(_lines(file, problems))
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


def _lead(row: Mapping[str, str]) -> Lead:
    attributes: dict[str, Any] = {}
    for column, value in row.items():
        if column in _LEAD_FIELDS or not value:
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
    )


def import_leads(engine: Engine, path: str | os.PathLike[str]) -> ImportSummary:
    """Upsert every good lead of the CSV file at ``path``; report the bad rows.

    The header names the columns: ``id`` and ``email`` (required), ``name``, ``company``,
    ``source``, ``owner``, and any other column becomes an attribute (``industry``,
    ``time_zone`` …). Empty cells are left out; ``employees`` is stored as an int when it is
    digits. A lead already stored is updated (see :meth:`Engine.upsert_lead`) and counted as
    imported; ``duplicates`` is always 0 for leads.

    Raises :class:`ImportFileError` when the file cannot be read or lacks a required column.
    """
    read = imported = 0
    errors: list[RowError] = []
    for line, row in _csv_rows(path, ("id", "email")):
        read += 1
        if isinstance(row, RowError):
            errors.append(row)
            continue
        try:
            lead = _lead(row)
        except InvalidInput as exc:
            errors.append(_row_error(line, exc))
            continue
        engine.upsert_lead(lead)
        imported += 1
    return ImportSummary("leads", read, imported, 0, tuple(errors))


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


def _jsonl_rows(path: str | os.PathLike[str]) -> Iterator[tuple[int, Activity | RowError]]:
    problems: dict[int, str] = {}
    with _open(path) as file:
        for line, text in enumerate(_lines(file, problems), 1):
            if problems:
                yield line, RowError(line, None, problems.pop(line))
            elif text.strip():
                yield line, _jsonl_activity(line, text)


def _csv_activity_rows(path: str | os.PathLike[str]) -> Iterator[tuple[int, Activity | RowError]]:
    for line, row in _csv_rows(path, ("lead_id", "kind", "at")):
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
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix in _JSONL_SUFFIXES:
        return _jsonl_rows(path)
    if suffix == ".csv":
        return _csv_activity_rows(path)
    raise ImportFileError(
        f"{os.fspath(path)}: activities are read from .jsonl or .csv files, "
        f"not {suffix or 'a file without a suffix'}"
    )


def import_activities(
    engine: Engine, path: str | os.PathLike[str], *, batch_size: int = BATCH_SIZE
) -> ImportSummary:
    """Record every good activity of the file at ``path``; report the bad rows.

    ``.jsonl`` (or ``.ndjson``): one JSON object per line in :meth:`Activity.from_dict` form
    (``lead_id``, ``kind``, ``at`` as ISO 8601 with a UTC offset, optional ``properties`` and
    ``key``). ``.csv``: columns ``lead_id``, ``kind``, ``at`` and optionally ``key``; every
    other column is a str property (empty cells left out).

    Activities are recorded with :meth:`Engine.record_many`, ``batch_size`` at a time. A row
    whose lead is not stored is reported (column ``lead_id``) and the rest are still recorded.
    An activity whose key is already stored counts as a duplicate.

    Raises :class:`ImportFileError` for another suffix, an unreadable file or a missing column.
    """
    rows = read_activities(path)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    read = imported = duplicates = 0
    errors: list[RowError] = []
    batch: list[tuple[int, Activity]] = []
    known: set[str] = set()

    def flush() -> None:
        nonlocal imported, duplicates
        try:
            results = engine.record_many(activity for _, activity in batch)
        except UnknownLead:
            # A lead removed since it was looked up: record the batch one by one instead.
            results = []
            for line, activity in batch:
                try:
                    results.append(engine.record(activity))
                except UnknownLead as exc:
                    errors.append(RowError(line, "lead_id", str(exc)))
        for result in results:
            if result.stored:
                imported += 1
            else:
                duplicates += 1
        batch.clear()

    for line, item in rows:
        read += 1
        if isinstance(item, RowError):
            errors.append(item)
            continue
        if item.lead_id not in known:
            if engine.storage.get_lead(item.lead_id) is None:
                errors.append(RowError(line, "lead_id", str(UnknownLead(item.lead_id))))
                continue
            if len(known) >= 100_000:
                known.clear()
            known.add(item.lead_id)
        batch.append((line, item))
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    errors.sort(key=lambda error: error.line)
    return ImportSummary("activities", read, imported, duplicates, tuple(errors))


def import_file(engine: Engine, path: str | os.PathLike[str]) -> ImportSummary:
    """Import leads or activities, telling them apart by the file: ``.jsonl``/``.ndjson`` are
    activities; a ``.csv`` whose header has ``lead_id`` is activities, else leads."""
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
            return import_activities(engine, path)
        return import_leads(engine, path)
    if suffix in _JSONL_SUFFIXES:
        return import_activities(engine, path)
    raise ImportFileError(
        f"{os.fspath(path)}: the file is told apart by its suffix: leads come in a .csv file; "
        f"activities in a .jsonl (or .ndjson) file, or a .csv with a lead_id column; not "
        f"{suffix or 'a file without a suffix'}: rename it"
    )
