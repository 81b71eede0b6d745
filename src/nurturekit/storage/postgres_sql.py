"""The SQL of :class:`~nurturekit.storage.postgres.PostgresStorage`: the schema's migrations and
one named statement per thing the store does.

Every table is written ``{schema}.table``; the store fills in its schema once, quoted with
``psycopg.sql.Identifier``, so a statement here is plain text with psycopg's ``%s`` /
``%(name)s`` parameters (``%(name)b`` for one passed in binary) and no other braces or percent
signs. This module imports nothing.

Ids and keys are ``COLLATE "C"``: PostgreSQL then orders them by code point, as Python's ``<``
on ``str`` does, whatever the database's collation. Bodies are the compact JSON of
:mod:`nurturekit.storage.codec` in ``text`` columns: ``jsonb`` refuses ``\\u0000`` inside a
string (an activity property may hold one) and rewrites numbers (the float ``1e20`` would read
back as an int), so it would not give back what was stored. The other columns exist to be
searched, ordered or claimed by. Test-sends (``test_sends``), flat records, are a column per
field and no body.
"""

from __future__ import annotations

from typing import Final

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

# --------------------------------------------------------------------------- migrations

#: The schema version this code writes and understands.
SCHEMA_VERSION: Final = 6

#: ``MIGRATIONS[n - 1]`` takes a schema from version ``n - 1`` to ``n``. Append, never edit:
#: a database records the version it is at, and only later migrations are run on it.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: leads, their state, activities, enrolments and the outbox.
    (
        """
        CREATE TABLE {schema}.leads (
            id   text COLLATE "C" PRIMARY KEY,
            body text NOT NULL
        )
        """,
        """
        CREATE TABLE {schema}.states (
            lead_id text COLLATE "C" PRIMARY KEY,
            body    text NOT NULL
        )
        """,
        """
        CREATE TABLE {schema}.activities (
            key     text COLLATE "C" PRIMARY KEY,
            lead_id text COLLATE "C" NOT NULL,
            kind    text COLLATE "C" NOT NULL,
            at      timestamptz NOT NULL,
            body    text NOT NULL
        )
        """,
        "CREATE INDEX activities_by_lead ON {schema}.activities (lead_id, at, key)",
        "CREATE INDEX activities_by_kind ON {schema}.activities (kind, key)",
        """
        CREATE TABLE {schema}.enrollments (
            id          text COLLATE "C" PRIMARY KEY,
            lead_id     text COLLATE "C" NOT NULL,
            scenario    text COLLATE "C" NOT NULL,
            status      text NOT NULL,
            entered_at  timestamptz NOT NULL,
            due_at      timestamptz,
            claimed_by  text,
            lease_until timestamptz,
            body        text NOT NULL
        )
        """,
        # Only running enrolments are ever due: the index holds what may be claimed, so a
        # claim costs what is due, not what was ever enrolled.
        """
        CREATE INDEX enrollments_due ON {schema}.enrollments (due_at, id)
            WHERE status IN ('active', 'waiting')
        """,
        "CREATE INDEX enrollments_by_lead ON {schema}.enrollments (lead_id, entered_at, id)",
        "CREATE INDEX enrollments_by_scenario ON {schema}.enrollments (scenario, id)",
        """
        CREATE INDEX enrollments_claimed ON {schema}.enrollments (claimed_by)
            WHERE claimed_by IS NOT NULL
        """,
        """
        CREATE TABLE {schema}.outbox (
            key        text COLLATE "C" PRIMARY KEY,
            seq        bigserial,
            lead_id    text COLLATE "C" NOT NULL,
            marketing  boolean NOT NULL,
            created_at timestamptz NOT NULL,
            status     text,
            detail     text NOT NULL DEFAULT '',
            attempts   integer NOT NULL DEFAULT 0,
            updated_at timestamptz,
            claimed_by text,
            lease_until timestamptz,
            body       text NOT NULL
        )
        """,
        """
        CREATE INDEX outbox_pending ON {schema}.outbox (seq)
            WHERE status IS NULL OR status = 'deferred'
        """,
        """
        CREATE INDEX outbox_marketing ON {schema}.outbox (lead_id, created_at)
            WHERE marketing
        """,
    ),
    # 2: hand-offs to sales, and the round-robin positions of the sales teams.
    (
        """
        CREATE TABLE {schema}.handoffs (
            id                     text COLLATE "C" PRIMARY KEY,
            lead_id                text COLLATE "C" NOT NULL,
            at                     timestamptz NOT NULL,
            status                 text NOT NULL,
            deadline               timestamptz,
            escalated_at           timestamptz,
            notified_at            timestamptz,
            escalation_notified_at timestamptz,
            body                   text NOT NULL
        )
        """,
        "CREATE INDEX handoffs_by_lead ON {schema}.handoffs (lead_id, at, id)",
        # As for enrolments, the indexes hold only what may be due, so a scan costs what is due.
        """
        CREATE INDEX handoffs_breaches ON {schema}.handoffs (deadline, id)
            WHERE status = 'open' AND escalated_at IS NULL
        """,
        """
        CREATE INDEX handoffs_notices ON {schema}.handoffs (at, id)
            WHERE notified_at IS NULL
               OR (escalated_at IS NOT NULL AND escalation_notified_at IS NULL)
        """,
        """
        CREATE TABLE {schema}.rotations (
            team     text COLLATE "C" PRIMARY KEY,
            position integer NOT NULL
        )
        """,
    ),
    # 3: fenced delivery. When a deferred send may be tried again; the suppression flags of a
    # lead's state, read with its sends right before each hand-over (a join, without reading
    # the state's body); claims on hand-off notices.
    (
        "ALTER TABLE {schema}.outbox ADD COLUMN retry_at timestamptz",
        "UPDATE {schema}.outbox SET retry_at = updated_at WHERE status = 'deferred'",
        "ALTER TABLE {schema}.states ADD COLUMN with_sales boolean NOT NULL DEFAULT false",
        "ALTER TABLE {schema}.states ADD COLUMN disqualified boolean NOT NULL DEFAULT false",
        """
        UPDATE {schema}.states SET
            with_sales = coalesce((body::json ->> 'with_sales')::boolean, false),
            disqualified = coalesce((body::json ->> 'disqualified')::boolean, false)
        """,
        "ALTER TABLE {schema}.handoffs ADD COLUMN claimed_by text",
        "ALTER TABLE {schema}.handoffs ADD COLUMN lease_until timestamptz",
    ),
    # 4: a lead's contact status in a column of its own, read right before each hand-over
    # without parsing the lead's body (that parse was a third of the per-mail check's cost).
    # A body without ``contactability`` (the compact form of a subscribed lead) is subscribed:
    # the coalesce came later, and changes nothing for the bodies of the nurturekits before
    # version 4, which always held one.
    (
        "ALTER TABLE {schema}.leads ADD COLUMN contact text",
        """
        UPDATE {schema}.leads
        SET contact = coalesce(body::json -> 'contactability' ->> 'status', 'subscribed')
        """,
        "ALTER TABLE {schema}.leads ALTER COLUMN contact SET NOT NULL",
    ),
    # 5: test-sends of templates (``nurturekit test-send --db``), one row per template,
    # version, address and time, its fields in columns of their own (no JSON body: a check of
    # what was test-sent may read the table with plain SQL). Nothing to move: an older schema
    # had none.
    (
        """
        CREATE TABLE {schema}.test_sends (
            template text COLLATE "C" NOT NULL,
            version  text COLLATE "C" NOT NULL,
            address  text COLLATE "C" NOT NULL,
            at       timestamptz NOT NULL,
            status   text NOT NULL,
            detail   text NOT NULL DEFAULT '',
            sent_by  text,
            PRIMARY KEY (template, version, address, at)
        )
        """,
        "CREATE INDEX test_sends_by_time ON {schema}.test_sends (at)",
    ),
    # 6: bulk writes. Activities of a kind are found by time: activities come in about the
    # order of their times, so each new one goes to the end of its kind's part of the index
    # rather than to a random page of it, as with its key (storing a batch of 500 activities
    # into 100,000: a median 13.3 ms rather than 15.7 ms). A lead's state is rewritten with
    # each activity: room left in each page lets PostgreSQL put the new version in the page
    # of the old one without touching the index (a HOT update). The two together: the import
    # of 100,000 activities of benchmarks/bulk.py took the server 4.18 s of CPU rather than
    # 4.96 s (median of 3 alternating runs), for 3% more bytes on disk. On a large existing
    # table the new index is built inside the migration, which holds writes meanwhile.
    (
        "DROP INDEX {schema}.activities_by_kind",
        "CREATE INDEX activities_by_kind ON {schema}.activities (kind, at, key)",
        "ALTER TABLE {schema}.states SET (fillfactor = 90)",
    ),
)

