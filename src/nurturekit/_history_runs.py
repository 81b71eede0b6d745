"""History rows of an import sorted by lead, however many: an external merge sort.

An import records its history sorted by lead (see :func:`nurturekit.importer.import_activities`)
so that its transactions read and write the store's pages one after the other. Sorted a batch
at a time, the rows of a history spread over a million leads still touch most of the pages of
the state tables in every batch: on SQLite, with 1,000,000 leads (benchmarks/bulk.py's data),
the write-ahead log took 23 KB a row for 200,000 activities in 20,000-row batches, and each
commit some 46 µs a row. Sorted as a whole, each transaction covers a narrow band of leads:
2 µs a row of commit.

:class:`HistoryRun` keeps up to ``size`` rows in memory; past that it sorts them and writes
them to an anonymous temporary file (some 100 bytes a row, deleted when closed and by the
system if the process dies), and in the end merges the parts written. All parts share one
file (and one more for their keys), so a run of any length holds two files open. Rows are
written with :mod:`pickle`, read back only by the process that wrote them: 100,000 rows in
parts of 20,000 cost 6 µs a row to sort and write, 10 µs to merge, read and build again.
(Building the activities from the checked parts without their checks measured 2–6% faster
on 200,000 rows, within the noise: not done.)
"""

from __future__ import annotations

import heapq
import pickle
import tempfile
from collections.abc import Iterator
from datetime import datetime
from typing import IO, Any

from nurturekit.activity import Activity

#: A row of an import: its line in the file and its activity.
Row = tuple[int, Activity]
#: A row as written to a file: line, lead id, kind, time, properties (``None``: none), key.
_Parts = tuple[int, str, str, datetime, dict[str, Any] | None, str]

#: Rows pickled together: enough to amortise a call, few enough that the merge, which holds
#: a block of each part, holds little (50 parts at 1,000,000 rows sorted 20,000 at a time).
_BLOCK = 100


def _lead_of(row: Row) -> str:
    return row[1].lead_id


def _line_of(row: Row) -> int:
    return row[0]


def _parts(row: Row) -> _Parts:
    line, a = row
    return (line, a.lead_id, a.kind, a.at, dict(a.properties) if a.properties else None, a.key)


def _blocks(file: IO[bytes], start: int, end: int) -> Iterator[list[Any]]:
    """The pickled blocks of ``file`` from offset ``start`` to ``end``, read a block at a
    time (other parts of the same file are read in between)."""
    at = start
    while at < end:
        file.seek(at)
        block: list[Any] = pickle.load(file)
        at = file.tell()
        yield block


def _rows_of(file: IO[bytes], start: int, end: int) -> Iterator[Row]:
    for block in _blocks(file, start, end):
        for line, lead_id, kind, at, properties, key in block:
            yield (
                line,
                Activity(lead_id=lead_id, kind=kind, at=at, properties=properties or {}, key=key),
            )


def _pairs_of(file: IO[bytes], start: int, end: int) -> Iterator[tuple[str, str]]:
    for block in _blocks(file, start, end):
        yield from block


def _dump(items: list[Any], file: IO[bytes]) -> tuple[int, int]:
    """Write ``items`` at the end of ``file`` in blocks; where they start and end."""
    start = file.seek(0, 2)
    dump = pickle.dump
    for first in range(0, len(items), _BLOCK):
        dump(items[first : first + _BLOCK], file, protocol=5)
    return start, file.tell()


