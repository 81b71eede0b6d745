"""The SQL of :class:`~nurturekit.storage.sqlite.SQLiteStorage`: the schema's migrations and
one named statement per thing the store does.

A statement here is plain text with :mod:`sqlite3`'s ``?`` / ``:name`` parameters; the few
with braces (``{keys}``, ``{name}``, ``{ms}`` …) are filled in with ``str.format`` by the
store, with nothing but its own numbers, names and ``?`` marks. This module imports nothing
but :mod:`typing`.

Every stored time that a statement compares is UTC text in one fixed-width form,
``2026-04-01T09:00:00.000000+00:00`` (see ``sqlite_rows.stamp``), so comparing and sorting the text
compares and sorts the times. Values are kept as JSON bodies written by
:mod:`nurturekit.storage.codec`; the other columns exist only to be searched, sorted or updated
in place. ``seq`` is each table's insertion order (an upsert keeps it) and the cursor the
iterators page by, but for leads and hand-offs, paged by id: the Storage port promises them
in id order. The exception is a lead state's items (``state_lines``, ``state_times``,
``state_seen``: see :mod:`nurturekit.storage.sqlite_states`): a column per field, times as the
codec writes them (with the offset they were given), ``seq`` the item's place in its list.
Test-sends (``test_sends``) are flat records too: a column per field and no body, keyed by
template, version, address and time.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

# --------------------------------------------------------------------------- migrations

#: Forward migrations: ``(version, script)``, applied in order, each in its own
#: ``BEGIN IMMEDIATE`` transaction that also records the new version. Append; never edit.
MIGRATIONS: Final[tuple[tuple[int, str], ...]] = (
    # 1: leads, their state, activities, enrolments and the outbox.
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
    # 2: hand-offs to sales, and the round-robin positions of the sales teams.
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
    # 3: fenced delivery. When a deferred send may be tried again; the suppression flags of
    # a lead's state, read with its sends right before each hand-over; claims on hand-off
    # notices.
    (
        3,
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
    # 4: the parts of a lead's state that grow with its history, a row per item, so that a
    # state write appends what is new instead of rewriting the whole history: the score card's
    # lines (``part`` 0: ``entries``, 1: ``refused``), the times of its activities and the
    # keys it has seen, lines and times in the order of their lists (``seq``, from 0). The
    # state's body keeps the rest. The store then moves each existing state over from its body,
    # in the same transaction (``SQLiteStorage._move_data``): SQLite's JSON functions cut a
    # string at a NUL character, which a score line's rule may hold.
    (
        4,
        """
        CREATE TABLE state_lines (
            lead_id       TEXT NOT NULL,
            part          INTEGER NOT NULL,
            seq           INTEGER NOT NULL,
            rule          TEXT NOT NULL,
            axis          TEXT NOT NULL,
            points        INTEGER NOT NULL,
            value         INTEGER NOT NULL,
            at            TEXT,
            activity_key  TEXT,
            activity_kind TEXT,
            PRIMARY KEY (lead_id, part, seq)
        ) WITHOUT ROWID;

        CREATE TABLE state_times (
            lead_id TEXT NOT NULL,
            seq     INTEGER NOT NULL,
            at      TEXT NOT NULL,
            PRIMARY KEY (lead_id, seq)
        ) WITHOUT ROWID;

        CREATE TABLE state_seen (
            lead_id TEXT NOT NULL,
            key     TEXT NOT NULL,
            PRIMARY KEY (lead_id, key)
        ) WITHOUT ROWID;
        """,
    ),
    # 5: a lead's stage moves, a row per move in the order of the list (``seq``, from 0), so
    # that the state row keeps only what does not grow and a batch rewrites small rows; a
    # move's ``lead_id`` is the state's, and ``move_lead`` holds it only where it is another.
    # The store then moves the moves of each existing state over from its body, in the same
    # transaction (``SQLiteStorage._move_data``).
    (
        5,
        """
        CREATE TABLE state_moves (
            lead_id   TEXT NOT NULL,
            seq       INTEGER NOT NULL,
            source    TEXT,
            target    TEXT NOT NULL,
            at        TEXT NOT NULL,
            reason    TEXT NOT NULL,
            manual    INTEGER NOT NULL,
            move_lead TEXT,
            PRIMARY KEY (lead_id, seq)
        ) WITHOUT ROWID;
        """,
    ),
    # 6: test-sends of templates (``nurturekit test-send --db``), one row per template,
    # version, address and time, its fields in columns of their own (no JSON body: a check of
    # what was test-sent may read the table with plain SQL). Nothing to move: an older file
    # had none.
    (
        6,
        """
        CREATE TABLE test_sends (
            template TEXT NOT NULL,
            version  TEXT NOT NULL,
            address  TEXT NOT NULL,
            at       TEXT NOT NULL,
            status   TEXT NOT NULL,
            detail   TEXT NOT NULL DEFAULT '',
            sent_by  TEXT,
            PRIMARY KEY (template, version, address, at)
        ) WITHOUT ROWID;
        CREATE INDEX test_sends_by_time ON test_sends (at);
        """,
    ),
    # 7: compact rows. Leads and states keyed by their id alone (no row number, no second
    # index holding the id again); an activity's row holds its time as microseconds since
    # 1970-01-01 UTC, a key of 32 hex digits (a derived one) as its 16 bytes, and, of its
    # body, only its properties (compact JSON, NULL when it has none): the key, lead, kind
    # and time are columns already. A lead's activities are found by (lead, time); the few
    # of one time are put in key order by the store. The activities are moved to
    # the new table in Python (``sqlite_rows.move_activities``), in the same transaction:
    # SQLite's JSON functions cut a string at a NUL character, which a property may hold.
    (
        7,
        """
        CREATE TABLE leads_7 (
            id   TEXT PRIMARY KEY,
            body TEXT NOT NULL
        ) WITHOUT ROWID;
        INSERT INTO leads_7 (id, body) SELECT id, body FROM leads;
        DROP TABLE leads;
        ALTER TABLE leads_7 RENAME TO leads;

        CREATE TABLE states_7 (
            lead_id      TEXT PRIMARY KEY,
            body         TEXT NOT NULL,
            with_sales   INTEGER NOT NULL DEFAULT 0,
            disqualified INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID;
        INSERT INTO states_7 (lead_id, body, with_sales, disqualified)
            SELECT lead_id, body, with_sales, disqualified FROM states;
        DROP TABLE states;
        ALTER TABLE states_7 RENAME TO states;

        ALTER TABLE activities RENAME TO activities_6;
        DROP INDEX activities_by_lead;
        DROP INDEX activities_by_kind;
        CREATE TABLE activities (
            seq        INTEGER PRIMARY KEY,
            key        TEXT NOT NULL UNIQUE,
            lead_id    TEXT NOT NULL,
            kind       TEXT NOT NULL,
            at         INTEGER NOT NULL,
            properties TEXT
        );
        CREATE INDEX activities_by_lead ON activities (lead_id, at);
        CREATE INDEX activities_by_kind ON activities (kind);
        """,
    ),
)

#: The schema version this code writes; a file at a newer one is refused.
SCHEMA_VERSION: Final = MIGRATIONS[-1][0]

# --------------------------------------------------------------------------- the schema version

CREATE_META: Final = "CREATE TABLE nurturekit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"

READ_VERSION: Final = "SELECT value FROM nurturekit_meta WHERE key = 'schema_version'"

WRITE_VERSION: Final = (
    "INSERT INTO nurturekit_meta (key, value) VALUES ('schema_version', ?)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)

#: Every table and view of the file, to tell an empty file, a nurturekit one and another
#: program's apart before anything is written.
TABLES: Final = "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY name"

# --------------------------------------------------------------------------- the connection

#: How long a statement waits for another process's write lock; ``{ms}`` is milliseconds
#: (``0`` turns SQLite's busy handler off).
BUSY_TIMEOUT: Final = "PRAGMA busy_timeout = {ms}"

#: The page size of a new file, ``{size}`` bytes; an existing file keeps its own.
PAGE_SIZE: Final = "PRAGMA page_size = {size}"

#: Answers the journal mode the file is in afterwards.
JOURNAL_MODE_WAL: Final = "PRAGMA journal_mode = WAL"

#: ``{mode}`` is one of ``OFF``, ``NORMAL``, ``FULL``, ``EXTRA``.
SYNCHRONOUS: Final = "PRAGMA synchronous = {mode}"

#: Changes when another connection commits, never for this connection's own commits.
DATA_VERSION: Final = "PRAGMA data_version"

# --------------------------------------------------------------------------- transactions

#: Takes the file's write lock at once, so the transaction never fails half-way for it.
BEGIN: Final = "BEGIN IMMEDIATE"

#: A read transaction: its statements see one committed state of the file, and it waits for
#: nobody in WAL mode.
BEGIN_READ: Final = "BEGIN"

COMMIT: Final = "COMMIT"

ROLLBACK: Final = "ROLLBACK"

#: ``{name}`` is the store's own ``nk_savepoint_<depth>``.
SAVEPOINT: Final = "SAVEPOINT {name}"

ROLLBACK_TO: Final = "ROLLBACK TO {name}"

RELEASE: Final = "RELEASE {name}"

# --------------------------------------------------------------------------- leads and state

PUT_LEAD: Final = (
    "INSERT INTO leads (id, body) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET body = excluded.body"
)

GET_LEAD: Final = "SELECT body FROM leads WHERE id = ?"

#: The leads of up to :data:`IN_LIST` ids, with a ``?`` for each in ``{marks}``.
GET_LEADS: Final = "SELECT id, body FROM leads WHERE id IN ({marks})"

#: The most ids one ``IN`` list holds (SQLite before 3.32 took at most 999 parameters).
IN_LIST: Final = 500

#: One page of every lead in id order (the order the Storage port promises), after the id
#: given (``""`` for the first page); the ``UNIQUE`` index on ``id`` serves it.
LEADS_PAGE: Final = "SELECT id, body FROM leads WHERE id > ? ORDER BY id LIMIT ?"

#: The state's body, and the suppression flags the fence before a hand-over reads.
PUT_STATE: Final = (
    "INSERT INTO states (lead_id, body, with_sales, disqualified) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (lead_id) DO UPDATE SET body = excluded.body,"
    " with_sales = excluded.with_sales, disqualified = excluded.disqualified"
)

#: The state rows of the leads in ``{marks}``: (lead_id, body).
GET_STATES: Final = "SELECT lead_id, body FROM states WHERE lead_id IN ({marks})"

#: The score lines of the states in ``{marks}``, each state's ``entries`` (part 0) then
#: ``refused`` (part 1), each in order.
STATE_LINES: Final = (
    "SELECT lead_id, part, rule, axis, points, value, at, activity_key, activity_kind"
    " FROM state_lines WHERE lead_id IN ({marks}) ORDER BY lead_id, part, seq"
)

STATE_TIMES: Final = (
    "SELECT lead_id, at FROM state_times WHERE lead_id IN ({marks}) ORDER BY lead_id, seq"
)

STATE_SEEN: Final = "SELECT lead_id, key FROM state_seen WHERE lead_id IN ({marks})"

STATE_MOVES: Final = (
    "SELECT lead_id, source, target, at, reason, manual, move_lead FROM state_moves"
    " WHERE lead_id IN ({marks}) ORDER BY lead_id, seq"
)

#: Appends one score line: ``(lead_id, part, seq, rule, axis, points, value, at, key, kind)``.
ADD_STATE_LINE: Final = (
    "INSERT INTO state_lines"
    " (lead_id, part, seq, rule, axis, points, value, at, activity_key, activity_kind)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

ADD_STATE_TIME: Final = "INSERT INTO state_times (lead_id, seq, at) VALUES (?, ?, ?)"

ADD_STATE_SEEN: Final = "INSERT INTO state_seen (lead_id, key) VALUES (?, ?)"

#: Appends one stage move: ``(lead_id, seq, source, target, at, reason, manual, move_lead)``.
ADD_STATE_MOVE: Final = (
    "INSERT INTO state_moves (lead_id, seq, source, target, at, reason, manual, move_lead)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)

#: One page of the states, by lead id after the one given: the moves of migrations 4 and 5.
STATES_PAGE: Final = "SELECT lead_id, body FROM states WHERE lead_id > ? ORDER BY lead_id LIMIT ?"

#: Before a part of a state is written again whole.
CLEAR_STATE_LINES: Final = "DELETE FROM state_lines WHERE lead_id = ? AND part = ?"

CLEAR_STATE_TIMES: Final = "DELETE FROM state_times WHERE lead_id = ?"

CLEAR_STATE_SEEN: Final = "DELETE FROM state_seen WHERE lead_id = ?"

CLEAR_STATE_MOVES: Final = "DELETE FROM state_moves WHERE lead_id = ?"

#: A state's row written again by a migration.
SET_STATE_BODY: Final = "UPDATE states SET body = ? WHERE lead_id = ?"

# --------------------------------------------------------------------------- activities

#: Inserts one row, or none when the key is already stored (the row count says which).
#: A row is (key, lead_id, kind, at, properties): see ``sqlite_rows.activity_row``.
ADD_ACTIVITY: Final = (
    "INSERT INTO activities (key, lead_id, kind, at, properties) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (key) DO NOTHING"
)

#: A lead's activities in time order, rows as :data:`ADD_ACTIVITY` writes them (those of one
#: time in no order: the store sorts them by key).
ACTIVITIES_OF_LEAD: Final = (
    "SELECT key, lead_id, kind, at, properties FROM activities WHERE lead_id = ? ORDER BY at, key"
)

#: The activities of the leads in ``{marks}``, each lead's in the order of
#: :data:`ACTIVITIES_OF_LEAD`.
ACTIVITIES_OF_LEADS: Final = (
    "SELECT key, lead_id, kind, at, properties FROM activities WHERE lead_id IN ({marks})"
    " ORDER BY lead_id, at"
)

#: One page of the activities of one kind, after the ``seq`` given.
ACTIVITIES_OF_KIND_PAGE: Final = (
    "SELECT seq, key, lead_id, kind, at, properties FROM activities WHERE kind = ? AND seq > ?"
    " ORDER BY seq LIMIT ?"
)

#: The migration to version 7 (``sqlite_rows.move_activities``): the old rows in pages of
#: ``seq``, and the new rows with the same ``seq``.
OLD_ACTIVITIES_PAGE: Final = (
    "SELECT seq, key, lead_id, kind, at, body FROM activities_6 WHERE seq > ? ORDER BY seq"
    " LIMIT 5000"
)
MOVE_ACTIVITY: Final = (
    "INSERT INTO activities (seq, key, lead_id, kind, at, properties) VALUES (?, ?, ?, ?, ?, ?)"
)
DROP_OLD_ACTIVITIES: Final = "DROP TABLE activities_6"

# --------------------------------------------------------------------------- enrolments

#: Insert or replace; either way the enrolment is no longer claimed.
PUT_ENROLLMENT: Final = (
    "INSERT INTO enrollments (id, lead_id, scenario, status, entered_at, due_at, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (id) DO UPDATE SET lead_id = excluded.lead_id,"
    " scenario = excluded.scenario, status = excluded.status,"
    " entered_at = excluded.entered_at, due_at = excluded.due_at,"
    " claimed_by = NULL, lease_until = NULL, body = excluded.body"
)

ENROLLMENTS_OF_LEAD: Final = (
    "SELECT body FROM enrollments WHERE lead_id = ? ORDER BY entered_at, id"
)

#: The enrolments of the leads in ``{marks}``, each lead's in the order of
#: :data:`ENROLLMENTS_OF_LEAD`.
ENROLLMENTS_OF_LEADS: Final = (
    "SELECT lead_id, body FROM enrollments WHERE lead_id IN ({marks})"
    " ORDER BY lead_id, entered_at, id"
)

ENROLLMENTS_PAGE: Final = "SELECT seq, body FROM enrollments WHERE seq > ? ORDER BY seq LIMIT ?"

ENROLLMENTS_OF_SCENARIO_PAGE: Final = (
    "SELECT seq, body FROM enrollments WHERE scenario = ? AND seq > ? ORDER BY seq LIMIT ?"
)

#: Running enrolments due by ``:now`` that no live lease holds, to claim with ``CLAIM``. The
#: status test repeats the partial index's WHERE word for word, so the planner uses it.
DUE: Final = (
    "SELECT seq, body FROM enrollments"
    " WHERE status IN ('active', 'waiting') AND due_at <= :now"
    " AND (lease_until IS NULL OR lease_until <= :now)"
    " ORDER BY due_at, id LIMIT :limit"
)

CLAIM: Final = "UPDATE enrollments SET claimed_by = ?, lease_until = ? WHERE seq = ?"

#: Moves a held lease on, never back.
RENEW_LEASE: Final = (
    "UPDATE enrollments SET lease_until = MAX(lease_until, ?)"
    " WHERE id = ? AND claimed_by = ? AND lease_until IS NOT NULL"
)

#: Sets a held lease to end at the time given.
SET_LEASE: Final = (
    "UPDATE enrollments SET lease_until = ?"
    " WHERE id = ? AND claimed_by = ? AND lease_until IS NOT NULL"
)

#: The enrolments among ``{ids}`` whose claim the worker still holds.
HELD_CLAIMS: Final = (
    "SELECT id FROM enrollments WHERE id IN ({ids}) AND claimed_by = ? AND lease_until IS NOT NULL"
)

# --------------------------------------------------------------------------- hand-offs

PUT_HANDOFF: Final = (
    "INSERT INTO handoffs (id, lead_id, at, status, deadline, escalated_at, notified_at,"
    " escalation_notified_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (id) DO UPDATE SET lead_id = excluded.lead_id, at = excluded.at,"
    " status = excluded.status, deadline = excluded.deadline,"
    " escalated_at = excluded.escalated_at, notified_at = excluded.notified_at,"
    " escalation_notified_at = excluded.escalation_notified_at, body = excluded.body"
)

HANDOFFS_OF_LEAD: Final = "SELECT body FROM handoffs WHERE lead_id = ? ORDER BY at, id"

#: One page of every hand-off in id order, as :data:`LEADS_PAGE` pages the leads.
HANDOFFS_PAGE: Final = "SELECT id, body FROM handoffs WHERE id > ? ORDER BY id LIMIT ?"

#: Open, overdue, not escalated yet. As for enrolments, the tests repeat the partial indexes'
#: WHERE word for word.
BREACHES: Final = (
    "SELECT body FROM handoffs WHERE status = 'open' AND escalated_at IS NULL"
    " AND deadline <= ? ORDER BY deadline, id LIMIT ?"
)

#: Owing the sink a notice: the hand-off itself, or its escalation.
AWAITING_NOTICE: Final = (
    "SELECT body FROM handoffs WHERE notified_at IS NULL"
    " OR (escalated_at IS NOT NULL AND escalation_notified_at IS NULL)"
    " ORDER BY at, id LIMIT ?"
)

#: ``AWAITING_NOTICE`` that no live lease holds, to claim with ``CLAIM_NOTICE``.
NOTICES_DUE: Final = (
    "SELECT seq, body FROM handoffs WHERE (notified_at IS NULL"
    " OR (escalated_at IS NOT NULL AND escalation_notified_at IS NULL))"
    " AND (lease_until IS NULL OR lease_until <= :now)"
    " ORDER BY at, id LIMIT :limit"
)

CLAIM_NOTICE: Final = "UPDATE handoffs SET claimed_by = ?, lease_until = ? WHERE seq = ?"

#: Moves the team's position on: the stored one (kept below ``size``) is handed out and the
#: next one stored; ``position`` alone is the row already stored. Read back with ``ROTATION``
#: in the same write transaction (no RETURNING, which needs SQLite 3.35).
MOVE_ROTATION: Final = (
    "INSERT INTO rotations (team, position) VALUES (:team, 1)"
    " ON CONFLICT (team) DO UPDATE SET position = position % :size + 1"
)

ROTATION: Final = "SELECT position - 1 FROM rotations WHERE team = ?"

# --------------------------------------------------------------------------- the outbox

#: Inserts one row, or none when the key is already there (the row count says which).
ADD_MAIL: Final = (
    "INSERT INTO outbox (key, lead_id, marketing, created_at, body) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (key) DO NOTHING"
)

#: Records the outcome and ends the claim.
MARK_SENT: Final = (
    "UPDATE outbox SET status = ?, detail = ?, attempts = attempts + 1, updated_at = ?,"
    " retry_at = ?, claimed_by = NULL, lease_until = NULL WHERE key = ?"
)

#: Sends to hand over (new ones, and deferred ones due for another try) that no live claim
#: holds, oldest first, to claim with ``CLAIM_MAIL``. As for enrolments, the first test
#: repeats the partial index's WHERE word for word.
MAIL_DUE: Final = (
    "SELECT seq, body FROM outbox WHERE (status IS NULL OR status = 'deferred')"
    " AND (lease_until IS NULL OR lease_until <= :now)"
    " AND (retry_at IS NULL OR retry_at <= :now)"
    " ORDER BY seq LIMIT :limit"
)

CLAIM_MAIL: Final = "UPDATE outbox SET claimed_by = ?, lease_until = ? WHERE seq = ?"

#: The fence before a hand-over (see ``hold_mail``): the sends among the keys that the worker
#: still holds, with what suppresses mail to their leads. ``{keys}`` is one ``?`` per key. A
#: lead's body leaves its contactability out while it is subscribed (``codec.lead_to_json``).
HELD_MAIL: Final = (
    "SELECT o.key, o.attempts, CASE WHEN l.id IS NULL THEN NULL"
    " ELSE coalesce(json_extract(l.body, '$.contactability.status'), 'subscribed') END,"
    " s.with_sales, s.disqualified FROM outbox AS o"
    " LEFT JOIN leads AS l ON l.id = o.lead_id"
    " LEFT JOIN states AS s ON s.lead_id = o.lead_id"
    " WHERE o.key IN ({keys}) AND o.claimed_by = ? AND (o.status IS NULL OR o.status = 'deferred')"
)

#: Sets the leases of the sends among the keys the worker holds; ``{keys}`` as for
#: ``HELD_MAIL``.
RENEW_MAIL: Final = (
    "UPDATE outbox SET lease_until = ? WHERE key IN ({keys}) AND claimed_by = ?"
    " AND (status IS NULL OR status = 'deferred')"
)

#: Not handed over yet, or deferred: in the order they were written.
PENDING: Final = (
    "SELECT body FROM outbox WHERE status IS NULL OR status = 'deferred' ORDER BY seq LIMIT ?"
)

OUTBOX_PAGE: Final = (
    "SELECT seq, body, status, detail, attempts, updated_at, retry_at FROM outbox"
    " WHERE seq > ? ORDER BY seq LIMIT ?"
)

#: What a provider reported after the hand-over: attempts and claim left as they are.
REPORT_SEND: Final = "UPDATE outbox SET status = ?, detail = ?, updated_at = ? WHERE key = ?"

#: One send by its key: the columns of ``OUTBOX_PAGE`` but ``seq``.
GET_SEND: Final = (
    "SELECT body, status, detail, attempts, updated_at, retry_at FROM outbox WHERE key = ?"
)

MARKETING_SENDS: Final = (
    "SELECT created_at FROM outbox WHERE lead_id = ? AND created_at >= ? AND marketing = 1"
    " ORDER BY created_at"
)

# --------------------------------------------------------------------------- test-sends

#: Adds a test-send, or replaces the one with the same template, version, address and time.
RECORD_TEST_SEND: Final = (
    "INSERT INTO test_sends (template, version, address, at, status, detail, sent_by)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (template, version, address, at) DO UPDATE SET status = excluded.status,"
    " detail = excluded.detail, sent_by = excluded.sent_by"
)

#: Every test-send in the order the Storage port promises: newest first, then by template,
#: version and address.
TEST_SENDS: Final = (
    "SELECT template, version, address, at, status, detail, sent_by FROM test_sends"
    " ORDER BY at DESC, template, version, address"
)

#: The test-sends of one template, in the same order.
TEST_SENDS_OF_TEMPLATE: Final = (
    "SELECT template, version, address, at, status, detail, sent_by FROM test_sends"
    " WHERE template = ? ORDER BY at DESC, template, version, address"
)