# --------------------------------------------------------------------------- the schema version

#: Serialises migrations: two workers starting at once on a fresh database take turns. The
#: parameter is ``"nurturekit.migrate:" + schema``; the lock ends with the transaction.
MIGRATION_LOCK: Final = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"

SCHEMA_EXISTS: Final = "SELECT EXISTS (SELECT FROM pg_catalog.pg_namespace WHERE nspname = %s)"

META_EXISTS: Final = """
    SELECT EXISTS (
        SELECT FROM pg_catalog.pg_tables
        WHERE schemaname = %s AND tablename = 'nurturekit_meta'
    )
"""

CREATE_SCHEMA: Final = "CREATE SCHEMA {schema}"

CREATE_META: Final = """
    CREATE TABLE {schema}.nurturekit_meta (
        key   text PRIMARY KEY,
        value text NOT NULL
    )
"""

GET_VERSION: Final = "SELECT value FROM {schema}.nurturekit_meta WHERE key = 'schema_version'"

SET_VERSION: Final = """
    INSERT INTO {schema}.nurturekit_meta (key, value) VALUES ('schema_version', %s)
    ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value
"""

# --------------------------------------------------------------------------- the session

#: Run once per connection: no JIT compilation for this session's statements. Each is a short
#: index-driven read or write of a batch, but a table's row estimates can be far off (a table
#: never analysed, as during a bulk import into a new schema, or with autovacuum off, takes
#: ``= ANY(ids)`` to match the whole table), and once an estimate passes ``jit_above_cost`` every
#: execution compiles its plan again: measured on a million activities, reading the histories
#: of 500 leads took 31 to 44 ms with JIT (6 to 80 ms of it compiling) and 2 to 4 ms without.
NO_JIT: Final = "SET jit = off"

