"""Import leads (CSV) and activities (JSONL or CSV) into an engine, row by row.

A bad row never stops an import: it is reported as a :class:`RowError` (the file's line, the
column and the reason) and the good rows are kept. Files are read as a stream, so a file of
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
from collections.abc import Iterator, Mapping
from typing import Any, TextIO

import attrs

from nurturekit.activity import Activity
from nurturekit.engine import Engine
from nurturekit.errors import InvalidInput, NurtureError, UnknownLead
from nurturekit.lead import EMPLOYEES, Lead

__all__ = [
    "ImportFileError",
    "ImportSummary",
    "RowError",
    "import_activities",
    "import_file",
    "import_leads",
]

#: Activities recorded per call of :meth:`Engine.record_many` (one transaction each).
BATCH_SIZE = 500

_LEAD_FIELDS = ("id", "email", "name", "company", "source", "owner")
_ACTIVITY_COLUMNS = ("lead_id", "kind", "at", "key")
_JSONL_SUFFIXES = (".jsonl", ".ndjson")
# "Lead.attributes['employees']", "Activity.properties['page']" (maybe followed by "[0]").
_NAMED = re.compile(r"^(?:attributes|properties)\[(['\"])(.*)\1\]")


class ImportFileError(NurtureError):
    """The file as a whole cannot be imported: unknown type, no header, a required column
    missing, not UTF-8 … Nothing after the point named was imported."""


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


def _open(path: str | os.PathLike[str]) -> TextIO:
    try:
        # utf-8-sig: a byte-order mark written by spreadsheet programs is not part of the header.
        return open(path, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise ImportFileError(f"{os.fspath(path)}: cannot open ({exc.strerror})") from None


def _csv_rows(
    path: str | os.PathLike[str], required: tuple[str, ...]
) -> Iterator[tuple[int, dict[str, str], int]]:
    """Yield ``(line, row, extra)`` for each non-blank data row: the line the row starts on, the
    row by header name (stripped cells, short rows padded with "") and how many cells it has
    beyond the header."""
    name = os.fspath(path)
    with _open(path) as file:
        reader = csv.reader(file)
        try:
            header = [cell.strip() for cell in next(reader)]
        except StopIteration:
            raise ImportFileError(f"{name}: is empty; the first line must be a header") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ImportFileError(f"{name}, line 1: cannot read the header ({exc})") from None
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
            except (csv.Error, UnicodeDecodeError) as exc:
                raise ImportFileError(
                    f"{name}, line {start}: cannot read the row ({exc})"
                ) from None
            end = reader.line_num
            if not cells or all(not cell.strip() for cell in cells):
                continue
            row = {column: "" for column in header}
            row.update(zip(header, (cell.strip() for cell in cells), strict=False))
            yield start, row, max(0, len(cells) - len(header))


def _extra_cells(line: int, extra: int) -> RowError:
    return RowError(
        line, None, f"has {extra} more cell(s) than the header has columns; check the quoting"
    )


# --- leads ----------------------------------------------------------------------------------------


def _lead(row: Mapping[str, str]) -> Lead:
    attributes: dict[str, Any] = {}
    for column, value in row.items():
        if column in _LEAD_FIELDS or not value:
            continue
        if column == EMPLOYEES and value.isdecimal():
            attributes[column] = int(value)
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
    for line, row, extra in _csv_rows(path, ("id", "email")):
        read += 1
        if extra:
            errors.append(_extra_cells(line, extra))
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


def _jsonl_rows(path: str | os.PathLike[str]) -> Iterator[tuple[int, Activity | RowError]]:
    name = os.fspath(path)
    with _open(path) as file:
        line = 0
        while True:
            line += 1
            try:
                text = file.readline()
            except UnicodeDecodeError as exc:
                raise ImportFileError(f"{name}, line {line}: not UTF-8 ({exc})") from None
            if not text:
                return
            if not text.strip():
                continue
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                yield (
                    line,
                    RowError(line, None, f"is not valid JSON: {exc.msg} (character {exc.colno})"),
                )
                continue
            try:
                yield line, Activity.from_dict(data)
            except InvalidInput as exc:
                yield line, _row_error(line, exc)


def _csv_activity_rows(path: str | os.PathLike[str]) -> Iterator[tuple[int, Activity | RowError]]:
    for line, row, extra in _csv_rows(path, ("lead_id", "kind", "at")):
        if extra:
            yield line, _extra_cells(line, extra)
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
        with _open(path) as file:
            try:
                header = next(csv.reader(file), [])
            except (csv.Error, UnicodeDecodeError) as exc:
                raise ImportFileError(
                    f"{os.fspath(path)}, line 1: cannot read the header ({exc})"
                ) from None
        if "lead_id" in (cell.strip() for cell in header):
            return import_activities(engine, path)
        return import_leads(engine, path)
    return import_activities(engine, path)
