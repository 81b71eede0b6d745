"""The SQLite store: the storage contract, opening files (new, old, newer, foreign, broken),
transactions, and real processes sharing one file, claiming at once or killed mid-batch."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest
from engine_fixtures import World, program
from sqlite_files import add_activity_as_before_7

from nurturekit import Activity
from nurturekit.engine import Engine
from nurturekit.errors import StorageError
from nurturekit.messages import SendStatus
from nurturekit.ports import LeadState, Storage
from nurturekit.scenario import EnrollmentStatus
from nurturekit.scoring import ScoreCard
from nurturekit.storage import sqlite_sql
from nurturekit.storage.codec import state_to_json
from nurturekit.storage.memory import InMemoryStorage
from nurturekit.storage.sqlite import SCHEMA_VERSION, SQLiteStorage
from nurturekit.storage.sqlite_rows import stamp
from nurturekit.testing import (
    LEASE,
    T0,
    StorageContract,
    make_activity,
    make_enrollment,
    make_handoff,
    make_lead,
    make_mail,
)

JST = timezone(timedelta(hours=9))


class TestSQLiteContract(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Iterator[SQLiteStorage]:
        store = SQLiteStorage(tmp_path / "nk.db")
        yield store
        store.close()

    def open_again(self, storage: Storage) -> Storage:
        assert isinstance(storage, SQLiteStorage)
        return SQLiteStorage(storage.path)


class TestSQLiteContractWithoutCache(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Iterator[SQLiteStorage]:
        store = SQLiteStorage(tmp_path / "nk.db", cache_size=0)
        yield store
        store.close()

    def open_again(self, storage: Storage) -> Storage:
        assert isinstance(storage, SQLiteStorage)
        return SQLiteStorage(storage.path, cache_size=0)


class TestSQLiteContractWithATinyCache(StorageContract):
    """A cache that drops leads all the time: every read must still be right."""

    @pytest.fixture
    def storage(self, tmp_path: Path) -> Iterator[SQLiteStorage]:
        store = SQLiteStorage(tmp_path / "nk.db", cache_size=3)
        yield store
        store.close()

    def open_again(self, storage: Storage) -> Storage:
        assert isinstance(storage, SQLiteStorage)
        return SQLiteStorage(storage.path, cache_size=3)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "nk.db"


def query(path: Path, sql: str) -> list[Any]:
    """Read the file with a plain connection of its own, as another program would."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file in ``directory`` with its bytes: what "left as it was" means."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


# ------------------------------------------------------------------------------ opening


class TestOpening:
    def test_a_new_file_gets_the_schema_and_its_version_in_wal_mode(self, db: Path) -> None:
        SQLiteStorage(db).close()
        assert query(db, "SELECT key, value FROM nurturekit_meta") == [
            ("schema_version", str(SCHEMA_VERSION))
        ]
        assert query(db, "PRAGMA journal_mode") == [("wal",)]
        tables = {name for (name,) in query(db, "SELECT name FROM sqlite_master")}
        assert {"leads", "states", "activities", "enrollments", "outbox"} <= tables
        assert {"enrollments_due", "outbox_pending", "activities_by_lead"} <= tables

    def test_an_empty_existing_file_gets_the_schema(self, db: Path) -> None:
        db.touch()
        with SQLiteStorage(db) as storage:
            storage.put_lead(make_lead())
        assert query(db, "SELECT count(*) FROM leads") == [(1,)]

    def test_reopening_keeps_everything(self, db: Path) -> None:
        with SQLiteStorage(db) as storage:
            storage.put_lead(make_lead(created_at=T0))
            storage.add_activity(make_activity(page="pricing"))
            storage.put_enrollment(make_enrollment(1))
            storage.add_to_outbox(make_mail("k1"))
            storage.mark_sent("k1", SendStatus.DEFERRED, "451 later", T0)
            storage.claim_due(T0, 10, "w1", LEASE)
        with SQLiteStorage(db) as storage:
            assert storage.get_lead("l1") == make_lead(created_at=T0)
            assert list(storage.activities("l1")) == [make_activity(page="pricing")]
            assert storage.enrollments_of("l1") == [make_enrollment(1)]
            assert storage.claim_due(T0, 10, "w2", LEASE) == []  # the claim was kept too
            (entry,) = storage.outbox()
            assert (entry.status, entry.detail, entry.attempts) == (
                SendStatus.DEFERRED,
                "451 later",
                1,
            )
            assert [m.key for m in storage.pending_mail(10)] == ["k1"]

    def test_a_newer_schema_version_is_refused_and_nothing_is_written(self, db: Path) -> None:
        with SQLiteStorage(db) as storage:
            storage.put_lead(make_lead())
        conn = sqlite3.connect(db)
        conn.execute("UPDATE nurturekit_meta SET value = '99' WHERE key = 'schema_version'")
        conn.commit()
        conn.close()
        before = snapshot(db.parent)
        with pytest.raises(StorageError) as caught:
            SQLiteStorage(db)
        message = str(caught.value)
        assert str(db) in message and "99" in message and f"version {SCHEMA_VERSION}" in message
        assert "upgrade nurturekit" in message
        assert snapshot(db.parent) == before

    def test_a_file_of_random_bytes_is_refused_and_left_as_it_was(self, db: Path) -> None:
        db.write_bytes(random.Random(4).randbytes(64 * 1024))
        before = snapshot(db.parent)
        with pytest.raises(StorageError, match="not a SQLite database or is damaged") as caught:
            SQLiteStorage(db)
        assert str(db) in str(caught.value)
        assert snapshot(db.parent) == before

    def test_a_nurturekit_file_with_a_mangled_header_is_refused_and_left_as_it_was(
        self, db: Path
    ) -> None:
        with SQLiteStorage(db) as storage:
            storage.put_lead(make_lead())
        data = bytearray(db.read_bytes())
        data[:16] = b"not sqlite here!"
        db.write_bytes(bytes(data))
        before = snapshot(db.parent)
        with pytest.raises(StorageError, match="damaged"):
            SQLiteStorage(db)
        assert snapshot(db.parent) == before

    def test_another_programs_sqlite_file_is_refused_and_left_as_it_was(self, db: Path) -> None:
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        conn.execute("INSERT INTO invoices (total) VALUES (12.5)")
        conn.commit()
        conn.close()
        before = snapshot(db.parent)
        with pytest.raises(StorageError, match="not a nurturekit database") as caught:
            SQLiteStorage(db)
        assert "invoices" in str(caught.value)
        assert snapshot(db.parent) == before
        assert query(db, "SELECT name FROM sqlite_master") == [("invoices",)]

    def test_a_missing_directory_is_a_storage_error(self, tmp_path: Path) -> None:
        with pytest.raises(StorageError, match="cannot open"):
            SQLiteStorage(tmp_path / "no" / "such" / "dir" / "nk.db")

    def test_bad_settings_are_refused(self, db: Path) -> None:
        with pytest.raises(StorageError, match="synchronous='SOMETIMES'"):
            SQLiteStorage(db, synchronous="SOMETIMES")
        with pytest.raises(StorageError, match="busy_timeout=-1"):
            SQLiteStorage(db, busy_timeout=-1)
        assert not db.exists()

    def test_synchronous_is_applied(self, db: Path) -> None:
        with SQLiteStorage(db, synchronous="normal") as storage:
            assert storage._conn.execute("PRAGMA synchronous").fetchone() == (1,)

    def test_a_closed_store_says_so(self, db: Path) -> None:
        storage = SQLiteStorage(db)
        storage.close()
        storage.close()
        with pytest.raises(StorageError, match="closed"):
            storage.get_lead("l1")