# --------------------------------------------------------------------------- commits

#: Added to the ``WHERE`` of an ``UPDATE`` run as a transaction of its own (autocommit): its
#: commit is then acknowledged as soon as the server has it, without waiting for the log to
#: reach the disk. ``set_config(…, true)`` sets ``synchronous_commit`` for this one transaction,
#: in an InitPlan evaluated once before any row is touched. Every session sees the commit at
#: once and no client crash can lose it; a crash of the server right after could. Only for
#: claims and send marks, whose loss in a server crash at worst hands a send over once more,
#: with the same key; never inside a longer transaction (it would cover all of it).
NO_FLUSH_WAIT: Final = (
    "\n      AND (SELECT set_config('synchronous_commit', 'off', true)) IS NOT NULL\n"
)

# --------------------------------------------------------------------------- leads and state

PUT_LEAD: Final = """
    INSERT INTO {schema}.leads (id, body, contact) VALUES (%s, %s, %s)
    ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body, contact = EXCLUDED.contact
"""

GET_LEAD: Final = "SELECT body FROM {schema}.leads WHERE id = %s"

#: The leads among a list of ids (a ``text[]``), in no particular order.
GET_LEADS: Final = "SELECT id, body FROM {schema}.leads WHERE id = ANY(%b::text[])"

