"""A :class:`~nurturekit.ports.Storage` in one SQLite file: the embedded default.

Standard-library :mod:`sqlite3` only. The file is in WAL mode, so readers never wait for the
writer; every write runs in a ``BEGIN IMMEDIATE`` transaction, so several processes can share
one file and two workers never claim the same enrolment. The schema carries its version in a
``nurturekit_meta`` table and is migrated forward when a file is opened.

What the engine reads per activity (the lead, its state, history and enrolments) is kept
decoded in a per-store cache that ``PRAGMA data_version`` keeps exact (see :class:`_Cache`),
and lead states put inside a transaction are written once each, just before its ``COMMIT``.
"""

from __future__ import annotations

import math
import os
import random
import sqlite3
import threading
import time
from bisect import insort
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from nurturekit._time import aware_utc
from nurturekit.activity import Activity
from nurturekit.errors import StorageError
from nurturekit.handoff import Handoff
from nurturekit.lead import ContactStatus, Lead
from nurturekit.messages import OutgoingMail, SendStatus
from nurturekit.ports import LeadState, OutboxEntry, SendCheck
from nurturekit.scenario import Enrollment
from nurturekit.storage._states import copy_state
from nurturekit.storage.codec import (
    Memo,
    StateText,
    activity_from_json,
    activity_to_json,
    encode_state,
    enrollment_from_json,
    enrollment_to_json,
    handoff_from_json,
    handoff_to_json,
    iso_time,
    lead_from_json,
    lead_to_json,
    mail_from_json,
    mail_to_json,
    state_from_json,
)

__all__ = ["SCHEMA_VERSION", "SQLiteStorage"]

# =============================================================================================
# SQL
#
# Every stored time is UTC text in one fixed-width form, ``2026-04-01T09:00:00.000000+00:00``
# (see ``_stamp``), so comparing and sorting the text compares and sorts the times. Values are
# kept as JSON bodies written by :mod:`nurturekit.storage.codec`; the other columns exist only
# to be searched, sorted or updated in place. ``seq`` is each table's insertion order (an
# upsert keeps it) and the cursor the iterators page by.
# =============================================================================================