# ------------------------------------------------------------------------------ migrations


NOTES = SCHEMA_VERSION + 1
BROKEN = SCHEMA_VERSION + 2


class _AtVersion1(SQLiteStorage):
    """The nurturekit of schema version 1: leads, state, activities, enrolments, the outbox."""

    _migrations = sqlite_sql.MIGRATIONS[:1]


class _AtVersion6(SQLiteStorage):
    """The nurturekit of schema version 6: rows with a text time and a JSON body."""

    _migrations = sqlite_sql.MIGRATIONS[:6]


class _AtVersion2(SQLiteStorage):
    """The nurturekit of schema version 2: hand-offs and rotations, no fenced delivery yet."""

    _migrations = sqlite_sql.MIGRATIONS[:2]


class _WithNotes(SQLiteStorage):
    """A future nurturekit whose next schema version adds a column."""

    _migrations = (
        *sqlite_sql.MIGRATIONS,
        (
            NOTES,
            "ALTER TABLE leads ADD COLUMN note TEXT;\nCREATE INDEX leads_by_note ON leads (note);",
        ),
    )


class _WithABrokenMigration(SQLiteStorage):
    _migrations = (
        *_WithNotes._migrations,
        (BROKEN, "CREATE TABLE extra (x TEXT);\nSELECT * FROM no_such_table;"),
    )