#: One page of every lead in id order (the order the Storage port promises), after the id
#: given (``''`` for the first page).
LEADS_PAGE: Final = "SELECT id, body FROM {schema}.leads WHERE id > %s ORDER BY id LIMIT %s"

PUT_STATE: Final = """
    INSERT INTO {schema}.states (lead_id, body, with_sales, disqualified) VALUES (%s, %s, %s, %s)
    ON CONFLICT (lead_id) DO UPDATE SET
        body = EXCLUDED.body,
        with_sales = EXCLUDED.with_sales,
        disqualified = EXCLUDED.disqualified
"""

#: ``PUT_LEAD`` for many leads (arrays of ids, bodies and contact statuses, one id once).
PUT_LEADS: Final = """
    INSERT INTO {schema}.leads (id, body, contact)
    SELECT * FROM unnest(%(ids)b::text[], %(bodies)b::text[], %(contacts)b::text[])
    ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body, contact = EXCLUDED.contact
"""

GET_STATE: Final = "SELECT body FROM {schema}.states WHERE lead_id = %s"

#: ``PUT_STATE`` for many states (one lead once).
PUT_STATES: Final = """
    INSERT INTO {schema}.states (lead_id, body, with_sales, disqualified)
    SELECT * FROM unnest(
        %(ids)b::text[], %(bodies)b::text[], %(with_sales)b::boolean[],
        %(disqualified)b::boolean[]
    )
    ON CONFLICT (lead_id) DO UPDATE SET
        body = EXCLUDED.body,
        with_sales = EXCLUDED.with_sales,
        disqualified = EXCLUDED.disqualified
"""

GET_STATES: Final = "SELECT lead_id, body FROM {schema}.states WHERE lead_id = ANY(%b::text[])"

# --------------------------------------------------------------------------- activities

#: Inserts one row, or none when the key is already stored (the row count says which).
ADD_ACTIVITY: Final = """
    INSERT INTO {schema}.activities (key, lead_id, kind, at, body) VALUES (%s, %s, %s, %s, %s)
    ON CONFLICT (key) DO NOTHING
"""

#: ``ADD_ACTIVITY`` for many activities (arrays, one key once), answering the keys inserted.
ADD_ACTIVITIES: Final = """
    INSERT INTO {schema}.activities (key, lead_id, kind, at, body)
    SELECT * FROM unnest(
        %(keys)b::text[], %(leads)b::text[], %(kinds)b::text[], %(at)b::timestamptz[],
        %(bodies)b::text[]
    )
    ON CONFLICT (key) DO NOTHING
    RETURNING key
"""

ACTIVITIES_OF_LEAD: Final = """
    SELECT body FROM {schema}.activities WHERE lead_id = %s ORDER BY at, key
"""

#: The activities of the leads among a list of ids, each lead's in the order of
#: ``ACTIVITIES_OF_LEAD``.
ACTIVITIES_OF_LEADS: Final = """
    SELECT lead_id, body FROM {schema}.activities
    WHERE lead_id = ANY(%b::text[]) ORDER BY lead_id, at, key
"""

#: One page of the activities of one kind, after the time and key given (for the first page,
#: ``-infinity`` and ``''``).
ACTIVITIES_OF_KIND_PAGE: Final = """
    SELECT at, key, body FROM {schema}.activities
    WHERE kind = %s AND (at, key) > (%s::timestamptz, %s)
    ORDER BY at, key LIMIT %s
"""

# --------------------------------------------------------------------------- enrolments

#: How an enrolment row written again replaces the stored one (and ends its claim).
_ENROLLMENT_REPLACED: Final = """
    ON CONFLICT (id) DO UPDATE SET
        lead_id = EXCLUDED.lead_id,
        scenario = EXCLUDED.scenario,
        status = EXCLUDED.status,
        entered_at = EXCLUDED.entered_at,
        due_at = EXCLUDED.due_at,
        claimed_by = NULL,
        lease_until = NULL,
        body = EXCLUDED.body
"""

