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
system if the process dies), and in the end merges the files. Rows are written with
:mod:`pickle`, read back only by the process that wrote them, into activities built from
parts their first reading checked (:func:`nurturekit._fast.maker`): 8 µs a row there and back,
where building each again with its checks cost 19.
"""

from __future__ import annotations

import heapq
import pickle
import tempfile
from collections.abc import Iterator
from datetime import datetime
from types import MappingProxyType
from typing import IO, Any

from nurturekit._fast import maker
from nurturekit.activity import Activity

#: A row of an import: its line in the file and its activity.
Row = tuple[int, Activity]
#: A row as written to a file: line, lead id, kind, time, properties (``None``: none), key.
_Parts = tuple[int, str, str, datetime, dict[str, Any] | None, str]

#: Rows pickled together: enough to amortise a call, few enough that the merge, which holds
#: a block of each file, holds little (50 files at 1,000,000 rows sorted 20,000 at a time).
_BLOCK = 200

_make_activity = maker(Activity)
_NO_PROPERTIES: Any = MappingProxyType({})


def _lead_of(row: Row) -> str:
    return row[1].lead_id


def _line_of(row: Row) -> int:
    return row[0]


def _parts(row: Row) -> _Parts:
    line, a = row
    return (line, a.lead_id, a.kind, a.at, dict(a.properties) if a.properties else None, a.key)


def _rows_of(file: IO[bytes]) -> Iterator[Row]:
    file.seek(0)
    load = pickle.load
    make = _make_activity
    while True:
        try:
            block: list[_Parts] = load(file)
        except EOFError:
            return
        for line, lead_id, kind, at, properties, key in block:
            held = _NO_PROPERTIES if properties is None else MappingProxyType(properties)
            yield line, make(lead_id, kind, at, held, key)


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

    __slots__ = ("_files", "_keys", "_rows", "count", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.count = 0
        self._rows: list[Row] = []
        #: One file a spilled part: its rows sorted by lead.
        self._files: list[IO[bytes]] = []
        #: One file a spilled part: its (key, lead id) pairs, sorted and without repeats.
        self._keys: list[IO[bytes]] = []

    def __enter__(self) -> HistoryRun:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def spilled(self) -> bool:
        """Whether rows were written to files: the run is larger than ``size``."""
        return bool(self._files)

    def add(self, row: Row) -> None:
        if len(self._rows) >= self.size:
            self._spill()
        self._rows.append(row)
        self.count += 1

    def _spill(self) -> None:
        rows = self._rows
        if not rows:
            return
        rows.sort(key=_lead_of)
        # Kept open until close(): the merge reads it back.
        file = tempfile.TemporaryFile(prefix="nurturekit-history-")  # noqa: SIM115
        self._files.append(file)
        dump = pickle.dump
        for start in range(0, len(rows), _BLOCK):
            dump([_parts(row) for row in rows[start : start + _BLOCK]], file, protocol=5)
        pairs = sorted({(a.key, a.lead_id) for _, a in rows})
        keys = tempfile.TemporaryFile(prefix="nurturekit-keys-")  # noqa: SIM115
        self._keys.append(keys)
        for start in range(0, len(pairs), _BLOCK):
            dump(pairs[start : start + _BLOCK], keys, protocol=5)
        rows.clear()

    def _finish(self) -> list[Iterator[Row]]:
        """Every part's rows, sorted by lead: the files', and the rows still in memory
        (spilled too, so that all are read the same way)."""
        if self._files:
            self._spill()
            for file in (*self._files, *self._keys):
                file.flush()
        return [_rows_of(file) for file in self._files]

    def in_memory(self) -> list[Row] | None:
        """The rows in the file's order, if none was written to a file; else ``None``."""
        return None if self._files else self._rows

    def by_lead(self) -> Iterator[Row]:
        """The rows sorted by lead id, each lead's in the file's order."""
        if not self._files:
            yield from sorted(self._rows, key=_lead_of)
            return
        # heapq.merge takes equal leads from the earlier part first: the sort stays stable.
        yield from heapq.merge(*self._finish(), key=_lead_of)

    def in_file_order(self) -> Iterator[Row]:
        """The rows as they were added."""
        if not self._files:
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
        if not self._files:
            owners: dict[str, str] = {}
            return any(owners.setdefault(a.key, a.lead_id) != a.lead_id for _, a in self._rows)
        self._finish()
        last: tuple[str, str] | None = None
        for key, lead_id in heapq.merge(*(_pairs_of(file) for file in self._keys)):
            if last is not None and last[0] == key and last[1] != lead_id:
                return True
            last = (key, lead_id)
        return False

    def close(self) -> None:
        """Delete the temporary files and forget the rows."""
        for file in (*self._files, *self._keys):
            file.close()
        self._files.clear()
        self._keys.clear()
        self._rows.clear()


def _pairs_of(file: IO[bytes]) -> Iterator[tuple[str, str]]:
    file.seek(0)
    while True:
        try:
            yield from pickle.load(file)
        except EOFError:
            return