#: Forward migrations: ``(version, script)``, applied in order, each in its own
#: ``BEGIN IMMEDIATE`` transaction that also records the new version. Append; never edit.
_MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE leads (
            seq  INTEGER PRIMARY KEY,
            id   TEXT NOT NULL UNIQUE,
            body TEXT NOT NULL
        );

        CREATE TABLE states (
            lead_id TEXT PRIMARY KEY,
            body    TEXT NOT NULL
        );

        CREATE TABLE activities (
            seq     INTEGER PRIMARY KEY,
            key     TEXT NOT NULL UNIQUE,
            lead_id TEXT NOT NULL,
            kind    TEXT NOT NULL,
            at      TEXT NOT NULL,
            body    TEXT NOT NULL
        );
        CREATE INDEX activities_by_lead ON activities (lead_id, at, key);
        CREATE INDEX activities_by_kind ON activities (kind);

        CREATE TABLE enrollments (
            seq         INTEGER PRIMARY KEY,
            id          TEXT NOT NULL UNIQUE,
            lead_id     TEXT NOT NULL,
            scenario    TEXT NOT NULL,
            status      TEXT NOT NULL,
            entered_at  TEXT NOT NULL,
            due_at      TEXT,
            claimed_by  TEXT,
            lease_until TEXT,
            body        TEXT NOT NULL
        );
        CREATE INDEX enrollments_due ON enrollments (due_at, id)
            WHERE status IN ('active', 'waiting');
        CREATE INDEX enrollments_by_lead ON enrollments (lead_id, entered_at, id);
        CREATE INDEX enrollments_by_scenario ON enrollments (scenario);

        CREATE TABLE outbox (
            seq         INTEGER PRIMARY KEY,
            key         TEXT NOT NULL UNIQUE,
            lead_id     TEXT NOT NULL,
            marketing   INTEGER NOT NULL,
            created_at  TEXT NOT NULL,
            status      TEXT,
            detail      TEXT NOT NULL DEFAULT '',
            attempts    INTEGER NOT NULL DEFAULT 0,
            updated_at  TEXT,
            claimed_by  TEXT,
            lease_until TEXT,
            body        TEXT NOT NULL
        );
        CREATE INDEX outbox_pending ON outbox (seq)
            WHERE status IS NULL OR status = 'deferred';
        CREATE INDEX outbox_marketing ON outbox (lead_id, created_at)
            WHERE marketing = 1;
        """,
    ),
    (
        2,
        """
        CREATE TABLE handoffs (
            seq                    INTEGER PRIMARY KEY,
            id                     TEXT NOT NULL UNIQUE,
            lead_id                TEXT NOT NULL,
            at                     TEXT NOT NULL,
            status                 TEXT NOT NULL,
            deadline               TEXT,
            escalated_at           TEXT,
            notified_at            TEXT,
            escalation_notified_at TEXT,
            body                   TEXT NOT NULL
        );
        CREATE INDEX handoffs_by_lead ON handoffs (lead_id, at, id);
        CREATE INDEX handoffs_breaches ON handoffs (deadline, id)
            WHERE status = 'open' AND escalated_at IS NULL;
        CREATE INDEX handoffs_notices ON handoffs (at, id)
            WHERE notified_at IS NULL
               OR (escalated_at IS NOT NULL AND escalation_notified_at IS NULL);

        CREATE TABLE rotations (
            team     TEXT PRIMARY KEY,
            position INTEGER NOT NULL
        );
        """,
    ),
    (
        3,
        # Fenced delivery: when a deferred send may be tried again; the suppression flags of
        # a lead's state, read with its sends right before each hand-over; claims on
        # hand-off notices.
        """
        ALTER TABLE outbox ADD COLUMN retry_at TEXT;
        UPDATE outbox SET retry_at = updated_at WHERE status = 'deferred';

        ALTER TABLE states ADD COLUMN with_sales INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE states ADD COLUMN disqualified INTEGER NOT NULL DEFAULT 0;
        UPDATE states SET
            with_sales = coalesce(json_extract(body, '$.with_sales'), 0),
            disqualified = coalesce(json_extract(body, '$.disqualified'), 0);

        ALTER TABLE handoffs ADD COLUMN claimed_by TEXT;
        ALTER TABLE handoffs ADD COLUMN lease_until TEXT;
        """,
    ),
)

#: The schema version this code writes; a file at a newer one is refused.
SCHEMA_VERSION = _MIGRATIONS[-1][0]

_CREATE_META = "CREATE TABLE nurturekit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
_READ_VERSION = "SELECT value FROM nurturekit_meta WHERE key = 'schema_version'"
_WRITE_VERSION = (
    "INSERT INTO nurturekit_meta (key, value) VALUES ('schema_version', ?)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
_TABLES = "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY name"

_PUT_LEAD = (
    "INSERT INTO leads (id, body) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET body = excluded.body"
)
_GET_LEAD = "SELECT body FROM leads WHERE id = ?"
_LEADS_PAGE = "SELECT seq, body FROM leads WHERE seq > ? ORDER BY seq LIMIT ?"
_PUT_STATE = (
    "INSERT INTO states (lead_id, body, with_sales, disqualified) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (lead_id) DO UPDATE SET body = excluded.body,"
    " with_sales = excluded.with_sales, disqualified = excluded.disqualified"
)
_GET_STATE = "SELECT body FROM states WHERE lead_id = ?"

_ADD_ACTIVITY = (
    "INSERT INTO activities (key, lead_id, kind, at, body) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (key) DO NOTHING"
)
_ACTIVITIES_OF_LEAD = "SELECT body FROM activities WHERE lead_id = ? ORDER BY at, key"
_ACTIVITIES_OF_KIND_PAGE = (
    "SELECT seq, body FROM activities WHERE kind = ? AND seq > ? ORDER BY seq LIMIT ?"
)

_PUT_ENROLLMENT = (
    "INSERT INTO enrollments (id, lead_id, scenario, status, entered_at, due_at, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (id) DO UPDATE SET lead_id = excluded.lead_id,"
    " scenario = excluded.scenario, status = excluded.status,"
    " entered_at = excluded.entered_at, due_at = excluded.due_at,"
    " claimed_by = NULL, lease_until = NULL, body = excluded.body"
)
_ENROLLMENTS_OF_LEAD = "SELECT body FROM enrollments WHERE lead_id = ? ORDER BY entered_at, id"
_ENROLLMENTS_PAGE = "SELECT seq, body FROM enrollments WHERE seq > ? ORDER BY seq LIMIT ?"
_ENROLLMENTS_OF_SCENARIO_PAGE = (
    "SELECT seq, body FROM enrollments WHERE scenario = ? AND seq > ? ORDER BY seq LIMIT ?"
)
# The status test repeats the partial index's WHERE word for word, so the planner uses it.
_DUE = (
    "SELECT seq, body FROM enrollments"
    " WHERE status IN ('active', 'waiting') AND due_at <= :now"
    " AND (lease_until IS NULL OR lease_until <= :now)"
    " ORDER BY due_at, id LIMIT :limit"
)
_CLAIM = "UPDATE enrollments SET claimed_by = ?, lease_until = ? WHERE seq = ?"
_RENEW_LEASE = (
    "UPDATE enrollments SET lease_until = MAX(lease_until, ?)"
    " WHERE id = ? AND claimed_by = ? AND lease_until IS NOT NULL"
)
_SET_LEASE = (
    "UPDATE enrollments SET lease_until = ?"
    " WHERE id = ? AND claimed_by = ? AND lease_until IS NOT NULL"
)

_HELD_CLAIM = (
    "SELECT 1 FROM enrollments WHERE id = ? AND claimed_by = ? AND lease_until IS NOT NULL"
)

_PUT_HANDOFF = (
    "INSERT INTO handoffs (id, lead_id, at, status, deadline, escalated_at, notified_at,"
    " escalation_notified_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (id) DO UPDATE SET lead_id = excluded.lead_id, at = excluded.at,"
    " status = excluded.status, deadline = excluded.deadline,"
    " escalated_at = excluded.escalated_at, notified_at = excluded.notified_at,"
    " escalation_notified_at = excluded.escalation_notified_at, body = excluded.body"
)
_HANDOFFS_OF_LEAD = "SELECT body FROM handoffs WHERE lead_id = ? ORDER BY at, id"
_HANDOFFS_PAGE = "SELECT seq, body FROM handoffs WHERE seq > ? ORDER BY seq LIMIT ?"
# As for enrolments, the tests repeat the partial indexes' WHERE word for word.
_BREACHES = (
    "SELECT body FROM handoffs WHERE status = 'open' AND escalated_at IS NULL"
    " AND deadline <= ? ORDER BY deadline, id LIMIT ?"
)
_AWAITING_NOTICE = (
    "SELECT body FROM handoffs WHERE notified_at IS NULL"
    " OR (escalated_at IS NOT NULL AND escalation_notified_at IS NULL)"
    " ORDER BY at, id LIMIT ?"
)
_NOTICES_DUE = (
    "SELECT seq, body FROM handoffs WHERE (notified_at IS NULL"
    " OR (escalated_at IS NOT NULL AND escalation_notified_at IS NULL))"
    " AND (lease_until IS NULL OR lease_until <= :now)"
    " ORDER BY at, id LIMIT :limit"
)
_CLAIM_NOTICE = "UPDATE handoffs SET claimed_by = ?, lease_until = ? WHERE seq = ?"
# Moves the team's position on: the stored one (kept below ``size``) is handed out and the
# next one stored; ``position`` alone is the row already stored. Read back in the same write
# transaction (no RETURNING, which needs SQLite 3.35).
_MOVE_ROTATION = (
    "INSERT INTO rotations (team, position) VALUES (:team, 1)"
    " ON CONFLICT (team) DO UPDATE SET position = position % :size + 1"
)
_ROTATION = "SELECT position - 1 FROM rotations WHERE team = ?"

_ADD_MAIL = (
    "INSERT INTO outbox (key, lead_id, marketing, created_at, body) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (key) DO NOTHING"
)
_MARK_SENT = (
    "UPDATE outbox SET status = ?, detail = ?, attempts = attempts + 1, updated_at = ?,"
    " retry_at = ?, claimed_by = NULL, lease_until = NULL WHERE key = ?"
)
# As for enrolments, the first test repeats the partial index's WHERE word for word.
_MAIL_DUE = (
    "SELECT seq, body FROM outbox WHERE (status IS NULL OR status = 'deferred')"
    " AND (lease_until IS NULL OR lease_until <= :now)"
    " AND (retry_at IS NULL OR retry_at <= :now)"
    " ORDER BY seq LIMIT :limit"
)
_CLAIM_MAIL = "UPDATE outbox SET claimed_by = ?, lease_until = ? WHERE seq = ?"
#: The fence before a hand-over (see ``hold_mail``); ``{keys}`` is one ``?`` per key.
_HELD_MAIL = (
    "SELECT o.key, o.attempts, json_extract(l.body, '$.contactability.status'),"
    " s.with_sales, s.disqualified FROM outbox AS o"
    " LEFT JOIN leads AS l ON l.id = o.lead_id"
    " LEFT JOIN states AS s ON s.lead_id = o.lead_id"
    " WHERE o.key IN ({keys}) AND o.claimed_by = ? AND (o.status IS NULL OR o.status = 'deferred')"
)
_RENEW_MAIL = (
    "UPDATE outbox SET lease_until = ? WHERE key IN ({keys}) AND claimed_by = ?"
    " AND (status IS NULL OR status = 'deferred')"
)
_PENDING = (
    "SELECT body FROM outbox WHERE status IS NULL OR status = 'deferred' ORDER BY seq LIMIT ?"
)
_OUTBOX_PAGE = (
    "SELECT seq, body, status, detail, attempts, updated_at, retry_at FROM outbox"
    " WHERE seq > ? ORDER BY seq LIMIT ?"
)
_MARKETING_SENDS = (
    "SELECT created_at FROM outbox WHERE lead_id = ? AND created_at >= ? AND marketing = 1"
    " ORDER BY created_at"
)

# =============================================================================================

_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
#: The page size of a new file, in bytes (SQLite's default is 4096).
_PAGE_SIZE = 16384
_PAGE = 500
#: Keys per statement of hold_mail (SQLite allows 999 parameters in older builds).
_KEYS_PER_STATEMENT = 500
_MEMO_SIZE = 20_000
#: Values the per-lead cache keeps by default (see :class:`_Cache`).
_CACHE_SIZE = 100_000
_DATA_VERSION = "PRAGMA data_version"


class _Entry:
    """What the cache knows of one lead; ``None`` in ``history`` or ``enrollments`` means not
    read yet, and ``has_lead`` / ``has_state`` say whether ``lead`` / ``state`` were."""

    __slots__ = (
        "enrollments",
        "has_lead",
        "has_state",
        "history",
        "lead",
        "live",
        "state",
        "state_text",
        "weight",
    )

    def __init__(self) -> None:
        self.has_lead = False
        self.lead: Lead | None = None
        self.has_state = False
        self.state: LeadState | None = None
        #: The text ``state`` was written as, to write the next state faster (see encode_state).
        self.state_text: StateText | None = None
        #: Ordered by ``(at, key)``; replaced, never changed, once handed out.
        self.history: list[Activity] | None = None
        #: Ordered by ``(entered_at, id)``.
        self.enrollments: list[Enrollment] | None = None
        self.weight = 1
        #: False once dropped from the cache: its weight then no longer counts.
        self.live = True


class _Cache:
    """Decoded leads, states, activity histories and enrolments by lead id, least recently
    used first.

    Exact while no other connection has written: :class:`SQLiteStorage` drops it all when
    ``PRAGMA data_version`` says another connection committed, and when a transaction of its
    own rolls back; every write of its own goes through it. ``budget`` bounds the number of
    values kept (a lead, its state's score entries, its activities and enrolments each count
    one); past it the least recently used leads are dropped.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._owner: dict[str, str] = {}  # enrolment id -> lead id, for the cached lists
        self._total = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def weight(self) -> int:
        return self._total

    def entry(self, lead_id: str) -> _Entry:
        entries = self._entries
        found = entries.get(lead_id)
        if found is None:
            found = entries[lead_id] = _Entry()
            self._total += 1
            self._trim()
        else:
            entries.move_to_end(lead_id)
        return found

    def get(self, lead_id: str) -> _Entry | None:
        """The entry of ``lead_id`` if there is one, left where it is in the order."""
        return self._entries.get(lead_id)

    def resize(self, entry: _Entry) -> None:
        """Count ``entry`` again after a change, and drop old entries past the budget."""
        weight = 1
        if entry.history is not None:
            weight += len(entry.history)
        if entry.enrollments is not None:
            weight += len(entry.enrollments)
        if entry.state is not None:
            weight += len(entry.state.card.entries)
            if entry.state_text is not None:
                weight += len(entry.state.card.entries)
        if entry.live:
            self._total += weight - entry.weight
        entry.weight = weight
        self._trim()

    def grow(self, entry: _Entry) -> None:
        """Count one more value in ``entry`` (an activity added to its history)."""
        entry.weight += 1
        if entry.live:
            self._total += 1
            if self._total > self.budget:
                self._trim()

    def _trim(self) -> None:
        entries = self._entries
        while self._total > self.budget and entries:
            _, old = entries.popitem(last=False)
            old.live = False
            self._total -= old.weight
            self._forget_owners(old)

    def _forget_owners(self, entry: _Entry) -> None:
        if entry.enrollments:
            for enrollment in entry.enrollments:
                self._owner.pop(enrollment.id, None)

    def set_enrollments(self, lead_id: str, entry: _Entry, found: list[Enrollment]) -> None:
        entry.enrollments = found
        if entry.live:
            for enrollment in found:
                self._owner[enrollment.id] = lead_id
            self.resize(entry)

    def put_enrollment(self, enrollment: Enrollment) -> None:
        lead_id = enrollment.lead_id
        eid = enrollment.id
        owner = self._owner.get(eid)
        if owner is not None and owner != lead_id:
            # Moved to another lead: the old lead's list no longer holds it.
            moved_from = self._entries.get(owner)
            if moved_from is not None:
                self._forget_owners(moved_from)
                moved_from.enrollments = None
                self.resize(moved_from)
            self._owner.pop(eid, None)
        entry = self.entry(lead_id)
        if entry.enrollments is None or not entry.live:
            return
        mine = [e for e in entry.enrollments if e.id != eid]
        mine.append(enrollment)
        if len(mine) > 1 and _enrollment_order(mine[-2]) > _enrollment_order(enrollment):
            mine.sort(key=_enrollment_order)
        self._owner[eid] = lead_id
        entry.enrollments = mine
        self.resize(entry)

    def drop(self, lead_id: str) -> None:
        """Forget what is known of ``lead_id``."""
        old = self._entries.pop(lead_id, None)
        if old is not None:
            old.live = False
            self._total -= old.weight
            self._forget_owners(old)

    def drop_enrollment(self, enrollment: Enrollment) -> None:
        """Forget the lead of ``enrollment``, and the lead it was cached under if another."""
        owner = self._owner.get(enrollment.id)
        if owner is not None:
            self.drop(owner)
        self.drop(enrollment.lead_id)

    def clear(self) -> None:
        for entry in self._entries.values():
            entry.live = False
        self._entries.clear()
        self._owner.clear()
        self._total = 0