#: Insert or replace; either way the enrolment is no longer claimed.
PUT_ENROLLMENT: Final = (
    """
    INSERT INTO {schema}.enrollments
        (id, lead_id, scenario, status, entered_at, due_at, claimed_by, lease_until, body)
    VALUES (%s, %s, %s, %s, %s, %s, NULL, NULL, %s)
"""
    + _ENROLLMENT_REPLACED
)

ENROLLMENTS_OF_LEAD: Final = """
    SELECT body FROM {schema}.enrollments WHERE lead_id = %s ORDER BY entered_at, id
"""

#: The enrolments of the leads among a list of ids, each lead's in the order of
#: ``ENROLLMENTS_OF_LEAD``.
ENROLLMENTS_OF_LEADS: Final = """
    SELECT lead_id, body FROM {schema}.enrollments
    WHERE lead_id = ANY(%b::text[]) ORDER BY lead_id, entered_at, id
"""

ENROLLMENTS_PAGE: Final = """
    SELECT id, body FROM {schema}.enrollments WHERE id > %s ORDER BY id LIMIT %s
"""

ENROLLMENTS_OF_SCENARIO_PAGE: Final = """
    SELECT id, body FROM {schema}.enrollments
    WHERE scenario = %s AND id > %s
    ORDER BY id LIMIT %s
"""

#: Claim due work, procrastinate-style: pick and mark in one statement. ``SKIP LOCKED`` lets
#: concurrent workers pass over the rows another is claiming instead of queueing behind them;
#: a row someone claimed meanwhile is re-checked against the lease condition once locked.
#: The pick is a CTE rather than ``WHERE id IN (SELECT … LIMIT … SKIP LOCKED)``: the planner
#: may re-run such a subquery, and with SKIP LOCKED each run can return other rows, so the
#: UPDATE could claim more than the limit. A CTE with a locking clause is evaluated once.
#: ``RETURNING`` has no order: the store sorts by ``(due_at, id)``.
CLAIM_DUE: Final = """
    WITH due AS (
        SELECT id FROM {schema}.enrollments
        WHERE status IN ('active', 'waiting')
          AND due_at <= %(now)s
          AND (lease_until IS NULL OR lease_until <= %(now)s)
        ORDER BY due_at, id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    )
    UPDATE {schema}.enrollments AS e
    SET claimed_by = %(worker)s, lease_until = %(until)s
    FROM due
    WHERE e.id = due.id
    RETURNING e.body
"""

#: ``CLAIM_DUE`` as a transaction of its own, see ``NO_FLUSH_WAIT``.
CLAIM_DUE_WITHOUT_FLUSH: Final = CLAIM_DUE.replace(
    "WHERE e.id = due.id\n", "WHERE e.id = due.id" + NO_FLUSH_WAIT
)

RENEW_LEASE: Final = """
    UPDATE {schema}.enrollments SET lease_until = %s WHERE id = %s AND claimed_by = %s
"""

#: The fence in front of a batch of steps, inside its transaction: the rows stay locked until
#: it ends, so no other worker can claim them meanwhile (its claim skips locked rows).
RENEW_LEASES: Final = """
    UPDATE {schema}.enrollments SET lease_until = %(until)s
    WHERE id = ANY(%(ids)b::text[]) AND claimed_by = %(worker)s
    RETURNING id
"""

#: ``RENEW_LEASES`` without a new lease: the rows are locked, not rewritten. Measured on the
#: reference machine, a transaction fencing 25 rows: 594 µs locking, 861 µs rewriting (280 µs
#: with no statement).
HOLD_CLAIMS: Final = """
    SELECT id FROM {schema}.enrollments
    WHERE id = ANY(%(ids)b::text[]) AND claimed_by = %(worker)s
    FOR NO KEY UPDATE
"""

