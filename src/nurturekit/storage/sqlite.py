"""A :class:`~nurturekit.ports.Storage` in one SQLite file: the embedded default.

Standard-library :mod:`sqlite3` only. The file is in WAL mode, so readers never wait for the
writer; every write runs in a ``BEGIN IMMEDIATE`` transaction, so several processes can share
one file and two workers never claim the same enrolment. The schema carries its version in a
``nurturekit_meta`` table and is migrated forward when a file is opened.

What the engine reads per activity (the lead, its state, history and enrolments) is kept
decoded in a per-store cache that ``PRAGMA data_version`` keeps exact (see
:class:`~nurturekit.storage.sqlite_cache.LeadCache`), and lead states put inside a transaction are
written once each, just before its ``COMMIT``. A state is a row of what does not grow with the
lead's history and a row per score line, activity time and seen key, and a write appends only
the items that are new (see :mod:`nurturekit.storage.sqlite_states`), so its cost does not grow
with the history.

The SQL is in :mod:`~nurturekit.storage.sqlite_sql`, the cache in
:mod:`~nurturekit.storage.sqlite_cache`, the states' layout in
:mod:`~nurturekit.storage.sqlite_states`, opening the file and running statements in
:mod:`~nurturekit.storage.sqlite_file`; here, the port over that cache.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
from bisect import insort
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from nurturekit.activity import Activity
from nurturekit.errors import StorageError
from nurturekit.handoff import Handoff
from nurturekit.lead import ContactStatus, Lead
from nurturekit.messages import OutgoingMail, SendStatus
from nurturekit.ports import LeadState, OutboxEntry, SendCheck, TestSend
from nurturekit.scenario import Enrollment
from nurturekit.storage import sqlite_sql as q
from nurturekit.storage._states import copy_state
from nurturekit.storage.codec import (
    ActivityColumns,
    Memo,
    activity_columns,
    activity_from_columns,
    enrollment_from_json,
    handoff_from_json,
    handoff_to_json,
    lead_from_json,
    lead_to_json,
    mail_from_json,
)
from nurturekit.storage.sqlite_cache import CacheEntry, LeadCache
from nurturekit.storage.sqlite_file import SQLiteFile
from nurturekit.storage.sqlite_rows import (
    enrollment_row,
    mail_row,
    move_activities,
    optional_stamp,
    stamp,
    utc_stamp,
)
from nurturekit.storage.sqlite_states import StateWrites, Written, move_states, read_states

__all__ = ["SCHEMA_VERSION", "SQLiteStorage"]

#: The schema version this code writes (see :mod:`nurturekit.storage.sqlite_sql`).
SCHEMA_VERSION = q.SCHEMA_VERSION

_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
#: Keys per statement of hold_mail (SQLite allows 999 parameters in older builds).
_KEYS_PER_STATEMENT = 500
#: Decoded values kept by their text (two generations of this many; see codec.Memo). More
#: only keeps what a run read once: 20,000 held 40 MB more when sending to 100,000 leads.
_MEMO_SIZE = 2_000
#: Sends kept decoded by their text: those written by a run's steps are what its delivery
#: claims next (``run_due`` claims 500 steps by default). Kept because it pays: send.py,
#: alternating runs on 2026-12-06, median of paired ratios +9.1% at 20,000 leads (8 runs) and
#: +9.5% at 100,000 (4 runs) against decoding every claimed send.
_MAILS_KEPT = 500


def _by_key_only(key: str) -> Any:
    """The decoder of the memos of leads and activities, which are read by key
    (``Memo.get``) only."""
    raise LookupError(f"{key!r}: this memo decodes nothing itself")


def _lead_text(lead_id: str, body: str) -> str:
    """The key of a lead's row in the memo of leads: its id and body, unambiguously."""
    return f"{len(lead_id)}:{lead_id}{body}"


#: Values the per-lead cache keeps by default (see :class:`LeadCache`).
_CACHE_SIZE = 100_000


def _in_order(history: list[Activity]) -> list[Activity]:
    """A lead's activities as read (in time order), those of one time put in key order."""
    if len(history) > 1:
        history.sort(key=_activity_order)
    return history


def _activity_order(activity: Activity) -> tuple[datetime, str]:
    return (activity.at, activity.key)


def _outbox_entry(
    body: str,
    status: str | None,
    detail: str,
    attempts: int,
    updated_at: str | None,
    retry_at: str | None,
) -> OutboxEntry:
    return OutboxEntry(
        mail=mail_from_json(body),
        status=None if status is None else SendStatus(status),
        detail=detail,
        attempts=attempts,
        updated_at=None if updated_at is None else datetime.fromisoformat(updated_at),
        retry_at=None if retry_at is None else datetime.fromisoformat(retry_at),
    )