def _enrollment_order(enrollment: Enrollment) -> tuple[datetime, str]:
    return (enrollment.entered_at, enrollment.id)


def _activity_order(activity: Activity) -> tuple[datetime, str]:
    return (activity.at, activity.key)


def _stamp(value: datetime, where: str) -> str:
    """The one stored form of a time: UTC, to the microsecond, fixed width."""
    return _utc_stamp(aware_utc(value, where))


def _utc_stamp(value: datetime) -> str:
    """:func:`_stamp` of a time in UTC already: ``isoformat(timespec="microseconds")``, from
    the codec's remembered ``isoformat()`` (which leaves out a microsecond of 0)."""
    text = iso_time(value)
    return text if value.microsecond else f"{text[:19]}.000000{text[19:]}"


def _optional_stamp(value: datetime | None, where: str) -> str | None:
    return None if value is None else _stamp(value, where)


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


class SQLiteStorage:
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
    (leads, activities, enrolments, score entries) the store keeps between transactions;
    about 1 KB each, so the default is some 100 MB; ``0`` turns the cache off (see
    docs/storage.md).

    One connection serves every thread of the process; a lock held for a whole
    :meth:`transaction` serialises them. Other processes may open the same file: each
    transaction is ``BEGIN IMMEDIATE``, so writers queue and claims never overlap.
    """

    _migrations: tuple[tuple[int, str], ...] = _MIGRATIONS

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
        self._cache = _Cache(cache_size)
        #: States put in the open transaction and not written yet, by lead id: see
        #: _write_states.
        self._unwritten: dict[str, LeadState] = {}
        #: Leads whose cached state get_state handed out itself in the open transaction: see
        #: get_state.
        self._lent: set[str] = set()
        self._data_version: int | None = None
        self._lock = threading.RLock()
        self._depth = 0
        self._lead = Memo(lead_from_json, _MEMO_SIZE)
        self._activity = Memo(activity_from_json, _MEMO_SIZE)
        self._enrollment = Memo(enrollment_from_json, _MEMO_SIZE)
        self._handoff = Memo(handoff_from_json, _MEMO_SIZE)
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

    # ------------------------------------------------------------------ opening and closing

    def _open(self, synchronous: str) -> None:
        conn = self._conn
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            # Read-only checks first: switching the journal mode writes to the file, and a
            # file we refuse must be left exactly as it was.
            self._version(conn)
            # Takes effect only in a new file (an existing one keeps its page size): a batch
            # dirties pages all over the states and the activity indexes, and each page costs
            # a WAL frame and a checkpoint copy, so fewer, larger pages write it faster.
            conn.execute(f"PRAGMA page_size = {_PAGE_SIZE}")
            (journal,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if str(journal).lower() not in ("wal", "memory"):
                raise StorageError(
                    f"{self.path!r}: SQLite refused WAL mode (journal mode stays "
                    f"{journal!r}); put the file on a local file system"
                )
            conn.execute(f"PRAGMA synchronous = {synchronous}")
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
        tables = [name for (name,) in conn.execute(_TABLES).fetchall()]
        if not tables:
            return None
        if "nurturekit_meta" not in tables:
            shown = ", ".join(tables[:5]) + (", …" if len(tables) > 5 else "")
            raise StorageError(
                f"{self.path!r} is a SQLite database but not a nurturekit database (it has "
                f"tables {shown} and no nurturekit_meta table); nurturekit left it as it was. "
                "Give the path of a nurturekit database or of a new file"
            )
        row = conn.execute(_READ_VERSION).fetchone()
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
                    conn.execute(_CREATE_META)
                    current = 0
                if current >= version:
                    continue
                try:
                    for statement in _statements(script):
                        conn.execute(statement)
                    conn.execute(_WRITE_VERSION, (str(version),))
                except sqlite3.Error as error:
                    raise StorageError(
                        f"{self.path!r}: the migration to schema version {version} failed "
                        f"({error}); the file stays at version {current}"
                    ) from error

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

    def _all(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as error:
                raise self._failed(error) from error

    def _one(self, sql: str, params: Sequence[Any]) -> Any:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchone()
            except sqlite3.Error as error:
                raise self._failed(error) from error

    def _pages(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Any]:
        """Rows of ``sql`` (which selects ``seq`` first and ends ``seq > ? … LIMIT ?``) a page
        at a time, so that a long iteration neither holds the lock nor a read snapshot."""
        after = 0
        while True:
            rows = self._all(sql, (*params, after, _PAGE))
            yield from rows
            if len(rows) < _PAGE:
                return
            after = rows[-1][0]

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
                self._cache.clear()  # it may hold writes the rollback undoes
                self._rollback()
                raise
            self._depth = 0
            self._commit()

    def _write_states(self) -> None:
        """Write the states put in this transaction, the last one of each lead, all at once.

        Inside a transaction :meth:`put_state` only keeps the state (a lead's state is put
        once per activity, and only :meth:`get_state` reads it back); the rows are written
        here, just before ``COMMIT``, so a batch writes each lead's state once, and in the same
        SQLite transaction as everything else.

        A state :meth:`get_state` lent in the transaction and not put back may have been
        changed without being written: the cache forgets it, and reads it from the file again.
        """
        cache = self._cache
        lent = self._lent
        if lent:
            for lead_id in lent.difference(self._unwritten):
                entry = cache.get(lead_id)
                if entry is not None:
                    entry.has_state = False
                    entry.state = None
                    entry.state_text = None
                    cache.resize(entry)
            lent.clear()
        rows = []
        for lead_id, state in self._unwritten.items():
            entry = cache.get(lead_id)
            # Any earlier text of this lead will do: items are matched by identity.
            previous = None if entry is None else entry.state_text
            text = encode_state(state, previous)
            if entry is not None and entry.state is state:
                entry.state_text = text.without_text()
                if previous is None:  # put_state counted the state's entries once only
                    cache.resize(entry)
            rows.append((lead_id, text.text, state.with_sales, state.disqualified))
        self._unwritten.clear()
        try:
            self._conn.executemany(_PUT_STATE, rows)
        except sqlite3.Error as error:
            raise self._failed(error) from error

    def _check_cache(self) -> None:
        """Drop the cache if another connection has committed since it was last checked.

        ``PRAGMA data_version`` changes when another connection (of this process or another)
        commits, and never for this connection's own commits. Inside a ``BEGIN IMMEDIATE``
        transaction nobody else can commit, so one check at its start covers all of it.
        """
        try:
            (version,) = self._conn.execute(_DATA_VERSION).fetchone()
        except sqlite3.Error as error:
            raise self._failed(error) from error
        if version != self._data_version:
            self._cache.clear()
            self._data_version = version

    def _entry(self, lead_id: str) -> _Entry:
        """The cache entry of ``lead_id``, the cache checked first outside a transaction.
        Call with the lock held."""
        if not self._depth:
            self._check_cache()
        return self._cache.entry(lead_id)

    def _begin(self) -> None:
        """``BEGIN IMMEDIATE``, waiting up to ``busy_timeout`` for another process's write.

        SQLite's own busy handler sleeps longer and longer (up to 100 ms at a time) while the
        other process commits and begins again in well under a millisecond, so under steady
        contention a waiter could starve for seconds, past the leases of its claims. Here the
        wait is a poll of a millisecond or so, with the busy handler off for that one statement.
        """
        conn = self._conn
        try:
            conn.execute("PRAGMA busy_timeout = 0")
            try:
                deadline = time.monotonic() + self.busy_timeout
                pause = 0.0001
                while True:
                    try:
                        conn.execute("BEGIN IMMEDIATE")
                        return
                    except sqlite3.OperationalError as error:
                        left = deadline - time.monotonic()
                        if "locked" not in str(error) or left <= 0:
                            raise
                    time.sleep(min(left, pause * random.uniform(0.5, 1.5)))
                    pause = min(pause * 2, 0.002)
            finally:
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        except sqlite3.Error as error:
            raise self._failed(error) from error

    def _commit(self) -> None:
        try:
            live = self._conn.in_transaction
            if live:
                self._conn.execute("COMMIT")
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

    def _rollback(self) -> None:
        try:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
        except sqlite3.Error as error:
            raise self._failed(error) from error

    # ------------------------------------------------------------------ leads and their state

    def put_lead(self, lead: Lead) -> None:
        body = lead_to_json(lead)
        with self._lock:
            self._write(_PUT_LEAD, (lead.id, body))
            if not self._depth:  # committed already: see _write
                self._cache.drop(lead.id)
            else:
                entry = self._cache.entry(lead.id)
                entry.lead = lead
                entry.has_lead = True
        self._lead.keep(body, lead)

    def get_lead(self, lead_id: str) -> Lead | None:
        with self._lock:
            entry = self._entry(lead_id)
            if not entry.has_lead:
                row = self._one(_GET_LEAD, (lead_id,))
                entry.lead = None if row is None else self._lead(row[0])
                entry.has_lead = True
            return entry.lead

    def leads(self) -> Iterator[Lead]:
        for _, body in self._pages(_LEADS_PAGE):
            yield self._lead(body)

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
                row = self._one(_GET_STATE, (lead_id,))
                entry.state = None if row is None else state_from_json(row[0])
                entry.state_text = None
                entry.has_state = True
                self._cache.resize(entry)
            state = entry.state
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
            known = self._cache.get(lead_id)
            text = encode_state(state, None if known is None else known.state_text)
            self._write(_PUT_STATE, (lead_id, text.text, state.with_sales, state.disqualified))
            self._cache.drop(lead_id)

    # ------------------------------------------------------------------ activities

    def add_activity(self, activity: Activity) -> bool:
        body = activity_to_json(activity)
        lead_id = activity.lead_id
        at = activity.at
        key = activity.key
        # Activity.at is UTC already (its converter), so this is _stamp without the check.
        row = (key, lead_id, activity.kind, _utc_stamp(at), body)
        with self._lock:
            if not self._depth:
                if self._write(_ADD_ACTIVITY, row) == 0:
                    return False
                self._cache.drop(lead_id)
                self._activity.keep(body, activity)
                return True
            # Inside a transaction (a batch: the common case), without _write's indirection.
            if self._run(_ADD_ACTIVITY, row).rowcount == 0:
                return False
            entry = self._cache.entry(lead_id)
            history = entry.history
            if history is not None:
                # A new list: the one activities() handed out must not change under its holder.
                last = history[-1] if history else None
                if last is None or last.at < at or (last.at == at and last.key < key):
                    entry.history = [*history, activity]
                else:
                    entry.history = history = list(history)
                    insort(history, activity, key=_activity_order)
                self._cache.grow(entry)
        self._activity.keep(body, activity)
        return True

    def activities(self, lead_id: str) -> Sequence[Activity]:
        with self._lock:
            entry = self._entry(lead_id)
            history = entry.history
            if history is None:
                rows = self._all(_ACTIVITIES_OF_LEAD, (lead_id,))
                entry.history = history = [self._activity(body) for (body,) in rows]
                self._cache.resize(entry)
            return history

    def activities_of_kinds(self, kinds: Iterable[str]) -> Iterator[Activity]:
        # One index walk per kind: an IN list would make SQLite sort every match per page.
        for kind in sorted(frozenset(kinds)):
            for _, body in self._pages(_ACTIVITIES_OF_KIND_PAGE, (kind,)):
                yield self._activity(body)

    # ------------------------------------------------------------------ enrolments

    def put_enrollment(self, enrollment: Enrollment) -> None:
        due = enrollment.due_at
        body = enrollment_to_json(enrollment)
        row = (
            enrollment.id,
            enrollment.lead_id,
            enrollment.scenario,
            enrollment.status.value,
            _stamp(enrollment.entered_at, "Enrollment.entered_at"),
            None if due is None else _stamp(due, "Enrollment.due_at"),
            body,
        )
        with self._lock:
            self._write(_PUT_ENROLLMENT, row)
            if not self._depth:
                self._cache.drop_enrollment(enrollment)
            else:
                self._cache.put_enrollment(enrollment)
        self._enrollment.keep(body, enrollment)

    def enrollments_of(self, lead_id: str) -> list[Enrollment]:
        with self._lock:
            entry = self._entry(lead_id)
            found = entry.enrollments
            if found is None:
                rows = self._all(_ENROLLMENTS_OF_LEAD, (lead_id,))
                found = [self._enrollment(body) for (body,) in rows]
                self._cache.set_enrollments(lead_id, entry, found)
            return list(found)

    def enrollments(self, scenario: str | None = None) -> Iterator[Enrollment]:
        if scenario is None:
            pages = self._pages(_ENROLLMENTS_PAGE)
        else:
            pages = self._pages(_ENROLLMENTS_OF_SCENARIO_PAGE, (scenario,))
        for _, body in pages:
            yield self._enrollment(body)

    def renew_lease(self, enrollment_id: str, worker: str, until: datetime) -> bool:
        row = (_stamp(until, "renew_lease(until)"), enrollment_id, worker)
        return self._write(_RENEW_LEASE, row) == 1

    def renew_leases(
        self, enrollment_ids: Sequence[str], worker: str, until: datetime | None = None
    ) -> set[str]:
        held = set()
        if until is None:
            for eid in dict.fromkeys(enrollment_ids):
                if self._one(_HELD_CLAIM, (eid, worker)) is not None:
                    held.add(eid)
            return held
        stamp = _stamp(until, "renew_leases(until)")
        with self.transaction():
            for eid in dict.fromkeys(enrollment_ids):
                if self._run(_SET_LEASE, (stamp, eid, worker)).rowcount == 1:
                    held.add(eid)
        return held

    def claim_due(
        self, now: datetime, limit: int, worker: str, lease: timedelta
    ) -> list[Enrollment]:
        if limit <= 0:
            return []
        moment = _stamp(now, "claim_due(now)")
        until = _stamp(now + lease, "claim_due(now + lease)")
        with self.transaction():
            rows = self._all(_DUE, {"now": moment, "limit": limit})
            try:
                self._conn.executemany(_CLAIM, [(worker, until, seq) for seq, _ in rows])
            except sqlite3.Error as error:
                raise self._failed(error) from error
        return [self._enrollment(body) for _, body in rows]

    # ------------------------------------------------------------------ hand-offs

    def put_handoff(self, handoff: Handoff) -> None:
        body = handoff_to_json(handoff)
        row = (
            handoff.id,
            handoff.lead_id,
            _stamp(handoff.at, "Handoff.at"),
            handoff.status.value,
            _optional_stamp(handoff.deadline, "Handoff.deadline"),
            _optional_stamp(handoff.escalated_at, "Handoff.escalated_at"),
            _optional_stamp(handoff.notified_at, "Handoff.notified_at"),
            _optional_stamp(handoff.escalation_notified_at, "Handoff.escalation_notified_at"),
            body,
        )
        self._write(_PUT_HANDOFF, row)
        self._handoff.keep(body, handoff)

    def handoffs_of(self, lead_id: str) -> list[Handoff]:
        return [self._handoff(body) for (body,) in self._all(_HANDOFFS_OF_LEAD, (lead_id,))]

    def handoffs(self) -> Iterator[Handoff]:
        for _, body in self._pages(_HANDOFFS_PAGE):
            yield self._handoff(body)

    def due_breaches(self, now: datetime, limit: int) -> list[Handoff]:
        if limit <= 0:
            return []
        rows = self._all(_BREACHES, (_stamp(now, "due_breaches(now)"), limit))
        return [self._handoff(body) for (body,) in rows]

    def awaiting_notice(self, limit: int) -> list[Handoff]:
        if limit <= 0:
            return []
        return [self._handoff(body) for (body,) in self._all(_AWAITING_NOTICE, (limit,))]

    def claim_notices(
        self, now: datetime, limit: int, worker: str, lease: timedelta
    ) -> list[Handoff]:
        if limit <= 0:
            return []
        moment = _stamp(now, "claim_notices(now)")
        until = _stamp(now + lease, "claim_notices(now + lease)")
        with self.transaction():
            rows = self._all(_NOTICES_DUE, {"now": moment, "limit": limit})
            try:
                self._conn.executemany(_CLAIM_NOTICE, [(worker, until, seq) for seq, _ in rows])
            except sqlite3.Error as error:
                raise self._failed(error) from error
        return [self._handoff(body) for _, body in rows]

    def next_in_rotation(self, team: str, size: int) -> int:
        if size < 1:
            raise StorageError(f"next_in_rotation({team!r}, size={size!r}): size must be 1 or more")
        with self.transaction():  # BEGIN IMMEDIATE: no other process moves it in between
            self._run(_MOVE_ROTATION, {"team": team, "size": size})
            (position,) = self._one(_ROTATION, (team,))
        return int(position)

    # ------------------------------------------------------------------ the outbox

    def add_to_outbox(self, mail: OutgoingMail) -> bool:
        row = (
            mail.key,
            mail.lead_id,
            int(mail.marketing),
            _stamp(mail.created_at, "OutgoingMail.created_at"),
            mail_to_json(mail),
        )
        return self._write(_ADD_MAIL, row) == 1

    def mark_sent(
        self,
        key: str,
        status: SendStatus,
        detail: str,
        at: datetime,
        retry_at: datetime | None = None,
    ) -> None:
        status = SendStatus(status)
        again = _optional_stamp(retry_at, "mark_sent(retry_at)")
        row = (
            status.value,
            detail,
            _stamp(at, "mark_sent(at)"),
            again if status is SendStatus.DEFERRED else None,
            key,
        )
        if self._write(_MARK_SENT, row) == 0:
            raise StorageError(
                f"mark_sent({key!r}): no send with this key is in the outbox; write it "
                "with add_to_outbox first"
            )

    def claim_mail(
        self, now: datetime, limit: int, worker: str, lease: timedelta
    ) -> list[OutgoingMail]:
        if limit <= 0:
            return []
        params = {"now": _stamp(now, "claim_mail(now)"), "limit": limit}
        until = _stamp(now + lease, "claim_mail(now + lease)")
        with self.transaction():
            rows = self._all(_MAIL_DUE, params)
            try:
                self._conn.executemany(_CLAIM_MAIL, [(worker, until, seq) for seq, _ in rows])
            except sqlite3.Error as error:
                raise self._failed(error) from error
        return [mail_from_json(body) for _, body in rows]

    def hold_mail(
        self, keys: Sequence[str], worker: str, until: datetime | None = None
    ) -> dict[str, SendCheck]:
        wanted = list(dict.fromkeys(keys))
        held: dict[str, SendCheck] = {}
        stamp = None if until is None else _stamp(until, "hold_mail(until)")
        # A renewal and the read that follows it are one transaction; a read alone is one
        # statement, which sees one committed state of the file.
        with self._lock, self.transaction() if until is not None else nullcontext():
            if self._depth:
                self._write_states()  # the flags read below are the states' columns
            for start in range(0, len(wanted), _KEYS_PER_STATEMENT):
                part = wanted[start : start + _KEYS_PER_STATEMENT]
                marks = ", ".join("?" * len(part))
                if stamp is not None:
                    self._run(_RENEW_MAIL.format(keys=marks), (stamp, *part, worker))
                for key, attempts, contact, with_sales, disqualified in self._all(
                    _HELD_MAIL.format(keys=marks), (*part, worker)
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
        return [mail_from_json(body) for (body,) in self._all(_PENDING, (limit,))]

    def outbox(self) -> Iterator[OutboxEntry]:
        for _, body, status, detail, attempts, updated_at, retry_at in self._pages(_OUTBOX_PAGE):
            yield OutboxEntry(
                mail=mail_from_json(body),
                status=None if status is None else SendStatus(status),
                detail=detail,
                attempts=attempts,
                updated_at=None if updated_at is None else datetime.fromisoformat(updated_at),
                retry_at=None if retry_at is None else datetime.fromisoformat(retry_at),
            )

    def marketing_sends_since(self, lead_id: str, since: datetime) -> list[datetime]:
        rows = self._all(_MARKETING_SENDS, (lead_id, _stamp(since, "marketing_sends_since")))
        return [datetime.fromisoformat(at) for (at,) in rows]

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
            self._run(f"SAVEPOINT {name}")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if self._conn.in_transaction:
                    self._run(f"ROLLBACK TO {name}")
                    self._run(f"RELEASE {name}")
                self._unwritten.clear()
                self._lent.clear()
                self._cache.clear()
                raise
            self._depth -= 1
            self._run(f"RELEASE {name}")

    def get_leads(self, lead_ids: Iterable[str]) -> dict[str, Lead]:
        # One at a time through the cache: a cached lead costs no query, and a state this
        # transaction has not written yet is seen.
        found = {i: self.get_lead(i) for i in dict.fromkeys(lead_ids)}
        return {i: lead for i, lead in found.items() if lead is not None}

    def get_states(self, lead_ids: Iterable[str]) -> dict[str, LeadState]:
        found = {i: self.get_state(i) for i in dict.fromkeys(lead_ids)}
        return {i: state for i, state in found.items() if state is not None}

    def write_steps(self, mails: Sequence[OutgoingMail], enrollments: Sequence[Enrollment]) -> None:
        with self.transaction():
            for mail in mails:
                self.add_to_outbox(mail)
            for enrollment in enrollments:
                self.put_enrollment(enrollment)