RELEASE_CLAIMS: Final = """
    UPDATE {schema}.enrollments SET claimed_by = NULL, lease_until = NULL
    WHERE claimed_by = %s
"""

# --------------------------------------------------------------------------- hand-offs

PUT_HANDOFF: Final = """
    INSERT INTO {schema}.handoffs
        (id, lead_id, at, status, deadline, escalated_at, notified_at, escalation_notified_at,
         body)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (id) DO UPDATE SET
        lead_id = EXCLUDED.lead_id,
        at = EXCLUDED.at,
        status = EXCLUDED.status,
        deadline = EXCLUDED.deadline,
        escalated_at = EXCLUDED.escalated_at,
        notified_at = EXCLUDED.notified_at,
        escalation_notified_at = EXCLUDED.escalation_notified_at,
        body = EXCLUDED.body
"""

HANDOFFS_OF_LEAD: Final = """
    SELECT body FROM {schema}.handoffs WHERE lead_id = %s ORDER BY at, id
"""

#: One page of every hand-off in id order, as :data:`LEADS_PAGE` pages the leads.
HANDOFFS_PAGE: Final = """
    SELECT id, body FROM {schema}.handoffs WHERE id > %s ORDER BY id LIMIT %s
"""

#: Open, overdue, not escalated yet; the test repeats the partial index's WHERE.
DUE_BREACHES: Final = """
    SELECT body FROM {schema}.handoffs
    WHERE status = 'open' AND escalated_at IS NULL AND deadline <= %s
    ORDER BY deadline, id LIMIT %s
"""

#: Owing the sink a notice: the hand-off itself, or its escalation.
AWAITING_NOTICE: Final = """
    SELECT body FROM {schema}.handoffs
    WHERE notified_at IS NULL
       OR (escalated_at IS NOT NULL AND escalation_notified_at IS NULL)
    ORDER BY at, id LIMIT %s
"""

#: Claims notices owed to the sink, as ``CLAIM_DUE`` claims enrolments.
CLAIM_NOTICES: Final = """
    WITH owed AS (
        SELECT id FROM {schema}.handoffs
        WHERE (notified_at IS NULL
               OR (escalated_at IS NOT NULL AND escalation_notified_at IS NULL))
          AND (lease_until IS NULL OR lease_until <= %(now)s)
        ORDER BY at, id
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    )
    UPDATE {schema}.handoffs AS h
    SET claimed_by = %(worker)s, lease_until = %(until)s
    FROM owed
    WHERE h.id = owed.id
    RETURNING h.at, h.id, h.body
"""

#: Hands out the stored position (kept below ``size``) and stores the next, in one statement:
#: concurrent callers queue on the row (or on the insert of a new team), so each position is
#: handed out once. ``RETURNING`` sees the row as updated.
NEXT_IN_ROTATION: Final = """
    INSERT INTO {schema}.rotations AS r (team, position) VALUES (%(team)s, 1)
    ON CONFLICT (team) DO UPDATE SET position = mod(r.position, %(size)s) + 1
    RETURNING r.position - 1
"""

# --------------------------------------------------------------------------- the outbox

#: Inserts one row, or none when the key is already there (the row count says which).
ADD_TO_OUTBOX: Final = """
    INSERT INTO {schema}.outbox (key, lead_id, marketing, created_at, body)
    VALUES (%s, %s, %s, %s, %s)
    ON CONFLICT (key) DO NOTHING
"""