class HistoryRun:
    """The history rows of one run of an import (rows in a row of the file that are all
    history), to be recorded sorted by lead.

    :meth:`add` the rows in the file's order; then :meth:`by_lead` gives them sorted by lead
    id, each lead's in the file's order (the sort is stable), and :meth:`in_file_order` gives
    them back as read. :meth:`shares_a_key` says whether one idempotency key is given to
    rows of two leads. :meth:`close` deletes the temporary files (``with`` does it too).

    >>> from datetime import datetime, timezone
    >>> at = datetime(2026, 4, 1, tzinfo=timezone.utc)
    >>> with HistoryRun(size=2) as run:
    ...     for line, lead in enumerate(["b", "a", "b", "a", "c"], start=2):
    ...         run.add((line, Activity(lead_id=lead, kind="page_view", at=at, key=f"k{line}")))
    ...     print([(line, a.lead_id) for line, a in run.by_lead()])
    [(3, 'a'), (5, 'a'), (2, 'b'), (4, 'b'), (6, 'c')]
    """

    __slots__ = (
        "_file",
        "_key_file",
        "_key_parts",
        "_parts",
        "_rows",
        "count",
        "last_line",
        "size",
    )

    def __init__(self, size: int) -> None:
        self.size = size
        #: The rows added, and the line of the last.
        self.count = 0
        self.last_line = 0
        self._rows: list[Row] = []
        #: The rows written, each part sorted by lead, and where each part is in it.
        self._file: IO[bytes] | None = None
        self._parts: list[tuple[int, int]] = []
        #: Each part's (key, lead id) pairs, sorted and without repeats, and where.
        self._key_file: IO[bytes] | None = None
        self._key_parts: list[tuple[int, int]] = []

    def __enter__(self) -> HistoryRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def spilled(self) -> bool:
        """Whether rows were written to files: the run is larger than ``size``."""
        return bool(self._parts)

    def add(self, row: Row) -> None:
        if len(self._rows) >= self.size:
            self._spill()
        self._rows.append(row)
        self.count += 1
        self.last_line = row[0]

    def _spill(self) -> None:
        rows = self._rows
        if not rows:
            return
        if self._file is None or self._key_file is None:
            # Kept open until close(): the merge reads them back.
            self._file = tempfile.TemporaryFile(prefix="nurturekit-history-")  # noqa: SIM115
            self._key_file = tempfile.TemporaryFile(prefix="nurturekit-keys-")  # noqa: SIM115
        rows.sort(key=_lead_of)
        self._parts.append(_dump([_parts(row) for row in rows], self._file))
        pairs = sorted({(a.key, a.lead_id) for _, a in rows})
        self._key_parts.append(_dump(pairs, self._key_file))
        rows.clear()

    def _finish(self) -> list[Iterator[Row]]:
        """Every part's rows, sorted by lead, the rows still in memory written as the last
        part (so that all are read the same way)."""
        self._spill()
        file = self._file
        assert file is not None
        file.flush()
        return [_rows_of(file, start, end) for start, end in self._parts]

    def in_memory(self) -> list[Row] | None:
        """The rows in the file's order, if none was written to a file; else ``None``."""
        return None if self._parts else self._rows

    def by_lead(self) -> Iterator[Row]:
        """The rows sorted by lead id, each lead's in the file's order."""
        if not self._parts:
            yield from sorted(self._rows, key=_lead_of)
            return
        # heapq.merge takes equal leads from the earlier part first: the sort stays stable.
        yield from heapq.merge(*self._finish(), key=_lead_of)

    def in_file_order(self) -> Iterator[Row]:
        """The rows as they were added."""
        if not self._parts:
            yield from self._rows
            return
        # Each part holds the rows added after the previous one's: read them one part at a
        # time, each sorted back into the file's order.
        for part in self._finish():
            yield from sorted(part, key=_line_of)

    def shares_a_key(self) -> bool:
        """Whether one idempotency key is given to activities of two leads (then the first
        row in the file with it must be the one stored, and the rows keep the file's
        order)."""
        if not self._parts:
            owners: dict[str, str] = {}
            return any(owners.setdefault(a.key, a.lead_id) != a.lead_id for _, a in self._rows)
        self._finish()
        keys = self._key_file
        assert keys is not None
        keys.flush()
        last: tuple[str, str] | None = None
        parts = (_pairs_of(keys, start, end) for start, end in self._key_parts)
        for key, lead_id in heapq.merge(*parts):
            if last is not None and last[0] == key and last[1] != lead_id:
                return True
            last = (key, lead_id)
        return False

    def close(self) -> None:
        """Delete the temporary files and forget the rows."""
        for file in (self._file, self._key_file):
            if file is not None:
                file.close()
        self._file = self._key_file = None
        self._parts.clear()
        self._key_parts.clear()
        self._rows.clear()