class SQLiteStorage(SQLiteFile):
    """A :class:`~nurturekit.ports.Storage` kept in the SQLite file at ``path``.

    >>> from nurturekit.storage.sqlite import SQLiteStorage
    >>> with SQLiteStorage("nurture.db") as storage:  # doctest: +SKIP
    ...     engine = Engine(program, storage, mailer)

    A new or empty file gets the schema; a file at an older schema version is migrated. A file
    that is not SQLite, is damaged, is some other program's database or was written by a newer
    nurturekit is refused with :class:`~nurturekit.errors.StorageError` and left as it was.

    ``busy_timeout`` is how many seconds a write waits for another process's transaction to
    end before giving up with :class:`~nurturekit.errors.StorageError`. ``synchronous`` is
    SQLite's durability setting: ``"FULL"`` (the default) syncs the log at every commit, so a
    committed transaction survives a power cut; ``"NORMAL"`` is faster and may lose the last
    commits on power loss, never consistency. ``cache_size`` bounds how many decoded values
    the store keeps between transactions, about 1 KB each, so the default is some 100 MB: a
    lead, each of its activities and enrolments count one, the items of its state what they
    take (a score line a quarter); ``0`` turns the cache off (see docs/storage.md).

    One connection serves every thread of the process; a lock held for a whole
    :meth:`transaction` serialises them. Other processes may open the same file: each
    transaction is ``BEGIN IMMEDIATE``, so writers queue and claims never overlap.
    """

    _migrations: tuple[tuple[int, str], ...] = q.MIGRATIONS

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 10.0,
        synchronous: str = "FULL",
        cache_size: int = _CACHE_SIZE,
    ) -> None:
        self.path = os.fsdecode(path)
        mode = str(synchronous).upper()
        if mode not in _SYNCHRONOUS:
            raise StorageError(
                f"SQLiteStorage(synchronous={synchronous!r}): expected one of "
                f"{', '.join(_SYNCHRONOUS)}"
            )
        if not (isinstance(busy_timeout, (int, float)) and 0 <= busy_timeout < math.inf):
            raise StorageError(
                f"SQLiteStorage(busy_timeout={busy_timeout!r}): expected a number of seconds "
                "of 0 or more"
            )
        if not isinstance(cache_size, int) or isinstance(cache_size, bool) or cache_size < 0:
            raise StorageError(
                f"SQLiteStorage(cache_size={cache_size!r}): expected a whole number of values, "
                "0 or more (0 turns the cache off)"
            )
        self.busy_timeout = float(busy_timeout)
        self._cache = LeadCache(cache_size)
        #: States put in the open transaction and not written yet, by lead id: see
        #: _write_states.
        self._unwritten: dict[str, LeadState] = {}
        #: Leads whose cached state get_state handed out itself in the open transaction: see
        #: get_state.
        self._lent: set[str] = set()
        #: Leads that get_states found without a state in the open transaction, and did not
        #: cache (a batch read caches no empty entries): their first state is written without
        #: deleting rows first (see _write_states).
        self._absent: set[str] = set()
        self._data_version: int | None = None
        self._lock = threading.RLock()
        self._depth = 0
        # Keyed by _lead_text: a lead's body leaves its id out (the row's key).
        self._lead: Memo[Lead] = Memo(_by_key_only, _MEMO_SIZE)
        # Keyed by the activity's key: a row is never changed once written.
        self._activity: Memo[Activity] = Memo(_by_key_only, _MEMO_SIZE)
        self._enrollment = Memo(enrollment_from_json, _MEMO_SIZE)
        self._handoff = Memo(handoff_from_json, _MEMO_SIZE)
        self._mail = Memo(mail_from_json, _MAILS_KEPT)
        try:
            self._conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as error:
            raise StorageError(f"cannot open the SQLite file {self.path!r}: {error}") from error
        try:
            self._open(mode)
        except BaseException:
            self._conn.close()
            raise

    def __repr__(self) -> str:
        return f"SQLiteStorage({self.path!r})"

    def _move_data(self, conn: sqlite3.Connection, version: int) -> None:
        move_states(conn, version)
        if version == 7:
            move_activities(conn)

    def _lead_of(self, lead_id: str, body: str) -> Lead:
        """The lead of a row of ``leads``, decoded once for all who read it."""
        text = _lead_text(lead_id, body)
        found = self._lead.get(text)
        if found is None:
            found = lead_from_json(body, lead_id)
            self._lead.keep(text, found)
        return found

    def _activity_of(self, row: ActivityColumns) -> Activity:
        """The activity of a row of ``activities`` (key, lead_id, kind, at, properties),
        decoded once for all who read it."""
        key = row[0]
        text = key.hex() if isinstance(key, bytes) else key
        found = self._activity.get(text)
        if found is None:
            found = activity_from_columns(*row)
            self._activity.keep(found.key, found)
        return found

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Close the connection; an open transaction is rolled back. Closing twice is fine."""
        with self._lock:
            self._conn.close()
            self._cache.clear()
            self._unwritten.clear()

    def __enter__(self) -> SQLiteStorage:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # ------------------------------------------------------------------ statements

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A unit of work: one ``BEGIN IMMEDIATE`` … ``COMMIT`` SQLite transaction.

        Nested calls join the outer one. The lock of this store is held until the outermost
        call ends, so other threads wait; other processes wait up to ``busy_timeout`` for
        their own writes.
        """
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._begin()
            self._depth = 1
            try:
                self._check_cache()
                yield
                if self._unwritten or self._lent:
                    self._write_states()
            except BaseException:
                self._depth = 0
                self._unwritten.clear()
                self._lent.clear()
                self._absent.clear()
                self._cache.clear()  # it may hold writes the rollback undoes
                self._rollback()
                raise
            self._depth = 0
            self._absent.clear()
            self._commit()

    def _write_states(self) -> None:
        """Write the states put in this transaction, the last one of each lead, all at once.

        Inside a transaction :meth:`put_state` only keeps the state (a lead's state is put
        once per activity, and only :meth:`get_state` reads it back); the rows are written
        here, just before ``COMMIT``, so a batch writes each lead's state once, and in the same
        SQLite transaction as everything else: its row, and the rows of the items new since
        the store last wrote or read it (all of them if the cache does not know; see
        :mod:`~nurturekit.storage.sqlite_states`). If a write fails, the cache is dropped, as
        what it says the file holds may no longer be so.

        A state :meth:`get_state` lent in the transaction and not put back may have been
        changed without being written: the cache forgets it, and reads it from the file again.
        """
        cache = self._cache
        lent = self._lent
        if lent:
            for lead_id in lent.difference(self._unwritten):
                entry = cache.get(lead_id)
                if entry is None:
                    continue
                if not entry.has_lead and entry.history is None and entry.enrollments is None:
                    cache.drop(lead_id)  # it held nothing else: an empty entry only takes room
                    continue
                entry.has_state = False
                entry.state = None
                entry.written = None
                cache.resize(entry)
            lent.clear()
        if not self._unwritten:
            return
        writes = StateWrites()
        absent = self._absent
        for lead_id, state in self._unwritten.items():
            entry = cache.get(lead_id)
            # What the file holds of the state's items, if the cache knows it: only what is
            # new since is written (see sqlite_states).
            known = None if entry is None else entry.written
            if lead_id in absent:  # no state row, so no items either (it has some from now)
                absent.discard(lead_id)
                if known is None:
                    known = Written(None)
            written = writes.add(lead_id, state, known)
            writes.head(lead_id, state)
            if entry is not None:
                had = entry.written
                entry.written = written if entry.state is state else None
                if had is None:
                    cache.resize(entry)
        self._unwritten.clear()
        try:
            writes.run(self._many)
        except BaseException:
            # What the cache says the file holds may be wrong now: forget it all.
            self._cache.clear()
            raise

    def _check_cache(self) -> None:
        """Drop the cache if another connection has committed since it was last checked.

        ``PRAGMA data_version`` changes when another connection (of this process or another)
        commits, and never for this connection's own commits. Inside a ``BEGIN IMMEDIATE``
        transaction nobody else can commit, so one check at its start covers all of it.
        """
        try:
            (version,) = self._conn.execute(q.DATA_VERSION).fetchone()
        except sqlite3.Error as error:
            raise self._failed(error) from error
        if version != self._data_version:
            self._cache.clear()
            self._data_version = version

    def _entry(self, lead_id: str) -> CacheEntry:
        """The cache entry of ``lead_id``, the cache checked first outside a transaction.
        Call with the lock held."""
        if not self._depth:
            self._check_cache()
        return self._cache.entry(lead_id)

    def _commit(self) -> None:
        try:
            live = self._conn.in_transaction
            if live:
                self._conn.execute(q.COMMIT)
        except sqlite3.Error as error:
            self._cache.clear()
            self._rollback()
            raise self._failed(error) from error
        if not live:
            self._cache.clear()
            # SQLite rolls back on its own after some errors (disk full, I/O); writes made after
            # that ran alone, so the unit of work is broken and the caller must hear it.
            raise StorageError(
                f"{self.path!r}: SQLite rolled the transaction back after an error inside it; "
                "its writes are lost, and any made after the error were kept on their own"
            )

    # ------------------------------------------------------------------ leads and their state

    def put_lead(self, lead: Lead) -> None:
        body = lead_to_json(lead, with_id=False)
        with self._lock:
            self._write(q.PUT_LEAD, (lead.id, body))
            if not self._depth:  # committed already: see _write
                self._cache.drop(lead.id)
            else:
                entry = self._cache.entry(lead.id)
                entry.lead = lead
                entry.has_lead = True
        self._lead.keep(_lead_text(lead.id, body), lead)

    def put_leads(self, leads: Sequence[Lead]) -> None:
        """Each lead as :meth:`put_lead` stores it, with one ``executemany``. A batch of a bulk
        import is written once and seldom read again soon: the cache brings the leads it
        holds up to date and takes in no others."""
        rows = [(lead.id, lead_to_json(lead, with_id=False)) for lead in leads]
        with self.transaction(), self._lock:
            self._many(q.PUT_LEAD, rows)
            cache = self._cache
            for lead in leads:
                entry = cache.get(lead.id)
                if entry is not None:
                    entry.lead = lead
                    entry.has_lead = True

    def get_lead(self, lead_id: str) -> Lead | None:
        with self._lock:
            entry = self._entry(lead_id)
            if not entry.has_lead:
                row = self._one(q.GET_LEAD, (lead_id,))
                entry.lead = None if row is None else self._lead_of(lead_id, row[0])
                entry.has_lead = True
            return entry.lead

    def leads(self) -> Iterator[Lead]:
        for lead_id, body in self._pages(q.LEADS_PAGE, after=""):
            yield self._lead_of(lead_id, body)

    def get_state(self, lead_id: str) -> LeadState | None:
        """The lead's state. Outside a transaction, a copy. Inside one, the cache's own object,
        as the port allows (and as the in-memory store does), so that recording an activity
        copies no state: a change put is written at the end of the transaction, and a lent
        state not put back is dropped from the cache then (see :meth:`_write_states`); a
        rollback drops the whole cache."""
        with self._lock:
            unwritten = self._unwritten.get(lead_id)
            if unwritten is not None:  # inside a transaction: the object put
                return unwritten
            entry = self._entry(lead_id)
            if not entry.has_state:
                self._keep_state(entry, self._read_states([lead_id]).get(lead_id))
            return self._hand_out(lead_id, entry.state)

    def _read_states(self, lead_ids: list[str]) -> dict[str, tuple[LeadState, Written]]:
        """The stored states of ``lead_ids`` (those that have one), five statements for them
        all, in one read snapshot. Call with the lock held."""
        if not lead_ids:
            return {}
        with nullcontext() if self._depth else self._read_snapshot():
            return read_states(self._rows_in, lead_ids)

    def _keep_state(self, entry: CacheEntry, found: tuple[LeadState, Written] | None) -> None:
        """Keep a state read (or that there is none) in its cache entry."""
        # No state row: no items either, so the first write need delete none.
        entry.state, entry.written = found or (None, Written(None))
        entry.has_state = True
        self._cache.resize(entry)

    def _hand_out(self, lead_id: str, state: LeadState | None) -> LeadState | None:
        """The cached ``state`` as :meth:`get_state` gives it: lent inside a transaction, a
        copy outside. Call with the lock held."""
        if state is None:
            return None
        if self._depth:
            self._lent.add(lead_id)
            return state
        # The caller may change the state it is given: never the cache's own out here.
        return copy_state(state)

    def put_state(self, state: LeadState) -> None:
        lead_id = state.lead_id
        with self._lock:
            if self._depth:  # written at the end of the transaction: see _write_states
                entry = self._cache.entry(lead_id)
                if entry.state is not state:
                    # Not the object get_state lent: the caller's own, which it may go on
                    # changing; keep a copy. The lent one is kept as it is.
                    state = copy_state(state)
                self._unwritten[lead_id] = state
                entry.state = state
                entry.has_state = True
                self._cache.resize(entry)
                return
            # The row and the items in one transaction, written at its end as in a batch.
            with self.transaction():
                self.put_state(state)

    def put_states(self, states: Sequence[LeadState]) -> None:
        """Each state as :meth:`put_state` keeps it, written at the end of the transaction;
        the store keeps the objects themselves (:meth:`put_state` copies one it did not lend,
        as its caller may go on changing it; the port asks the caller of ``put_states`` not
        to), in the cache only for the leads it holds (see :meth:`put_leads`)."""
        with self.transaction(), self._lock:
            cache = self._cache
            unwritten = self._unwritten
            for state in states:
                lead_id = state.lead_id
                unwritten[lead_id] = state
                # As put_leads: the cache keeps only the states of the leads it holds.
                entry = cache.get(lead_id)
                if entry is not None:
                    entry.state = state
                    entry.has_state = True
                    cache.resize(entry)

    # ------------------------------------------------------------------ activities

    def add_activity(self, activity: Activity) -> bool:
        lead_id = activity.lead_id
        at = activity.at
        key = activity.key
        row = activity_columns(activity)
        with self._lock:
            if not self._depth:
                if self._write(q.ADD_ACTIVITY, row) == 0:
                    return False
                self._cache.drop(lead_id)
                self._activity.keep(key, activity)
                return True
            # Inside a transaction (a batch: the common case), without _write's indirection.
            if self._run(q.ADD_ACTIVITY, row).rowcount == 0:
                return False
            entry = self._cache.entry(lead_id)
            history = entry.history
            if history is not None:
                if entry.shared:  # handed out outside a transaction: never changed after
                    entry.history = history = list(history)
                    entry.shared = False
                last = history[-1] if history else None
                if last is None or last.at < at or (last.at == at and last.key < key):
                    history.append(activity)
                else:
                    insort(history, activity, key=_activity_order)
                self._cache.grow(entry)
        self._activity.keep(key, activity)
        return True

    def activities(self, lead_id: str) -> Sequence[Activity]:
        """The lead's activities. Outside a transaction, a list that never changes after. Inside
        one, the cache's own list, which activities added later in the transaction join (as in
        the in-memory store), so that recording an activity copies no history."""
        with self._lock:
            entry = self._entry(lead_id)
            history = entry.history
            if history is None:
                rows = self._all(q.ACTIVITIES_OF_LEAD, (lead_id,))
                entry.history = history = _in_order([self._activity_of(row) for row in rows])
                self._cache.resize(entry)
            if not self._depth:
                entry.shared = True
            return history

    def activities_of(self, lead_ids: Iterable[str]) -> dict[str, Sequence[Activity]]:
        """The activities of each lead, each list as :meth:`activities` gives it (the cache's
        own inside a transaction). Those not cached are read a few hundred leads a statement,
        and cached as :meth:`activities` caches them."""
        ids = list(dict.fromkeys(lead_ids))
        found: dict[str, Sequence[Activity]] = {}
        with self._lock:
            if not self._depth:
                self._check_cache()
            cache = self._cache
            read: dict[str, list[Activity]] = {}
            for lead_id in ids:
                entry = cache.get(lead_id)
                if entry is None or entry.history is None:
                    read[lead_id] = []
                    continue
                history = entry.history
                if entry.shared and self._depth:  # as add_activity would: see activities
                    entry.history = history = list(history)
                    entry.shared = False
                found[lead_id] = history
            activity = self._activity_of
            for row in self._all_in(q.ACTIVITIES_OF_LEADS, list(read)):
                read[row[1]].append(activity(row))
            for lead_id, history in read.items():
                entry = cache.entry(lead_id)
                entry.history = found[lead_id] = _in_order(history)
                cache.resize(entry)
            if not self._depth:
                for lead_id in ids:
                    entry = cache.get(lead_id)
                    if entry is not None:
                        entry.shared = True
        return {lead_id: found[lead_id] for lead_id in ids}

    def activities_of_kinds(self, kinds: Iterable[str]) -> Iterator[Activity]:
        # One index walk per kind: an IN list would make SQLite sort every match per page.
        for kind in sorted(frozenset(kinds)):
            for row in self._pages(q.ACTIVITIES_OF_KIND_PAGE, (kind,)):
                yield self._activity_of(row[1:])

    # ------------------------------------------------------------------ enrolments

    def put_enrollment(self, enrollment: Enrollment) -> None:
        self.write_steps((), (enrollment,))

    def enrollments_of(self, lead_id: str) -> list[Enrollment]:
        with self._lock:
            entry = self._entry(lead_id)
            found = entry.enrollments
            if found is None:
                rows = self._all(q.ENROLLMENTS_OF_LEAD, (lead_id,))
                found = [self._enrollment(body) for (body,) in rows]
                self._cache.set_enrollments(lead_id, entry, found)
            return list(found)

    def enrollments_of_leads(self, lead_ids: Iterable[str]) -> dict[str, list[Enrollment]]:
        """Each lead's enrolments as :meth:`enrollments_of` gives them. Those not cached are
        read a few hundred leads a statement, and cached as :meth:`enrollments_of` caches
        them."""
        ids = list(dict.fromkeys(lead_ids))
        found: dict[str, list[Enrollment]] = {}
        with self._lock:
            if not self._depth:
                self._check_cache()
            cache = self._cache
            read: dict[str, list[Enrollment]] = {}
            for lead_id in ids:
                entry = cache.get(lead_id)
                if entry is not None and entry.enrollments is not None:
                    found[lead_id] = list(entry.enrollments)
                else:
                    read[lead_id] = []
            enrollment = self._enrollment
            for lead_id, body in self._all_in(q.ENROLLMENTS_OF_LEADS, list(read)):
                read[lead_id].append(enrollment(body))
            for lead_id, mine in read.items():
                self._cache.set_enrollments(lead_id, cache.entry(lead_id), mine)
                found[lead_id] = list(mine)
        return {lead_id: found[lead_id] for lead_id in ids}

    def enrollments(self, scenario: str | None = None) -> Iterator[Enrollment]:
        if scenario is None:
            pages = self._pages(q.ENROLLMENTS_PAGE)
        else:
            pages = self._pages(q.ENROLLMENTS_OF_SCENARIO_PAGE, (scenario,))
        for _, body in pages:
            yield self._enrollment(body)

    def renew_lease(self, enrollment_id: str, worker: str, until: datetime) -> bool:
        row = (stamp(until, "renew_lease(until)"), enrollment_id, worker)
        return self._write(q.RENEW_LEASE, row) == 1

    def renew_leases(
        self, enrollment_ids: Sequence[str], worker: str, until: datetime | None = None
    ) -> set[str]:
        held: set[str] = set()
        if until is None:
            wanted = list(dict.fromkeys(enrollment_ids))
            for start in range(0, len(wanted), _KEYS_PER_STATEMENT):
                part = wanted[start : start + _KEYS_PER_STATEMENT]
                marks = ", ".join("?" * len(part))
                held.update(
                    eid for (eid,) in self._all(q.HELD_CLAIMS.format(ids=marks), (*part, worker))
                )
            return held
        lease_end = stamp(until, "renew_leases(until)")
        with self.transaction():
            for eid in dict.fromkeys(enrollment_ids):
                if self._run(q.SET_LEASE, (lease_end, eid, worker)).rowcount == 1:
                    held.add(eid)
        return held

    def claim_due(
        self, now: datetime, limit: int, worker: str, lease: timedelta
    ) -> list[Enrollment]:
        if limit <= 0:
            return []
        moment = stamp(now, "claim_due(now)")
        until = stamp(now + lease, "claim_due(now + lease)")
        with self.transaction():
            rows = self._all(q.DUE, {"now": moment, "limit": limit})
            try:
                self._conn.executemany(q.CLAIM, [(worker, until, seq) for seq, _ in rows])
            except sqlite3.Error as error:
                raise self._failed(error) from error
        return [self._enrollment(body) for _, body in rows]

    # ------------------------------------------------------------------ hand-offs

    def put_handoff(self, handoff: Handoff) -> None:
        body = handoff_to_json(handoff)
        row = (
            handoff.id,
            handoff.lead_id,
            stamp(handoff.at, "Handoff.at"),
            handoff.status.value,
            optional_stamp(handoff.deadline, "Handoff.deadline"),
            optional_stamp(handoff.escalated_at, "Handoff.escalated_at"),
            optional_stamp(handoff.notified_at, "Handoff.notified_at"),
            optional_stamp(handoff.escalation_notified_at, "Handoff.escalation_notified_at"),
            body,
        )
        self._write(q.PUT_HANDOFF, row)
        self._handoff.keep(body, handoff)

    def handoffs_of(self, lead_id: str) -> list[Handoff]:
        return [self._handoff(body) for (body,) in self._all(q.HANDOFFS_OF_LEAD, (lead_id,))]

    def handoffs(self) -> Iterator[Handoff]:
        for _, body in self._pages(q.HANDOFFS_PAGE, after=""):
            yield self._handoff(body)

    def due_breaches(self, now: datetime, limit: int) -> list[Handoff]:
        if limit <= 0:
            return []
        rows = self._all(q.BREACHES, (stamp(now, "due_breaches(now)"), limit))
        return [self._handoff(body) for (body,) in rows]

    def awaiting_notice(self, limit: int) -> list[Handoff]:
        if limit <= 0:
            return []
        return [self._handoff(body) for (body,) in self._all(q.AWAITING_NOTICE, (limit,))]

    def claim_notices(
        self, now: datetime, limit: int, worker: str, lease: timedelta
    ) -> list[Handoff]:
        if limit <= 0:
            return []
        moment = stamp(now, "claim_notices(now)")
        until = stamp(now + lease, "claim_notices(now + lease)")
        with self.transaction():
            rows = self._all(q.NOTICES_DUE, {"now": moment, "limit": limit})
            try:
                self._conn.executemany(q.CLAIM_NOTICE, [(worker, until, seq) for seq, _ in rows])
            except sqlite3.Error as error:
                raise self._failed(error) from error
        return [self._handoff(body) for _, body in rows]

    def next_in_rotation(self, team: str, size: int) -> int:
        if size < 1:
            raise StorageError(f"next_in_rotation({team!r}, size={size!r}): size must be 1 or more")
        with self.transaction():  # BEGIN IMMEDIATE: no other process moves it in between
            self._run(q.MOVE_ROTATION, {"team": team, "size": size})
            (position,) = self._one(q.ROTATION, (team,))
        return int(position)

    # ------------------------------------------------------------------ the outbox

    def add_to_outbox(self, mail: OutgoingMail) -> bool:
        row = mail_row(mail)
        self._mail.keep(row[-1], mail)
        return self._write(q.ADD_MAIL, row) == 1

    def mark_sent(
        self,
        key: str,
        status: SendStatus,
        detail: str,
        at: datetime,
        retry_at: datetime | None = None,
    ) -> None:
        status = SendStatus(status)
        again = optional_stamp(retry_at, "mark_sent(retry_at)")
        row = (
            status.value,
            detail,
            stamp(at, "mark_sent(at)"),
            again if status is SendStatus.DEFERRED else None,
            key,
        )
        if self._write(q.MARK_SENT, row) == 0:
            raise StorageError(
                f"mark_sent({key!r}): no send with this key is in the outbox; write it "
                "with add_to_outbox first"
            )

    def claim_mail(
        self, now: datetime, limit: int, worker: str, lease: timedelta
    ) -> list[OutgoingMail]:
        if limit <= 0:
            return []
        params = {"now": stamp(now, "claim_mail(now)"), "limit": limit}
        until = stamp(now + lease, "claim_mail(now + lease)")
        with self.transaction():
            rows = self._all(q.MAIL_DUE, params)
            try:
                self._conn.executemany(q.CLAIM_MAIL, [(worker, until, seq) for seq, _ in rows])
            except sqlite3.Error as error:
                raise self._failed(error) from error
        return [self._mail(body) for _, body in rows]

    def hold_mail(
        self, keys: Sequence[str], worker: str, until: datetime | None = None
    ) -> dict[str, SendCheck]:
        wanted = list(dict.fromkeys(keys))
        held: dict[str, SendCheck] = {}
        lease_end = None if until is None else stamp(until, "hold_mail(until)")
        # A renewal and the read that follows it are one transaction; a read alone is one
        # statement, which sees one committed state of the file.
        with self._lock, self.transaction() if until is not None else nullcontext():
            if self._depth:
                self._write_states()  # the flags read below are the states' columns
            for start in range(0, len(wanted), _KEYS_PER_STATEMENT):
                part = wanted[start : start + _KEYS_PER_STATEMENT]
                marks = ", ".join("?" * len(part))
                if lease_end is not None:
                    self._run(q.RENEW_MAIL.format(keys=marks), (lease_end, *part, worker))
                for key, attempts, contact, with_sales, disqualified in self._all(
                    q.HELD_MAIL.format(keys=marks), (*part, worker)
                ):
                    held[key] = SendCheck(
                        key=key,
                        attempts=attempts,
                        contact=None if contact is None else ContactStatus(contact),
                        with_sales=bool(with_sales),
                        disqualified=bool(disqualified),
                    )
        return held

    def mark_and_hold(
        self,
        key: str,
        status: SendStatus,
        detail: str,
        at: datetime,
        retry_at: datetime | None,
        next_key: str,
        worker: str,
    ) -> dict[str, SendCheck]:
        self.mark_sent(key, status, detail, at, retry_at)
        return self.hold_mail([next_key], worker)

    def pending_mail(self, limit: int) -> list[OutgoingMail]:
        if limit <= 0:
            return []
        return [mail_from_json(body) for (body,) in self._all(q.PENDING, (limit,))]

    def outbox(self) -> Iterator[OutboxEntry]:
        for _, *row in self._pages(q.OUTBOX_PAGE):
            yield _outbox_entry(*row)

    def report_send(self, key: str, status: SendStatus, detail: str, at: datetime) -> bool:
        row = (SendStatus(status).value, detail, stamp(at, "report_send(at)"), key)
        return self._write(q.REPORT_SEND, row) == 1

    def get_send(self, key: str) -> OutboxEntry | None:
        row = self._one(q.GET_SEND, (key,))
        return None if row is None else _outbox_entry(*row)

    def marketing_sends_since(self, lead_id: str, since: datetime) -> list[datetime]:
        rows = self._all(q.MARKETING_SENDS, (lead_id, stamp(since, "marketing_sends_since")))
        return [datetime.fromisoformat(at) for (at,) in rows]

    # ------------------------------------------------------------------ test-sends

    def record_test_send(self, record: TestSend) -> None:
        at = utc_stamp(record.at)
        row = (record.template, record.version, record.to, at, record.status.value)
        self._write(q.RECORD_TEST_SEND, (*row, record.detail, record.sent_by))

    def test_sends(self, template: str | None = None) -> list[TestSend]:
        if template is None:
            rows = self._all(q.TEST_SENDS)
        else:
            rows = self._all(q.TEST_SENDS_OF_TEMPLATE, (template,))
        return [
            TestSend(
                template=name,
                version=version,
                to=address,
                at=datetime.fromisoformat(at),
                status=status,
                detail=detail,
                sent_by=sent_by,
            )
            for name, version, address, at, status, detail, sent_by in rows
        ]

    # ------------------------------------------------------------------ batches

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A SQLite ``SAVEPOINT`` inside a transaction (an exception undoes only the writes
        made inside it); outside one, a :meth:`transaction`."""
        with self._lock:
            if not self._depth:
                with self.transaction():
                    yield
                return
            name = f"nk_savepoint_{self._depth}"
            # States kept back for the commit are written first, so that the savepoint's
            # rollback leaves them as they were; the cache may hold what the rollback undoes.
            self._write_states()
            self._run(q.SAVEPOINT.format(name=name))
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if self._conn.in_transaction:
                    self._run(q.ROLLBACK_TO.format(name=name))
                    self._run(q.RELEASE.format(name=name))
                self._unwritten.clear()
                self._lent.clear()
                self._absent.clear()
                self._cache.clear()
                raise
            self._depth -= 1
            self._run(q.RELEASE.format(name=name))

    def get_leads(self, lead_ids: Iterable[str]) -> dict[str, Lead]:
        """The leads found, by id. A cached lead costs no query; the others are read a few
        hundred per query and not cached: a batch of ``run_due`` reads each lead once, so
        caching them would only grow the memory with the number of leads sent to."""
        ids = list(dict.fromkeys(lead_ids))
        with self._lock:
            if not self._depth:
                self._check_cache()
            entries = [(i, self._cache.get(i)) for i in ids]
            found = {i: e.lead for i, e in entries if e is not None and e.has_lead}
            missing = [i for i, e in entries if e is None or not e.has_lead]
            found.update(
                (i, self._lead_of(i, body)) for i, body in self._all_in(q.GET_LEADS, missing)
            )
        return {i: lead for i in ids if (lead := found.get(i)) is not None}

    def get_states(self, lead_ids: Iterable[str]) -> dict[str, LeadState]:
        """The states found, by id, each as :meth:`get_state` gives it. Those not cached are
        read a few hundred leads per statement, and the ones found are cached as
        :meth:`get_state` caches them."""
        ids = list(dict.fromkeys(lead_ids))
        found: dict[str, LeadState | None] = {}
        with self._lock:
            if not self._depth:
                self._check_cache()
            unknown = []
            for lead_id in ids:
                unwritten = self._unwritten.get(lead_id)
                entry = self._cache.get(lead_id)
                if unwritten is not None:  # inside a transaction: the object put
                    found[lead_id] = unwritten
                elif entry is not None and entry.has_state:
                    found[lead_id] = self._hand_out(lead_id, entry.state)
                else:
                    unknown.append(lead_id)
            read = self._read_states(unknown)
            for lead_id in unknown:
                got = read.get(lead_id)
                if got is None:
                    if self._depth:  # so that its first write deletes no rows: see _absent
                        self._absent.add(lead_id)
                    continue
                entry = self._cache.entry(lead_id)
                self._keep_state(entry, got)
                found[lead_id] = self._hand_out(lead_id, entry.state)
        return {i: state for i in ids if (state := found.get(i)) is not None}

    def write_steps(self, mails: Sequence[OutgoingMail], enrollments: Sequence[Enrollment]) -> None:
        # Each kind with one executemany: what add_to_outbox and put_enrollment write.
        mail_rows = [mail_row(mail) for mail in mails]
        for mail, (*_, body) in zip(mails, mail_rows, strict=True):
            self._mail.keep(body, mail)
        enrollment_rows = [enrollment_row(enrollment) for enrollment in enrollments]
        with self.transaction(), self._lock:
            self._many(q.ADD_MAIL, mail_rows)
            self._many(q.PUT_ENROLLMENT, enrollment_rows)
            # Inside the transaction, so the cache is exact: no other connection writes now.
            for enrollment, (*_, text) in zip(enrollments, enrollment_rows, strict=True):
                self._cache.put_enrollment(enrollment)
                self._enrollment.keep(text, enrollment)
