"""The SQLite file under :class:`~nurturekit.storage.sqlite.SQLiteStorage`: opening it (the
checks that refuse a file, the pragmas, the migrations), running a statement with SQLite's
errors turned into :class:`~nurturekit.errors.StorageError`, and beginning and rolling back a
transaction.

:class:`SQLiteFile` is the store's base class and keeps nothing of its own: the store opens
the connection, holds the lock and the cache, and defines :meth:`SQLiteFile.transaction`.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from nurturekit.errors import StorageError
from nurturekit.storage import sqlite_sql as q

#: The page size of a new file, in bytes (SQLite's default is 4096).
_PAGE_SIZE = 16384
#: Rows per statement of :meth:`SQLiteFile._pages`.
_PAGE = 500


def _statements(script: str) -> list[str]:
    """Split a script into statements (``executescript`` would commit the open transaction)."""
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        statements.append(pending.strip())
    return statements


class SQLiteFile:
    """The connection-level half of :class:`~nurturekit.storage.sqlite.SQLiteStorage`."""

    path: str
    busy_timeout: float
    _conn: sqlite3.Connection
    _lock: threading.RLock
    #: How deep in transactions the store is (0: outside one).
    _depth: int
    _migrations: tuple[tuple[int, str], ...]

    def transaction(self) -> AbstractContextManager[None]:
        """One ``BEGIN IMMEDIATE`` … ``COMMIT``: see ``SQLiteStorage.transaction``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ opening

    def _open(self, synchronous: str) -> None:
        conn = self._conn
        try:
            conn.execute(q.BUSY_TIMEOUT.format(ms=int(self.busy_timeout * 1000)))
            # Read-only checks first: switching the journal mode writes to the file, and a
            # file we refuse must be left exactly as it was.
            self._version(conn)
            # Takes effect only in a new file (an existing one keeps its page size): a batch
            # dirties pages all over the states and the activity indexes, and each page costs
            # a WAL frame and a checkpoint copy, so fewer, larger pages write it faster.
            conn.execute(q.PAGE_SIZE.format(size=_PAGE_SIZE))
            (journal,) = conn.execute(q.JOURNAL_MODE_WAL).fetchone()
            if str(journal).lower() not in ("wal", "memory"):
                raise StorageError(
                    f"{self.path!r}: SQLite refused WAL mode (journal mode stays "
                    f"{journal!r}); put the file on a local file system"
                )
            conn.execute(q.SYNCHRONOUS.format(mode=synchronous))
            self._migrate(conn)
        except sqlite3.OperationalError as error:
            raise StorageError(f"cannot open the SQLite file {self.path!r}: {error}") from error
        except sqlite3.DatabaseError as error:
            raise StorageError(
                f"{self.path!r} is not a SQLite database or is damaged ({error}); nurturekit "
                "left it as it was. Give the path of a nurturekit database or of a new file"
            ) from error

    def _version(self, conn: sqlite3.Connection) -> int | None:
        """The file's schema version, ``None`` for an empty file; refuse anything else."""
        tables = [name for (name,) in conn.execute(q.TABLES).fetchall()]
        if not tables:
            return None
        if "nurturekit_meta" not in tables:
            shown = ", ".join(tables[:5]) + (", …" if len(tables) > 5 else "")
            raise StorageError(
                f"{self.path!r} is a SQLite database but not a nurturekit database (it has "
                f"tables {shown} and no nurturekit_meta table); nurturekit left it as it was. "
                "Give the path of a nurturekit database or of a new file"
            )
        row = conn.execute(q.READ_VERSION).fetchone()
        try:
            version = int(row[0])
        except (TypeError, ValueError):
            raise StorageError(
                f"{self.path!r}: the nurturekit_meta table holds no readable schema_version "
                f"({None if row is None else row[0]!r}); the file is damaged"
            ) from None
        latest = self._migrations[-1][0]
        if version > latest:
            raise StorageError(
                f"{self.path!r} is at nurturekit schema version {version}, newer than this "
                f"nurturekit's version {latest}; upgrade nurturekit to open it (nothing was "
                "written)"
            )
        return version

    def _migrate(self, conn: sqlite3.Connection) -> None:
        for version, script in self._migrations:
            with self.transaction():
                # Checked again under the write lock: another process may have got here first.
                current = self._version(conn)
                if current is None:
                    conn.execute(q.CREATE_META)
                    current = 0
                if current >= version:
                    continue
                try:
                    for statement in _statements(script):
                        conn.execute(statement)
                    self._move_data(conn, version)
                    conn.execute(q.WRITE_VERSION, (str(version),))
                except (sqlite3.Error, StorageError) as error:
                    raise StorageError(
                        f"{self.path!r}: the migration to schema version {version} failed "
                        f"({error}); the file stays at version {current}"
                    ) from error

    def _move_data(self, conn: sqlite3.Connection, version: int) -> None:
        """Move what the migration to ``version`` moves in Python, after its script and in the
        same transaction (a failure leaves the file at the version before); nothing here."""

    # ------------------------------------------------------------------ statements

    def _failed(self, error: sqlite3.Error) -> StorageError:
        if isinstance(error, sqlite3.OperationalError) and "locked" in str(error):
            return StorageError(
                f"{self.path!r}: {error} (another process held a write transaction for more "
                f"than busy_timeout={self.busy_timeout:g}s)"
            )
        return StorageError(f"{self.path!r}: {error}")

    def _run(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, params)
        except sqlite3.Error as error:
            raise self._failed(error) from error

    def _all(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as error:
                raise self._failed(error) from error

    @contextmanager
    def _read_snapshot(self) -> Iterator[None]:
        """Outside a transaction: one read transaction (``BEGIN`` without ``IMMEDIATE``, which
        takes no lock in WAL mode), so that several statements see one committed state of the
        file. Call with the lock held."""
        self._run(q.BEGIN_READ)
        try:
            yield
        finally:
            self._rollback()  # nothing was written: ending it is all that is left

    def _write(self, sql: str, params: Sequence[Any]) -> int:
        """Run one write statement, in its own transaction unless inside one; its row count.

        Its caller, holding the lock, then brings the cache up to date inside a transaction,
        and drops what it knows of the row's lead outside one: by then the write is committed
        and another connection may have written the same row since.
        """
        with self._lock:
            if self._depth:  # the common case, a batch: skip the context manager
                return self._run(sql, params).rowcount
            with self.transaction():
                return self._run(sql, params).rowcount

    def _pages(self, sql: str, params: Sequence[Any] = (), after: int | str = 0) -> Iterator[Any]:
        """Rows of ``sql`` (which selects its cursor first, ``seq`` or an id, and ends
        ``cursor > ? … LIMIT ?``) a page at a time, so that a long iteration neither holds the
        lock nor a read snapshot. ``after`` is below every cursor: ``0`` for ``seq``, ``""``
        for an id."""
        while True:
            rows = self._all(sql, (*params, after, _PAGE))
            yield from rows
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

    def _all_in(self, sql: str, ids: list[str]) -> list[Any]:
        """The rows of ``sql`` (whose ``{marks}`` is its ``IN`` list) for ``ids``, a few
        hundred ids a statement, outside a transaction in one read snapshot. Call with the
        lock held."""
        if not ids:
            return []
        with nullcontext() if self._depth else self._read_snapshot():
            return self._rows_in(sql, ids)

    def _rows_in(self, sql: str, ids: list[str]) -> list[Any]:
        """:meth:`_all_in` in the snapshot or transaction the caller is in."""
        rows: list[Any] = []
        for at in range(0, len(ids), q.IN_LIST):
            chunk = ids[at : at + q.IN_LIST]
            rows += self._all(sql.format(marks=",".join("?" * len(chunk))), chunk)
        return rows

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """``executemany``, with SQLite's errors turned into :class:`StorageError`."""
        try:
            self._conn.executemany(sql, rows)
        except sqlite3.Error as error:
            raise self._failed(error) from error

    def _one(self, sql: str, params: Sequence[Any]) -> Any:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchone()
            except sqlite3.Error as error:
                raise self._failed(error) from error

    # ------------------------------------------------------------------ transactions

    def _begin(self) -> None:
        """``BEGIN IMMEDIATE``, waiting up to ``busy_timeout`` for another process's write.

        SQLite's own busy handler sleeps longer and longer (up to 100 ms at a time) while the
        other process commits and begins again in well under a millisecond, so under steady
        contention a waiter could starve for seconds, past the leases of its claims. Here the
        wait is a poll of a millisecond or so, with the busy handler off for that one statement.
        """
        conn = self._conn
        try:
            conn.execute(q.BUSY_TIMEOUT.format(ms=0))
            try:
                deadline = time.monotonic() + self.busy_timeout
                pause = 0.0001
                while True:
                    try:
                        conn.execute(q.BEGIN)
                        return
                    except sqlite3.OperationalError as error:
                        left = deadline - time.monotonic()
                        if "locked" not in str(error) or left <= 0:
                            raise
                    time.sleep(min(left, pause * random.uniform(0.5, 1.5)))
                    pause = min(pause * 2, 0.002)
            finally:
                conn.execute(q.BUSY_TIMEOUT.format(ms=int(self.busy_timeout * 1000)))
        except sqlite3.Error as error:
            raise self._failed(error) from error

    def _rollback(self) -> None:
        try:
            if self._conn.in_transaction:
                self._conn.execute(q.ROLLBACK)
        except sqlite3.Error as error:
            raise self._failed(error) from error