#: A batch of steps in one statement: the sends (``ADD_TO_OUTBOX`` for each, a key already
#: there skipped) and the enrolments (``PUT_ENROLLMENT`` for each), as arrays of their columns.
#: A data-modifying CTE runs whether or not the statement reads it; the two touch different
#: tables, so the one snapshot they share changes nothing. The store passes each key and id
#: once (an ``ON CONFLICT DO UPDATE`` may not meet the same row twice). The arrays go in binary
#: (``%(name)b``): as a text array literal, every quote in the JSON bodies would have to be
#: escaped, which costs psycopg more than the rest of the batch.
WRITE_STEPS: Final = (
    """
    WITH sends AS (
        INSERT INTO {schema}.outbox (key, lead_id, marketing, created_at, body)
        SELECT * FROM unnest(
            %(keys)b::text[], %(mail_leads)b::text[], %(marketing)b::boolean[],
            %(created_at)b::timestamptz[], %(mail_bodies)b::text[]
        )
        ON CONFLICT (key) DO NOTHING
    )
    INSERT INTO {schema}.enrollments
        (id, lead_id, scenario, status, entered_at, due_at, claimed_by, lease_until, body)
    SELECT id, lead_id, scenario, status, entered_at, due_at, NULL, NULL, body
    FROM unnest(
        %(ids)b::text[], %(leads)b::text[], %(scenarios)b::text[], %(statuses)b::text[],
        %(entered_at)b::timestamptz[], %(due_at)b::timestamptz[], %(bodies)b::text[]
    ) AS s (id, lead_id, scenario, status, entered_at, due_at, body)
"""
    + _ENROLLMENT_REPLACED
)

#: Records the outcome and ends the claim.
MARK_SENT: Final = """
    UPDATE {schema}.outbox
    SET status = %s, detail = %s, attempts = attempts + 1, updated_at = %s, retry_at = %s,
        claimed_by = NULL, lease_until = NULL
    WHERE key = %s
"""

#: ``MARK_SENT`` as a transaction of its own (autocommit), see ``NO_FLUSH_WAIT``.
MARK_SENT_WITHOUT_FLUSH: Final = MARK_SENT.rstrip() + NO_FLUSH_WAIT

#: Sends to hand over — new ones, and deferred ones due for another try — that no live claim
#: holds, oldest first, skipping rows another worker is claiming right now.
CLAIM_MAIL: Final = """
    WITH picked AS (
        SELECT key FROM {schema}.outbox
        WHERE (status IS NULL
               OR (status = 'deferred' AND (retry_at IS NULL OR retry_at <= %(now)s)))
          AND (lease_until IS NULL OR lease_until <= %(now)s)
        ORDER BY seq
        LIMIT %(limit)s
        FOR UPDATE SKIP LOCKED
    )
    UPDATE {schema}.outbox AS o
    SET claimed_by = %(worker)s, lease_until = %(until)s
    FROM picked
    WHERE o.key = picked.key
    RETURNING o.seq, o.body
"""

#: ``CLAIM_MAIL`` as a transaction of its own, see ``NO_FLUSH_WAIT``.
CLAIM_MAIL_WITHOUT_FLUSH: Final = CLAIM_MAIL.replace(
    "WHERE o.key = picked.key\n", "WHERE o.key = picked.key" + NO_FLUSH_WAIT
)

#: The fence in front of a hand-over: the sends among the keys that the worker still holds,
#: with what suppresses mail to their leads, read fresh (one statement, one round trip).
HELD_MAIL: Final = """
    SELECT o.key, o.attempts, l.contact,
           s.with_sales, s.disqualified
    FROM {schema}.outbox AS o
    LEFT JOIN {schema}.leads AS l ON l.id = o.lead_id
    LEFT JOIN {schema}.states AS s ON s.lead_id = o.lead_id
    WHERE o.key = ANY(%(keys)b::text[]) AND o.claimed_by = %(worker)s
      AND (o.status IS NULL OR o.status = 'deferred')
"""

#: ``HELD_MAIL`` for one key: ``= ANY(array)`` costs twice as much as ``=`` for one row.
HELD_ONE_MAIL: Final = HELD_MAIL.replace("o.key = ANY(%(keys)b::text[])", "o.key = %(key)s")