class TestMigrations:
    def test_an_older_file_is_migrated_forward_and_keeps_its_data(self, db: Path) -> None:
        with SQLiteStorage(db) as storage:
            storage.put_lead(make_lead())
        with _WithNotes(db) as storage:
            assert storage.get_lead("l1") == make_lead()
        assert query(db, "SELECT value FROM nurturekit_meta") == [(str(NOTES),)]
        assert "note" in {row[1] for row in query(db, "PRAGMA table_info(leads)")}
        # ... and the code of the version before now refuses the file.
        newer = f"version {NOTES}, newer than this nurturekit's version {SCHEMA_VERSION}"
        with pytest.raises(StorageError, match=newer):
            SQLiteStorage(db)

    def test_a_version_1_file_gets_the_handoff_tables_and_keeps_its_data(self, db: Path) -> None:
        with _AtVersion1(db) as storage:
            storage.put_lead(make_lead())
            storage.put_enrollment(make_enrollment(1))
            storage.add_to_outbox(make_mail("k1"))
        add_activity_as_before_7(db, make_activity(page="pricing"))
        assert query(db, "SELECT value FROM nurturekit_meta") == [("1",)]
        assert not query(db, "SELECT name FROM sqlite_master WHERE name LIKE 'handoffs%'")
        with SQLiteStorage(db) as storage:
            assert storage.get_lead("l1") == make_lead()
            assert list(storage.activities("l1")) == [make_activity(page="pricing")]
            assert storage.enrollments_of("l1") == [make_enrollment(1)]
            assert [m.key for m in storage.pending_mail(10)] == ["k1"]
            storage.put_handoff(make_handoff())
            assert storage.handoffs_of("l1") == [make_handoff()]
            assert storage.next_in_rotation("team", 3) == 0
        assert query(db, "SELECT value FROM nurturekit_meta") == [(str(SCHEMA_VERSION),)]
        names = {name for (name,) in query(db, "SELECT name FROM sqlite_master")}
        assert {"handoffs", "rotations", "handoffs_by_lead", "handoffs_breaches"} <= names
        assert "handoffs_notices" in names
        newer = f"version {SCHEMA_VERSION}, newer than this nurturekit's version 1"
        with pytest.raises(StorageError, match=newer):
            _AtVersion1(db)

    def test_a_version_2_file_gets_retry_times_and_suppression_flags_from_its_data(
        self, db: Path
    ) -> None:
        with _AtVersion2(db) as storage:
            storage.put_lead(make_lead())
            storage.add_to_outbox(make_mail("k1"))
        state = LeadState(lead_id="l1", card=ScoreCard(lead_id="l1"), with_sales=True)
        conn = sqlite3.connect(db)
        with conn:
            conn.execute(
                "UPDATE outbox SET status = 'deferred', attempts = 1, updated_at = ?",
                ("2026-04-01T09:00:00.000000+00:00",),
            )
            conn.execute(
                "INSERT INTO states (lead_id, body) VALUES ('l1', ?)", (state_to_json(state),)
            )
        conn.close()
        with SQLiteStorage(db) as storage:
            (entry,) = storage.outbox()
            assert entry.retry_at == T0
            assert storage.claim_mail(T0 - timedelta(seconds=1), 10, "w", LEASE) == []
            assert [m.key for m in storage.claim_mail(T0, 10, "w", LEASE)] == ["k1"]
            held = storage.hold_mail(["k1"], "w")
            assert held["k1"].with_sales and not held["k1"].disqualified
            assert held["k1"].attempts == 1

    def test_a_version_6_file_gets_compact_rows_and_reads_back_the_same(self, db: Path) -> None:
        lead = make_lead()
        state = LeadState(lead_id="l1", card=ScoreCard(lead_id="l1"), with_sales=True)
        activities = [
            make_activity(page="pricing"),
            make_activity(minutes=0.5),  # no properties
            make_activity(minutes=1, note='a NUL \x00 and a quote "', n=3, flag=True),
            Activity(lead_id="l2", kind="email_open", at=T0.replace(microsecond=7)),
            # Two of one time: in key order, a key of the caller's (text) among derived ones.
            Activity(lead_id="l2", kind="email_click", at=T0.replace(microsecond=7), key="ff"),
        ]
        with _AtVersion6(db) as storage:
            storage.put_lead(lead)
            storage.put_state(state)
        for activity in activities:
            add_activity_as_before_7(db, activity)
        assert query(db, "SELECT value FROM nurturekit_meta") == [("6",)]
        with SQLiteStorage(db) as storage:
            assert storage.get_lead("l1") == lead
            found = storage.get_state("l1")
            assert found is not None and state_to_json(found) == state_to_json(state)
            assert list(storage.activities("l1")) == activities[:3]
            assert list(storage.activities("l2")) == sorted(activities[3:], key=lambda a: a.key)
            assert [a.key for a in storage.activities("l2")] == sorted(
                a.key for a in activities[3:]
            )
            assert sorted(a.key for a in storage.activities_of_kinds(["page_view"])) == sorted(
                a.key for a in activities[:3]
            )
            assert not storage.add_activity(activities[0])  # its key is still known
            assert storage.hold_mail([], "w") == {}
        assert query(db, "SELECT value FROM nurturekit_meta") == [(str(SCHEMA_VERSION),)]
        tables = dict(query(db, "SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
        assert "WITHOUT ROWID" in tables["leads"] and "WITHOUT ROWID" in tables["states"]
        assert "activities_6" not in tables
        assert query(db, "SELECT at, properties FROM activities ORDER BY seq") == [
            (1775034000000000, '{"page":"pricing"}'),
            (1775034030000000, None),
            (1775034060000000, '{"note":"a NUL \\u0000 and a quote \\"","n":3,"flag":true}'),
            (1775034000000007, None),
            (1775034000000007, None),
        ]
        keys = [key for (key,) in query(db, "SELECT key FROM activities ORDER BY seq")]
        assert keys[:4] == [bytes.fromhex(a.key) for a in activities[:4]] and keys[4] == "ff"
        assert query(db, "SELECT with_sales FROM states") == [(1,)]

    def test_a_version_0_file_gets_every_table(self, db: Path) -> None:
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE nurturekit_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO nurturekit_meta VALUES ('schema_version', '0')")
        conn.commit()
        conn.close()
        with SQLiteStorage(db) as storage:
            storage.put_lead(make_lead())
        assert query(db, "SELECT value FROM nurturekit_meta") == [(str(SCHEMA_VERSION),)]

    def test_a_failing_migration_leaves_the_file_at_the_last_good_version(self, db: Path) -> None:
        SQLiteStorage(db).close()
        with pytest.raises(StorageError, match=f"migration to schema version {BROKEN} failed"):
            _WithABrokenMigration(db)
        assert query(db, "SELECT value FROM nurturekit_meta") == [(str(NOTES),)]
        tables = {name for (name,) in query(db, "SELECT name FROM sqlite_master")}
        assert "extra" not in tables and "leads_by_note" in tables


# ------------------------------------------------------------------------------ transactions


class TestTransactions:
    def test_an_error_after_several_writes_leaves_none_of_them(self, db: Path) -> None:
        storage = SQLiteStorage(db)
        with pytest.raises(ZeroDivisionError), storage.transaction():
            storage.put_lead(make_lead())
            for n in range(50):
                storage.add_activity(make_activity(minutes=n))
            storage.put_enrollment(make_enrollment(1))
            storage.add_to_outbox(make_mail())
            _ = 1 / 0
        storage.close()
        for table in ("leads", "activities", "enrollments", "outbox"):
            assert query(db, f"SELECT count(*) FROM {table}") == [(0,)], table

    def test_a_batch_is_one_sqlite_transaction_that_others_see_whole_or_not_at_all(
        self, db: Path
    ) -> None:
        writer, reader = SQLiteStorage(db), SQLiteStorage(db)
        with writer.transaction():
            for n in range(100):
                writer.add_activity(make_activity(minutes=n))
                if n == 50:
                    assert list(reader.activities("l1")) == []
        assert len(reader.activities("l1")) == 100
        writer.close()
        reader.close()

    def test_a_writer_that_waits_too_long_gets_a_storage_error(self, db: Path) -> None:
        holder, other = SQLiteStorage(db), SQLiteStorage(db, busy_timeout=0.2)
        with holder.transaction():
            holder.put_lead(make_lead())
            started = time.monotonic()
            with pytest.raises(StorageError, match=r"locked.*busy_timeout=0\.2s"):
                other.put_lead(make_lead("l2"))
            assert time.monotonic() - started >= 0.15
        other.put_lead(make_lead("l2"))
        assert sorted(lead.id for lead in other.leads()) == ["l1", "l2"]
        holder.close()
        other.close()

    def test_threads_sharing_one_store_keep_every_write(self, db: Path) -> None:
        storage = SQLiteStorage(db)

        def write(thread: int) -> None:
            for n in range(100):
                with storage.transaction():
                    storage.add_activity(make_activity(f"t{thread}", minutes=n))
                    storage.put_lead(make_lead(f"t{thread}"))

        threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sum(len(storage.activities(f"t{t}")) for t in range(4)) == 400
        storage.close()

    def test_a_key_rolled_back_can_be_stored_again_with_other_content(self, db: Path) -> None:
        with SQLiteStorage(db) as storage:
            first = Activity(lead_id="l1", kind="page_view", at=T0, key="evt-1")
            with pytest.raises(ZeroDivisionError), storage.transaction():
                storage.add_activity(first)
                assert list(storage.activities("l1")) == [first]
                _ = 1 / 0
            second = Activity(lead_id="l1", kind="email_open", at=T0, key="evt-1")
            assert storage.add_activity(second)
            assert list(storage.activities("l1")) == [second]

    def test_what_another_connection_writes_is_read_at_once(self, db: Path) -> None:
        one, two = SQLiteStorage(db), SQLiteStorage(db)
        one.put_lead(make_lead(name="前"))
        assert two.get_lead("l1") == make_lead(name="前")
        one.put_lead(make_lead(name="後"))
        assert two.get_lead("l1") == make_lead(name="後")
        one.close()
        two.close()

    def test_mark_sent_of_an_unknown_key_is_refused(self, db: Path) -> None:
        with SQLiteStorage(db) as storage, pytest.raises(StorageError, match="'nope'"):
            storage.mark_sent("nope", SendStatus.SENT, "", T0)


class TestCache:
    """Decoded values are kept per lead while no other connection writes the file."""

    def test_what_another_connection_commits_is_seen_inside_a_transaction(self, db: Path) -> None:
        one, two = SQLiteStorage(db), SQLiteStorage(db)
        one.put_lead(make_lead(name="前"))
        one.add_activity(make_activity(minutes=1))
        one.put_enrollment(make_enrollment(1))
        with two.transaction():  # fills two's cache
            assert two.get_lead("l1") == make_lead(name="前")
            assert len(two.activities("l1")) == 1
            assert two.enrollments_of("l1") == [make_enrollment(1)]
            assert two.get_state("l1") is None
        with one.transaction():
            one.put_lead(make_lead(name="後"))
            one.add_activity(make_activity(minutes=2))
            one.put_enrollment(make_enrollment(2))
            one.put_state(LeadState(lead_id="l1", card=ScoreCard(lead_id="l1"), qualified=True))
        with two.transaction():
            assert two.get_lead("l1") == make_lead(name="後")
            assert two.activities("l1") == [make_activity(minutes=1), make_activity(minutes=2)]
            assert two.enrollments_of("l1") == [make_enrollment(1), make_enrollment(2)]
            state = two.get_state("l1")
            assert state is not None and state.qualified
        one.close()
        two.close()

    def test_a_write_of_another_process_is_seen(self, db: Path) -> None:
        with SQLiteStorage(db) as storage:
            storage.put_lead(make_lead(name="前"))
            assert storage.get_lead("l1") == make_lead(name="前")
            child = python(
                """
                import sys
                from nurturekit.storage.sqlite import SQLiteStorage
                from nurturekit.testing import make_activity, make_lead
                with SQLiteStorage(sys.argv[1]) as other:
                    other.put_lead(make_lead(name="後"))
                    other.add_activity(make_activity(minutes=5))
                """,
                db,
            )
            _, errors = child.communicate(timeout=60)
            assert child.returncode == 0, errors.decode()
            assert storage.get_lead("l1") == make_lead(name="後")
            with storage.transaction():
                assert storage.activities("l1") == [make_activity(minutes=5)]

    def test_a_rollback_forgets_what_the_transaction_wrote(self, db: Path) -> None:
        with SQLiteStorage(db) as storage:
            storage.put_lead(make_lead(name="前"))
            storage.put_enrollment(make_enrollment(1))
            storage.add_activity(make_activity(minutes=1))
            old_state = LeadState(lead_id="l1", card=ScoreCard(lead_id="l1", last_key="old"))
            storage.put_state(old_state)
            with pytest.raises(ZeroDivisionError), storage.transaction():
                assert len(storage.activities("l1")) == 1
                storage.put_lead(make_lead(name="後"))
                storage.add_activity(make_activity(minutes=2))
                storage.put_enrollment(make_enrollment(2))
                new_state = LeadState(lead_id="l1", card=ScoreCard(lead_id="l1", last_key="new"))
                storage.put_state(new_state)
                assert len(storage.activities("l1")) == 2
                _ = 1 / 0
            assert storage.get_lead("l1") == make_lead(name="前")
            assert storage.activities("l1") == [make_activity(minutes=1)]
            assert storage.enrollments_of("l1") == [make_enrollment(1)]
            state = storage.get_state("l1")
            assert state is not None and state.card.last_key == "old"

    def test_a_write_outside_a_transaction_then_another_connections_is_not_hidden(
        self, db: Path
    ) -> None:
        one, two = SQLiteStorage(db), SQLiteStorage(db)
        one.put_lead(make_lead(name="一"))
        assert one.get_lead("l1") == make_lead(name="一")
        two.put_lead(make_lead(name="二"))
        assert one.get_lead("l1") == make_lead(name="二")
        with one.transaction():
            assert one.get_lead("l1") == make_lead(name="二")
        one.close()
        two.close()

    def test_handed_out_values_do_not_change_under_their_holder(self, db: Path) -> None:
        every = [make_activity(minutes=m) for m in (1, 5, 9)]
        with SQLiteStorage(db) as storage:
            storage.put_lead(make_lead())
            storage.add_activity(every[1])
            history = storage.activities("l1")  # outside a transaction: it never changes
            with storage.transaction():
                assert storage.activities("l1") == [every[1]]
                storage.add_activity(every[0])  # inserted before the first
                storage.add_activity(every[2])
                assert storage.activities("l1") == every
                mine = storage.enrollments_of("l1")
                mine.append(make_enrollment(9))
                assert storage.enrollments_of("l1") == []
            assert history == [every[1]]
            assert storage.activities("l1") == every

    def test_inside_a_transaction_the_history_grows_in_place(self, db: Path) -> None:
        # As in the in-memory store: recording an activity copies no history.
        with SQLiteStorage(db) as storage, storage.transaction():
            storage.add_activity(make_activity(minutes=5))
            history = storage.activities("l1")
            storage.add_activity(make_activity(minutes=1))
            storage.add_activity(make_activity(minutes=9))
            assert storage.activities("l1") is history
            assert history == [make_activity(minutes=m) for m in (1, 5, 9)]

    def test_a_state_changed_but_not_put_is_never_seen_after_its_transaction(
        self, db: Path
    ) -> None:
        with SQLiteStorage(db) as storage:
            storage.put_state(LeadState(lead_id="l1", card=ScoreCard(lead_id="l1")))
            with storage.transaction():
                # Inside a transaction the store lends its own object, as the port allows.
                state = storage.get_state("l1")
                assert state is not None and storage.get_state("l1") is state
                state.card.seen.add("x")
                state.moves.append(None)  # type: ignore[arg-type]
            again = storage.get_state("l1")
            assert again is not None and (again.card.seen, again.moves) == (set(), [])
            # Outside one, a copy: changing it changes nothing stored.
            again.card.seen.add("y")
            fresh = storage.get_state("l1")
            assert fresh is not None and fresh.card.seen == set()
            with storage.transaction():
                state = storage.get_state("l1")
                assert state is not None
                state.card.seen.add("z")
                storage.put_state(state)
            kept = storage.get_state("l1")
            assert kept is not None and kept.card.seen == {"z"}
        with SQLiteStorage(db) as storage:
            state = storage.get_state("l1")
            assert state is not None and state.card.seen == {"z"}

    def test_enrolments_keep_their_order_and_may_move_to_another_lead(self, db: Path) -> None:
        with SQLiteStorage(db) as storage, storage.transaction():
            assert storage.enrollments_of("l1") == []
            assert storage.enrollments_of("l2") == []
            late = attrs.evolve(make_enrollment(1), entered_at=T0 + timedelta(hours=1))
            early = make_enrollment(2)
            storage.put_enrollment(late)
            storage.put_enrollment(early)
            assert [e.number for e in storage.enrollments_of("l1")] == [2, 1]
            moved = attrs.evolve(late, lead_id="l2")
            storage.put_enrollment(moved)
            assert storage.enrollments_of("l1") == [early]
            assert storage.enrollments_of("l2") == [moved]

    def test_the_cache_stays_within_its_size(self, db: Path) -> None:
        with SQLiteStorage(db, cache_size=50) as storage:
            with storage.transaction():
                for n in range(40):
                    storage.put_lead(make_lead(f"l{n}"))
                    for minute in range(5):
                        storage.add_activity(make_activity(f"l{n}", minutes=minute))
                    assert len(storage.activities(f"l{n}")) == 5
                    assert storage._cache.weight <= 50
            for n in range(40):
                assert len(storage.activities(f"l{n}")) == 5
                assert storage.get_lead(f"l{n}") == make_lead(f"l{n}")
            assert storage._cache.weight <= 50
            entries = list(storage._cache._entries.values())
            assert sum(entry.weight for entry in entries) == storage._cache.weight
            for entry in entries:
                before = entry.weight
                storage._cache.resize(entry)
                assert entry.weight == before

    @pytest.mark.parametrize("cache_size", [0, 100_000])
    def test_states_put_in_a_transaction_are_written_once_at_its_end(
        self, db: Path, cache_size: int
    ) -> None:
        with SQLiteStorage(db, cache_size=cache_size) as storage:
            other = SQLiteStorage(db)
            with storage.transaction():
                for n in range(3):
                    state = LeadState(lead_id="l1", card=ScoreCard(lead_id="l1", last_key=f"k{n}"))
                    storage.put_state(state)
                    state.card.last_key = "changed after put_state"
                    got = storage.get_state("l1")
                    assert got is not None and got.card.last_key == f"k{n}"
                assert other.get_state("l1") is None
            got = other.get_state("l1")
            assert got is not None and got.card.last_key == "k2"
            assert query(db, "SELECT count(*) FROM states") == [(1,)]
            other.close()

    def test_a_state_put_outside_a_transaction_is_written_at_once(self, db: Path) -> None:
        with SQLiteStorage(db) as storage, SQLiteStorage(db) as other:
            storage.put_state(LeadState(lead_id="l1", card=ScoreCard(lead_id="l1", last_key="k")))
            got = other.get_state("l1")
            assert got is not None and got.card.last_key == "k"

    def test_without_a_cache_nothing_is_kept(self, db: Path) -> None:
        with SQLiteStorage(db, cache_size=0) as storage, storage.transaction():
            for n in range(20):
                storage.put_lead(make_lead(f"l{n}"))
                storage.add_activity(make_activity(f"l{n}"))
                storage.put_enrollment(make_enrollment(1, lead_id=f"l{n}"))
                assert len(storage.activities(f"l{n}")) == 1
                assert len(storage.enrollments_of(f"l{n}")) == 1
                assert storage.get_lead(f"l{n}") == make_lead(f"l{n}")
            assert len(storage._cache) == 0
            assert storage._cache.weight == 0
            assert not storage._cache._owner

    def test_a_bad_cache_size_is_refused(self, db: Path) -> None:
        for bad in (-1, 1.5, "10", True):
            with pytest.raises(StorageError, match="cache_size"):
                SQLiteStorage(db, cache_size=bad)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ stored form


class TestStoredForm:
    def test_activity_times_are_stored_as_microseconds_since_1970_utc(self, db: Path) -> None:
        with SQLiteStorage(db) as storage:
            # 09:30 in Tokyo is 00:30 UTC: earlier than 01:00 UTC although "09" > "01".
            storage.add_activity(
                Activity(lead_id="l1", kind="page_view", at=datetime(2026, 4, 1, 9, 30, tzinfo=JST))
            )
            storage.add_activity(Activity(lead_id="l1", kind="email_open", at=T0.replace(hour=1)))
            assert [a.kind for a in storage.activities("l1")] == ["page_view", "email_open"]
        assert query(db, "SELECT at FROM activities ORDER BY seq") == [
            (1775003400000000,),  # 2026-04-01T00:30:00Z
            (1775005200000000,),
        ]

    def test_iterators_page_through_everything_once(
        self, db: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr("nurturekit.storage.sqlite_file._PAGE", 3)
        with SQLiteStorage(db) as storage, storage.transaction():
            for n in range(10):
                storage.put_lead(make_lead(f"l{n}"))
                storage.add_activity(make_activity(f"l{n}", kind="email_open"))
                storage.add_activity(make_activity(f"l{n}", kind="email_click"))
                storage.put_enrollment(make_enrollment(n, scenario="a" if n % 2 else "b"))
                storage.add_to_outbox(make_mail(f"k{n}"))
            assert sorted(lead.id for lead in storage.leads()) == sorted(f"l{n}" for n in range(10))
            kinds = list(storage.activities_of_kinds(["email_open", "email_click", "email_open"]))
            assert len(kinds) == 20 and len({a.key for a in kinds}) == 20
            assert len(list(storage.enrollments())) == 10
            assert len(list(storage.enrollments("a"))) == 5
            assert [e.mail.key for e in storage.outbox()] == [f"k{n}" for n in range(10)]

    def test_claiming_uses_the_due_index(self, db: Path) -> None:
        with SQLiteStorage(db) as storage:
            plan = storage._conn.execute(
                "EXPLAIN QUERY PLAN " + sqlite_sql.DUE, {"now": "x", "limit": 1}
            ).fetchall()
        (row,) = plan
        assert "USING INDEX enrollments_due" in row[3]

    @pytest.mark.parametrize(
        ("sql", "params", "index"),
        [
            (sqlite_sql.BREACHES, ("x", 1), "handoffs_breaches"),
            (sqlite_sql.AWAITING_NOTICE, (1,), "handoffs_notices"),
            (sqlite_sql.HANDOFFS_OF_LEAD, ("l1",), "handoffs_by_lead"),
        ],
    )
    def test_handoff_queries_use_their_index(
        self, db: Path, sql: str, params: tuple[Any, ...], index: str
    ) -> None:
        with SQLiteStorage(db) as storage:
            plan = storage._conn.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall()
        (row,) = plan
        assert f"USING INDEX {index}" in row[3]
        assert "TEMP B-TREE" not in row[3]

    def test_handoff_times_are_stored_as_fixed_width_utc_text(self, db: Path) -> None:
        at = datetime(2026, 4, 1, 9, 30, tzinfo=JST)
        with SQLiteStorage(db) as storage:
            storage.put_handoff(make_handoff(at=at, deadline=at + timedelta(hours=4)))
        assert query(db, "SELECT at, deadline, notified_at FROM handoffs") == [
            ("2026-04-01T00:30:00.000000+00:00", "2026-04-01T04:30:00.000000+00:00", None)
        ]


# ------------------------------------------------------------------------------ the engine


def play(world: World) -> list[Any]:
    """A few leads through seed 001's scenarios; what the stores hold at the end."""
    for n in range(3):
        world.lead(f"l{n}")
    world.did("download", "l0", type="whitepaper", asset="DX")
    world.did("seminar_registered", "l1")
    world.did("download", "l2", type="whitepaper")
    world.engine.run_due()
    world.advance(days=1)
    world.did("seminar_attended", "l1")
    world.advance(days=3)
    world.did("meeting_booked", "l2")
    world.advance(days=5)
    world.engine.record_many(
        [
            Activity(lead_id="l0", kind="page_view", at=world.clock.now(), properties={"n": n})
            for n in range(20)
        ]
    )
    world.advance(days=10)
    storage = world.storage
    return [
        world.sent(),
        [
            (lead, [(e.id, e.status, e.step, e.due_at) for e in storage.enrollments_of(lead)])
            for lead in ("l0", "l1", "l2")
        ],
        sorted((e.mail.key, e.status, e.attempts) for e in storage.outbox()),
        [len(storage.activities(lead)) for lead in ("l0", "l1", "l2")],
        [summary(storage.get_state(lead)) for lead in ("l0", "l1", "l2")],
    ]


def summary(state: LeadState | None) -> tuple[Any, ...]:
    assert state is not None
    card = state.card
    moves = [(m.source, m.target, m.at) for m in state.moves]
    return card.fit_total, card.engagement_points, len(card.entries), moves, state.levels


def test_the_engine_on_sqlite_does_what_it_does_in_memory(db: Path) -> None:
    in_memory = World()
    on_sqlite = World()
    assert isinstance(on_sqlite.storage, InMemoryStorage)
    on_sqlite.storage = SQLiteStorage(db)  # type: ignore[assignment]
    on_sqlite.engine = Engine(
        program(),
        on_sqlite.storage,
        on_sqlite.mailer,
        links=on_sqlite.links,
        clock=on_sqlite.clock,
    )
    expected = play(in_memory)
    assert expected[0]  # the script does send mail
    assert play(on_sqlite) == expected
    (enrollment,) = on_sqlite.storage.enrollments_of("l2")
    assert enrollment.status is EnrollmentStatus.CONVERTED


# ------------------------------------------------------------------------------ processes


def wait_for(path: Path, child: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if child.poll() is not None:
            raise AssertionError(f"the child exited ({child.returncode}) before {path.name}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} did not appear in {timeout}s")
        time.sleep(0.001)


def python(script: str, *args: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
        stderr=subprocess.PIPE,
    )


CLAIMER = """
    import sys, time
    from datetime import datetime, timedelta
    from pathlib import Path
    from nurturekit.storage.sqlite import SQLiteStorage

    db, name, now, ready, go, out = sys.argv[1:]
    storage = SQLiteStorage(db)
    Path(ready).touch()
    while not Path(go).exists():
        time.sleep(0.0005)
    got = []
    while batch := storage.claim_due(datetime.fromisoformat(now), 50, name, timedelta(hours=1)):
        got.extend(e.id for e in batch)
        time.sleep(0.005)  # the worker runs the steps it claimed
    storage.close()
    Path(out).write_text("\\n".join(got))
"""


def test_two_processes_claiming_at_once_never_get_the_same_enrolment(tmp_path: Path) -> None:
    db = tmp_path / "nk.db"
    with SQLiteStorage(db) as storage, storage.transaction():
        for n in range(2000):
            storage.put_enrollment(make_enrollment(n, lead_id=f"l{n % 97}", due=T0))
    go = tmp_path / "go"
    children = []
    for name in ("w1", "w2"):
        child = python(
            CLAIMER, db, name, T0.isoformat(), tmp_path / f"{name}.ready", go, tmp_path / name
        )
        children.append(child)
    for name, child in zip(("w1", "w2"), children, strict=True):
        wait_for(tmp_path / f"{name}.ready", child)
    go.touch()
    for child in children:
        _, errors = child.communicate(timeout=120)
        assert child.returncode == 0, errors.decode()
    one = (tmp_path / "w1").read_text().split()
    two = (tmp_path / "w2").read_text().split()
    assert len(one) == len(set(one)) and len(two) == len(set(two))
    assert not set(one) & set(two)
    assert set(one) | set(two) == {make_enrollment(n, lead_id=f"l{n % 97}").id for n in range(2000)}
    assert one and two  # both really claimed: the claims ran side by side


BATCH = """
    import sys, time
    from datetime import datetime, timedelta, timezone
    from pathlib import Path
    from nurturekit import Activity
    from nurturekit.storage.sqlite import SQLiteStorage

    db, round_, signal_at, inside = sys.argv[1:]
    storage = SQLiteStorage(db)
    start = datetime(2026, 4, 1, tzinfo=timezone.utc)
    filler = "x" * 600  # 5,000 of these outgrow the page cache: the batch spills into the WAL
    with storage.transaction():
        for n in range(5000):
            storage.add_activity(
                Activity(
                    lead_id=f"lead-{n % 50}",
                    kind="page_view",
                    at=start + timedelta(seconds=n),
                    properties={"round": int(round_), "n": n, "filler": filler},
                )
            )
            if n == int(signal_at):
                Path(inside).touch()
    if int(signal_at) >= 5000:  # killed after the commit: the batch must be there
        Path(inside).touch()
        time.sleep(60)
"""


def test_kill_9_during_a_batch_leaves_all_of_it_or_none(tmp_path: Path) -> None:
    db = tmp_path / "nk.db"
    SQLiteStorage(db).close()
    stored = 0
    # Three kills mid-batch (the last two with part of the batch already in the WAL), then one
    # just after the commit.
    for round_, signal_at in enumerate((200, 2500, 4900, 5000)):
        inside = tmp_path / f"inside-{round_}"
        child = python(BATCH, db, round_, signal_at, inside)
        wait_for(inside, child)
        time.sleep(random.uniform(0, 0.02))
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        ((count,),) = query(db, "SELECT count(*) FROM activities")
        assert count in (stored, stored + 5000), (round_, count)
        if signal_at == 5000:
            assert count == stored + 5000
        stored = count
        assert query(db, "PRAGMA integrity_check") == [("ok",)]
        with SQLiteStorage(db) as storage:
            assert len(list(storage.activities_of_kinds(["page_view"]))) == stored


STATES = """
    import sys, time
    from datetime import datetime, timedelta, timezone
    from pathlib import Path
    from nurturekit import Activity
    from nurturekit.ports import LeadState, Storage
    from nurturekit.scoring import Contribution, ScoreCard
    from nurturekit.storage import sqlite

    db, stop, inside = sys.argv[1:]
    storage = sqlite.SQLiteStorage(db)
    real = storage._conn

    class Stopping:  # the store's connection, stopped half-way through the states' rows
        def __getattr__(self, name):
            return getattr(real, name)

        def executemany(self, sql, rows):
            # The batch's states are written just before COMMIT, their items first and their
            # rows last: stop in the middle of the rows.
            rows = list(rows)
            if stop == "1" and sql.startswith("INSERT INTO states "):
                real.executemany(sql, rows[: len(rows) // 2])
                Path(inside).touch()
                time.sleep(60)
            return real.executemany(sql, rows)

    storage._conn = Stopping()
    start = datetime(2026, 4, 1, tzinfo=timezone.utc)
    with storage.transaction():
        for n in range(1000):
            lead = f"lead-{n}"
            storage.add_activity(Activity(lead_id=lead, kind="page_view", at=start))
            line = Contribution("visit", "engagement", 1, 1, start, f"k{n}", "page_view")
            card = ScoreCard(
                lead_id=lead, seen={f"k{n}"}, last_key=f"k{n}", entries=[line], times=[start]
            )
            storage.put_state(LeadState(lead_id=lead, card=card))
    Path(inside).touch()
"""


def test_kill_9_while_a_batch_writes_its_states_leaves_none_of_it(tmp_path: Path) -> None:
    db = tmp_path / "nk.db"
    SQLiteStorage(db).close()
    inside = tmp_path / "inside"
    child = python(STATES, db, 1, inside)
    wait_for(inside, child)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    for table in ("activities", "states", "state_lines", "state_times", "state_seen"):
        assert query(db, f"SELECT count(*) FROM {table}") == [(0,)], table
    inside.unlink()
    child = python(STATES, db, 0, inside)  # not stopped: the whole batch is written
    _, errors = child.communicate(timeout=60)
    assert child.returncode == 0, errors.decode()
    for table in ("activities", "states", "state_lines", "state_times", "state_seen"):
        assert query(db, f"SELECT count(*) FROM {table}") == [(1000,)], table
    with SQLiteStorage(db) as storage:
        state = storage.get_state("lead-999")
        assert state is not None and state.card.seen == {"k999"}
        assert [line.activity_key for line in state.card.entries] == ["k999"]


ROTATOR = """
    import sys, time
    from pathlib import Path
    from nurturekit.storage.sqlite import SQLiteStorage

    db, ready, go, out = sys.argv[1:]
    storage = SQLiteStorage(db)
    Path(ready).touch()
    while not Path(go).exists():
        time.sleep(0.0005)
    got = [storage.next_in_rotation("sales", 1000) for _ in range(50)]
    storage.close()
    Path(out).write_text(" ".join(map(str, got)))
"""


def test_two_processes_moving_one_rotation_at_once_each_get_their_own_positions(
    tmp_path: Path,
) -> None:
    db = tmp_path / "nk.db"
    SQLiteStorage(db).close()
    go = tmp_path / "go"
    children = [
        python(ROTATOR, db, tmp_path / f"{name}.ready", go, tmp_path / name)
        for name in ("r1", "r2")
    ]
    for name, child in zip(("r1", "r2"), children, strict=True):
        wait_for(tmp_path / f"{name}.ready", child)
    go.touch()
    for child in children:
        _, errors = child.communicate(timeout=120)
        assert child.returncode == 0, errors.decode()
    got = [[int(n) for n in (tmp_path / name).read_text().split()] for name in ("r1", "r2")]
    assert all(mine == sorted(mine) for mine in got)  # each process sees the rotation advance
    assert sorted(got[0] + got[1]) == list(range(100))
    with SQLiteStorage(db) as storage:
        assert storage.next_in_rotation("sales", 1000) == 100


def test_stored_times_have_one_form(tmp_path: Path) -> None:
    with SQLiteStorage(tmp_path / "nk.db") as storage:
        for n, at in enumerate([T0, T0.replace(microsecond=7), T0.astimezone(JST)]):
            storage.add_activity(Activity(lead_id=f"l{n}", kind="page_view", at=at))
        storage.put_enrollment(make_enrollment(1))
    rows = query(tmp_path / "nk.db", "SELECT at FROM activities ORDER BY seq")
    assert rows == [(1775034000000000,), (1775034000000007,), (1775034000000000,)]
    # The other tables' times: fixed-width UTC text.
    assert query(tmp_path / "nk.db", "SELECT entered_at FROM enrollments") == [
        (stamp(make_enrollment(1).entered_at, "test"),)
    ]


def test_a_new_file_has_large_pages_and_an_old_one_keeps_its_own(tmp_path: Path) -> None:
    SQLiteStorage(tmp_path / "new.db").close()
    assert query(tmp_path / "new.db", "PRAGMA page_size") == [(16384,)]
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old)
    conn.execute("PRAGMA page_size = 4096")
    conn.execute("VACUUM")
    conn.close()
    with SQLiteStorage(old) as storage:
        storage.add_activity(Activity(lead_id="l1", kind="page_view", at=T0))
    assert query(old, "PRAGMA page_size") == [(4096,)]


def test_batch_reads_of_many_leads_read_them_a_few_hundred_a_query_and_cache_none(
    tmp_path: Path,
) -> None:
    from nurturekit import Lead

    with SQLiteStorage(tmp_path / "nk.db") as storage:
        with storage.transaction():
            for n in range(1203):
                storage.put_lead(Lead(id=f"l{n}", email=f"l{n}@example.co.jp"))
            storage.put_state(LeadState(lead_id="l7", card=ScoreCard(lead_id="l7")))
        storage._cache.clear()
        ids = [f"l{n}" for n in range(1210)]  # seven of them are not stored
        leads = storage.get_leads(reversed(ids))
        assert list(leads) == [f"l{n}" for n in reversed(range(1203))]
        assert leads["l5"].email == "l5@example.co.jp"
        states = storage.get_states(ids)
        assert list(states) == ["l7"] and states["l7"].lead_id == "l7"
        assert len(storage._cache) == 1  # only the state read whole, as get_state caches it
        with storage.transaction():  # what the transaction wrote is what it reads
            storage.put_lead(Lead(id="l9", email="new@example.co.jp"))
            assert storage.get_leads(["l9", "l10"])["l9"].email == "new@example.co.jp"
            state = LeadState(lead_id="l10", card=ScoreCard(lead_id="l10"))
            storage.put_state(state)
            assert list(storage.get_states(["l10", "l11"])) == ["l10"]
        assert storage.get_leads([]) == {} and storage.get_states([]) == {}


def test_a_state_lent_and_not_put_back_leaves_no_empty_cache_entry(tmp_path: Path) -> None:
    """``run_due`` reads the states of a batch's leads and puts few back: a lead whose cache
    entry held only that state is forgotten at the end of the transaction, so sending to many
    leads does not fill the cache with empty entries; one that holds more keeps the rest."""
    from nurturekit import Lead

    with SQLiteStorage(tmp_path / "nk.db") as storage:
        with storage.transaction():
            for lead_id in ("l1", "l2"):
                storage.put_lead(Lead(id=lead_id, email=f"{lead_id}@example.co.jp"))
                storage.put_state(LeadState(lead_id=lead_id, card=ScoreCard(lead_id=lead_id)))
        storage._cache.clear()
        assert storage.get_lead("l2") is not None  # l2's entry holds its lead too
        with storage.transaction():
            assert set(storage.get_states(["l1", "l2"])) == {"l1", "l2"}
        assert storage._cache.get("l1") is None
        kept = storage._cache.get("l2")
        assert kept is not None and kept.has_lead and not kept.has_state
        state = storage.get_state("l1")  # read again from the file
        assert state is not None and state.lead_id == "l1"