#: ``MARK_SENT`` of ``key`` and ``HELD_ONE_MAIL`` of ``next`` in one statement (one round trip
#: per mail of a mailer that yields its results): no row when there is no send ``key``, else one
#: row with the columns of the next send, NULL when it is not held. The read's snapshot is taken
#: before the update, which touches another row. An ``UPDATE … FROM`` rather than a
#: data-modifying ``WITH``: 141 µs rather than 156 µs a mail on the reference machine.
MARK_AND_HOLD: Final = (
    """
    UPDATE {schema}.outbox AS m
    SET status = %s, detail = %s, attempts = m.attempts + 1,
        updated_at = %s, retry_at = %s, claimed_by = NULL, lease_until = NULL
    FROM (SELECT 1) AS one
    LEFT JOIN (
        SELECT o.key, o.attempts, l.contact, s.with_sales, s.disqualified
        FROM {schema}.outbox AS o
        LEFT JOIN {schema}.leads AS l ON l.id = o.lead_id
        LEFT JOIN {schema}.states AS s ON s.lead_id = o.lead_id
        WHERE o.key = %s AND o.claimed_by = %s
          AND (o.status IS NULL OR o.status = 'deferred')
    ) AS h ON true
    WHERE m.key = %s"""
    + NO_FLUSH_WAIT
    + """    RETURNING h.key, h.attempts, h.contact, h.with_sales, h.disqualified
"""
)

#: ``HELD_MAIL`` that also sets the leases of the sends held to end at ``until``.
RENEW_HELD_MAIL: Final = """
    WITH held AS (
        UPDATE {schema}.outbox SET lease_until = %(until)s
        WHERE key = ANY(%(keys)b::text[]) AND claimed_by = %(worker)s
          AND (status IS NULL OR status = 'deferred')
        RETURNING key, lead_id, attempts
    )
    SELECT held.key, held.attempts, l.contact,
           s.with_sales, s.disqualified
    FROM held
    LEFT JOIN {schema}.leads AS l ON l.id = held.lead_id
    LEFT JOIN {schema}.states AS s ON s.lead_id = held.lead_id
"""

#: Not handed over yet, or deferred: in the order they were written.
PENDING_MAIL: Final = """
    SELECT body FROM {schema}.outbox
    WHERE status IS NULL OR status = 'deferred'
    ORDER BY seq LIMIT %s
"""

OUTBOX_PAGE: Final = """
    SELECT key, status, detail, attempts, updated_at, retry_at, body FROM {schema}.outbox
    WHERE key > %s
    ORDER BY key LIMIT %s
"""

#: What a provider reported after the hand-over: attempts and claim left as they are.
REPORT_SEND: Final = """
    UPDATE {schema}.outbox SET status = %s, detail = %s, updated_at = %s WHERE key = %s
"""

#: One send by its key: the columns of ``OUTBOX_PAGE`` but ``key``.
GET_SEND: Final = """
    SELECT status, detail, attempts, updated_at, retry_at, body FROM {schema}.outbox
    WHERE key = %s
"""

MARKETING_SENDS_SINCE: Final = """
    SELECT created_at FROM {schema}.outbox
    WHERE lead_id = %s AND marketing AND created_at >= %s
    ORDER BY created_at
"""

# --------------------------------------------------------------------------- test-sends

#: Adds a test-send, or replaces the one with the same template, version, address and time.
RECORD_TEST_SEND: Final = """
    INSERT INTO {schema}.test_sends (template, version, address, at, status, detail, sent_by)
    VALUES (%s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (template, version, address, at) DO UPDATE SET
        status = EXCLUDED.status,
        detail = EXCLUDED.detail,
        sent_by = EXCLUDED.sent_by
"""

#: Every test-send in the order the Storage port promises: newest first, then by template,
#: version and address (by code point: the columns are ``COLLATE "C"``).
TEST_SENDS: Final = """
    SELECT template, version, address, at, status, detail, sent_by FROM {schema}.test_sends
    ORDER BY at DESC, template, version, address
"""

#: The test-sends of one template, in the same order.
TEST_SENDS_OF_TEMPLATE: Final = """
    SELECT template, version, address, at, status, detail, sent_by FROM {schema}.test_sends
    WHERE template = %s
    ORDER BY at DESC, template, version, address
"""
