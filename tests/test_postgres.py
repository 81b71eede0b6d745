"""The PostgreSQL store: the storage contract, claims under real concurrency (two connections in
threads, two worker processes), leases, migrations and the psycopg import boundary.

The database tests need ``NURTUREKIT_TEST_POSTGRES_DSN`` (see ``conftest.py``). Each works in a
schema of its own, dropped afterwards, and names its connections after that schema, so that a
connection left open is seen and fails the test.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import pytest

from nurturekit.errors import StorageError
from nurturekit.lead import Contactability, ContactStatus, Lead
from nurturekit.messages import SendStatus
from nurturekit.ports import LeadState, Storage
from nurturekit.scoring import ScoreCard
from nurturekit.storage import postgres_sql as q
from nurturekit.storage.codec import lead_to_json, state_to_json
from nurturekit.storage.postgres import PostgresStorage
from nurturekit.storage.postgres_sql import SCHEMA_VERSION
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


def _admin(postgres_dsn: str, query: str, params: Any = ()) -> list[tuple[Any, ...]]:
    """Run one statement on a connection of the test's own (not a store's)."""
    import psycopg

    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def _connections(postgres_dsn: str, name: str) -> int:
    rows = _admin(
        postgres_dsn,
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
        (name,),
    )
    return int(rows[0][0])


@pytest.fixture
def dsn(postgres_dsn: str, pg_schema: str) -> Iterator[str]:
    """The test database, with connections named after the test's schema; afterwards, none of
    them may still be open (a closed connection leaves pg_stat_activity within moments)."""
    from psycopg.conninfo import make_conninfo

    yield make_conninfo(postgres_dsn, application_name=pg_schema)
    deadline = time.monotonic() + 5
    while _connections(postgres_dsn, pg_schema) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _connections(postgres_dsn, pg_schema) == 0, "a connection was left open"


@pytest.fixture
def store(dsn: str, pg_schema: str) -> Iterator[PostgresStorage]:
    with PostgresStorage(dsn, schema=pg_schema) as storage:
        yield storage


def _seed_due(store: PostgresStorage, count: int) -> set[str]:
    """``count`` enrolments, all due at T0; returns their ids."""
    with store.transaction():
        for number in range(1, count + 1):
            store.put_enrollment(make_enrollment(number, due=T0))
    return {make_enrollment(number).id for number in range(1, count + 1)}


def _tables(postgres_dsn: str, schema: str) -> list[str]:
    rows = _admin(
        postgres_dsn,
        "SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename",
        (schema,),
    )
    return [row[0] for row in rows]


# --------------------------------------------------------------------------- the contract


class TestPostgresContract(StorageContract):
    @pytest.fixture
    def storage(self, dsn: str, pg_schema: str) -> Iterator[PostgresStorage]:
        store = PostgresStorage(dsn, schema=pg_schema)
        self.dsn = dsn
        yield store
        store.close()

    def open_again(self, storage: Storage) -> Storage:
        assert isinstance(storage, PostgresStorage)
        return PostgresStorage(self.dsn, schema=storage.schema)


# --------------------------------------------------------------------------- claims


def _claim_in_threads(
    stores: list[PostgresStorage], claim: Callable[[PostgresStorage, str], list[list[str]]]
) -> list[list[list[str]]]:
    """Run ``claim(store, worker)`` for every store in its own thread, all released at once."""
    start = threading.Barrier(len(stores))

    def work(index: int) -> list[list[str]]:
        start.wait()
        return claim(stores[index], f"w{index}")

    with ThreadPoolExecutor(len(stores)) as pool:
        return list(pool.map(work, range(len(stores))))


def test_two_workers_claiming_in_batches_at_the_same_instant_never_share_an_enrolment(
    store: PostgresStorage, dsn: str, pg_schema: str
) -> None:
    due = _seed_due(store, 1000)

    def until_empty(worker_store: PostgresStorage, worker: str) -> list[list[str]]:
        batches = []
        while claimed := worker_store.claim_due(T0, 25, worker, LEASE):
            batches.append([e.id for e in claimed])
        return batches

    with PostgresStorage(dsn, schema=pg_schema) as other:
        results = _claim_in_threads([store, other], until_empty)
    per_worker = [[eid for batch in batches for eid in batch] for batches in results]
    assert all(len(batch) <= 25 for batches in results for batch in batches)
    assert not set(per_worker[0]) & set(per_worker[1])
    assert sorted(per_worker[0] + per_worker[1]) == sorted(due)


def test_two_workers_each_claiming_most_of_the_due_work_at_once_split_it(
    store: PostgresStorage, dsn: str, pg_schema: str
) -> None:
    due = _seed_due(store, 1000)

    def once(worker_store: PostgresStorage, worker: str) -> list[list[str]]:
        return [[e.id for e in worker_store.claim_due(T0, 600, worker, LEASE)]]

    with PostgresStorage(dsn, schema=pg_schema) as other:
        ((first,), (second,)) = _claim_in_threads([store, other], once)
    assert len(first) <= 600 and len(second) <= 600
    assert not set(first) & set(second)
    assert set(first) | set(second) == due


def test_a_claim_is_not_returned_again_while_its_lease_lives(
    store: PostgresStorage, dsn: str, pg_schema: str
) -> None:
    _seed_due(store, 3)
    assert len(store.claim_due(T0, 10, "w1", LEASE)) == 3
    with PostgresStorage(dsn, schema=pg_schema) as other:
        for at in (T0, T0 + LEASE / 2, T0 + LEASE - timedelta(microseconds=1)):
            assert other.claim_due(at, 10, "w2", LEASE) == []
            assert store.claim_due(at, 10, "w1", LEASE) == []


def test_an_expired_lease_is_taken_over_by_another_worker(
    store: PostgresStorage, dsn: str, pg_schema: str
) -> None:
    (eid,) = _seed_due(store, 1)
    assert [e.id for e in store.claim_due(T0, 10, "w1", LEASE)] == [eid]
    with PostgresStorage(dsn, schema=pg_schema) as other:
        assert [e.id for e in other.claim_due(T0 + LEASE, 10, "w2", LEASE)] == [eid]
        # The first worker comes back from a long pause: the enrolment is no longer its own.
        assert store.renew_lease(eid, "w1", T0 + 2 * LEASE) is False
        assert other.renew_lease(eid, "w2", T0 + 3 * LEASE) is True
        assert store.claim_due(T0 + 2 * LEASE, 10, "w1", LEASE) == []
        assert [e.id for e in store.claim_due(T0 + 3 * LEASE, 10, "w1", LEASE)] == [eid]


def test_a_renewed_lease_keeps_the_claim_past_its_first_expiry(store: PostgresStorage) -> None:
    (eid,) = _seed_due(store, 1)
    store.claim_due(T0, 10, "w1", LEASE)
    assert store.renew_lease(eid, "w1", T0 + 4 * LEASE) is True
    assert store.claim_due(T0 + 2 * LEASE, 10, "w2", LEASE) == []
    assert [e.id for e in store.claim_due(T0 + 4 * LEASE, 10, "w2", LEASE)] == [eid]


def test_putting_an_enrolment_back_ends_the_claim(store: PostgresStorage) -> None:
    (eid,) = _seed_due(store, 1)
    (claimed,) = store.claim_due(T0, 10, "w1", LEASE)
    store.put_enrollment(attrs.evolve(claimed, step="case", attempt=2))
    assert store.renew_lease(eid, "w1", T0 + LEASE) is False
    (again,) = store.claim_due(T0, 10, "w2", LEASE)
    assert (again.step, again.attempt) == ("case", 2)


def test_a_stopping_worker_releases_its_claims_for_the_others_at_once(
    store: PostgresStorage,
) -> None:
    due = _seed_due(store, 5)
    store.claim_due(T0, 3, "w1", LEASE)
    store.claim_due(T0, 1, "w2", LEASE)
    assert store.release_claims("w1") == 3
    assert store.release_claims("w1") == 0
    assert len(store.claim_due(T0, 10, "w3", LEASE)) == 4
    assert {e.id for e in store.enrollments()} == due


_CLAIMER = textwrap.dedent(
    """
    import json, sys
    from datetime import datetime, timedelta
    from nurturekit.storage.postgres import PostgresStorage

    dsn, schema, worker, now = sys.argv[1:5]
    now = datetime.fromisoformat(now)
    with PostgresStorage(dsn, schema=schema) as store:
        print("ready", flush=True)
        sys.stdin.readline()
        batches = []
        while claimed := store.claim_due(now, 50, worker, timedelta(hours=1)):
            batches.append([e.id for e in claimed])
    print(json.dumps(batches), flush=True)
    """
)


def test_two_worker_processes_claim_5000_due_enrolments_without_overlap_or_loss(
    store: PostgresStorage, dsn: str, pg_schema: str, postgres_dsn: str
) -> None:
    due = _seed_due(store, 5000)
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _CLAIMER, dsn, pg_schema, f"p{n}", T0.isoformat()],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in (1, 2)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        for worker in workers:  # both start claiming together
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        outputs = [worker.communicate(timeout=120)[0] for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert [worker.returncode for worker in workers] == [0, 0]
    batches = [json.loads(output) for output in outputs]
    claimed = [[eid for batch in mine for eid in batch] for mine in batches]
    assert all(0 < len(batch) <= 50 for mine in batches for batch in mine)
    assert all(claimed), "both processes claimed work"
    assert not set(claimed[0]) & set(claimed[1])
    assert sorted(claimed[0] + claimed[1]) == sorted(due)
    owners = dict(_admin(postgres_dsn, f'SELECT id, claimed_by FROM "{pg_schema}".enrollments'))
    assert all(owners[eid] == "p1" for eid in claimed[0])
    assert all(owners[eid] == "p2" for eid in claimed[1])


# --------------------------------------------------------------------------- rotations


def test_two_workers_moving_one_rotation_at_once_each_get_their_own_positions(
    store: PostgresStorage, dsn: str, pg_schema: str
) -> None:
    start = threading.Barrier(2)

    def rotate(worker_store: PostgresStorage) -> list[int]:
        start.wait()
        return [worker_store.next_in_rotation("sales", 1000) for _ in range(50)]

    with PostgresStorage(dsn, schema=pg_schema) as other, ThreadPoolExecutor(2) as pool:
        first, second = pool.map(rotate, [store, other])
    assert first == sorted(first) and second == sorted(second)
    assert sorted(first + second) == list(range(100))
    assert store.next_in_rotation("sales", 1000) == 100


def test_a_rotation_step_inside_a_transaction_holds_other_workers_until_it_ends(
    store: PostgresStorage, dsn: str, pg_schema: str
) -> None:
    store.next_in_rotation("sales", 3)
    with PostgresStorage(dsn, schema=pg_schema) as other, ThreadPoolExecutor(1) as pool:
        with store.transaction():
            assert store.next_in_rotation("sales", 3) == 1
            waiting = pool.submit(other.next_in_rotation, "sales", 3)
            time.sleep(0.2)
            assert not waiting.done()  # the row is locked until the transaction ends
        assert waiting.result(timeout=10) == 2


# --------------------------------------------------------------------------- transactions


def test_writes_in_an_open_transaction_are_not_seen_by_another_worker_until_commit(
    store: PostgresStorage, dsn: str, pg_schema: str
) -> None:
    with PostgresStorage(dsn, schema=pg_schema) as other:
        with store.transaction():
            store.put_lead(make_lead())
            store.add_to_outbox(make_mail())
            assert other.get_lead("l1") is None
            assert other.pending_mail(10) == []
        assert other.get_lead("l1") == make_lead()
        assert [m.key for m in other.pending_mail(10)] == ["k1"]


def test_a_statement_that_failed_inside_a_transaction_fails_the_transaction(
    store: PostgresStorage,
) -> None:
    failed = pytest.raises(StorageError, match="rolled the whole transaction back")
    with failed, store.transaction():
        store.put_lead(make_lead())
        # The caller swallows the error, but PostgreSQL has given up the transaction.
        with contextlib.suppress(Exception):
            store._connection().execute("SELECT 1 / 0")
    assert store.get_lead("l1") is None
    store.put_lead(make_lead())  # the store goes on working
    assert store.get_lead("l1") is not None


def test_a_statement_that_failed_inside_a_savepoint_undoes_only_the_savepoint(
    store: PostgresStorage,
) -> None:
    with store.transaction():
        store.put_lead(make_lead("l1"))
        with pytest.raises(StorageError, match="could not divide"), store.savepoint():
            store.put_lead(make_lead("l2"))
            store._all("divide", "SELECT 1 / 0")
        store.put_lead(make_lead("l3"))  # the transaction goes on
    assert sorted(lead.id for lead in store.leads()) == ["l1", "l3"]


# --------------------------------------------------------------------------- writes not waited for


def _refuse_lead(postgres_dsn: str, schema: str, lead_id: str) -> None:
    """Make PostgreSQL itself refuse to store the lead ``lead_id`` (a check constraint)."""
    _admin(postgres_dsn, f"""ALTER TABLE "{schema}".leads ADD CHECK (id <> '{lead_id}')""")


def test_a_write_sent_without_waiting_that_fails_fails_its_transaction_at_commit(
    store: PostgresStorage, postgres_dsn: str, pg_schema: str
) -> None:
    _refuse_lead(postgres_dsn, pg_schema, "bad")
    with pytest.raises(StorageError, match="could not store lead"), store.transaction():
        store.put_lead(make_lead("l1"))
        store.put_lead(make_lead("bad"))  # sent in pipeline mode: its error comes later
        store.put_leads([make_lead("l2")])
    assert list(store.leads()) == []
    store.put_lead(make_lead("l3"))  # the store goes on working
    assert [lead.id for lead in store.leads()] == ["l3"]


def test_a_write_sent_without_waiting_that_fails_fails_the_next_statement(
    store: PostgresStorage, postgres_dsn: str, pg_schema: str
) -> None:
    _refuse_lead(postgres_dsn, pg_schema, "bad")
    with pytest.raises(StorageError, match="could not store lead"), store.transaction():
        store.put_leads([make_lead("bad")])
        store.get_lead("l1")
        pytest.fail("the read ran after the failed write")  # pragma: no cover
    assert list(store.leads()) == []


def test_a_write_sent_without_waiting_that_fails_inside_a_savepoint_undoes_only_it(
    store: PostgresStorage, postgres_dsn: str, pg_schema: str
) -> None:
    _refuse_lead(postgres_dsn, pg_schema, "bad")
    with store.transaction():
        store.put_lead(make_lead("l1"))
        with pytest.raises(StorageError, match="could not store lead"), store.savepoint():
            store.put_lead(make_lead("l2"))
            store.put_lead(make_lead("bad"))
        store.put_lead(make_lead("l3"))
    assert [lead.id for lead in store.leads()] == ["l1", "l3"]


def test_without_pipeline_mode_in_the_libpq_every_write_is_waited_for(
    store: PostgresStorage, postgres_dsn: str, pg_schema: str
) -> None:
    store._pipelines = False  # a libpq before 14
    _refuse_lead(postgres_dsn, pg_schema, "bad")
    with pytest.raises(StorageError, match="could not store lead"), store.transaction():
        store.put_lead(make_lead("l1"))
        store.put_lead(make_lead("bad"))
        pytest.fail("the failed write did not raise")  # pragma: no cover
    with store.transaction():
        store.put_leads([make_lead("l1")])
        store.put_states([LeadState(lead_id="l1", card=ScoreCard(lead_id="l1"))] * 250)
    assert [lead.id for lead in store.leads()] == ["l1"] and store.get_state("l1") is not None


def test_an_error_after_writes_sent_without_waiting_undoes_them(store: PostgresStorage) -> None:
    with pytest.raises(RuntimeError, match="boom"), store.transaction():
        store.put_leads([make_lead(f"l{n}") for n in range(5)])
        store.put_enrollment(make_enrollment(1))
        raise RuntimeError("boom")
    assert list(store.leads()) == [] and store.enrollments_of("l1") == []


def test_states_put_in_a_transaction_are_written_ahead_and_the_last_of_a_lead_wins(
    store: PostgresStorage,
) -> None:
    """More states than ``_STATES_AHEAD``: most are written while the transaction goes on,
    each read back as last put, before and after the commit."""
    from nurturekit.storage.postgres import _STATES_AHEAD

    count = 2 * _STATES_AHEAD + 7

    def state(n: int, points: int) -> LeadState:
        return LeadState(lead_id=f"l{n}", card=ScoreCard(lead_id=f"l{n}", fit_total=points))

    def points() -> dict[str, int]:
        found = store.get_states(f"l{n}" for n in range(count))
        return {lead_id: state.card.fit_total for lead_id, state in found.items()}

    expected = {f"l{n}": 1 if n % 3 else 2 for n in range(count)}
    with store.transaction():
        store.put_states([state(n, 1) for n in range(count)])
        for n in range(0, count, 3):
            store.put_state(state(n, 2))
        got = store.get_state("l0"), store.get_state("l1")
        assert [s.card.fit_total for s in got if s is not None] == [2, 1]
        assert points() == expected
    assert points() == expected
    with pytest.raises(RuntimeError), store.transaction():
        store.put_states([state(n, 3) for n in range(count)])
        raise RuntimeError("undo")
    assert points() == expected


def test_the_session_compiles_no_plan(store: PostgresStorage) -> None:
    """JIT off: a badly estimated batch read would otherwise compile at every execution."""
    assert store._all("show jit", "SHOW jit") == [("off",)]


def test_batch_reads_can_use_the_primary_keys(store: PostgresStorage) -> None:
    """The ids are compared in the columns' collation ("C"), so the index serves them."""
    with store.transaction():
        store._run_write("plan", "SET LOCAL enable_seqscan = off", ())
        for text in (q.GET_LEADS, q.GET_STATES):
            plan = store._all("explain", f"EXPLAIN {text}", (["l1", "l2"],))
            assert "Seq Scan" not in " ".join(row[0] for row in plan), plan


def test_a_broken_connection_is_replaced_on_the_next_call(
    store: PostgresStorage, postgres_dsn: str, pg_schema: str
) -> None:
    store.put_lead(make_lead())
    _admin(
        postgres_dsn,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
        (pg_schema,),
    )
    with pytest.raises(StorageError, match="could not read lead"):
        store.get_lead("l1")
    assert store.get_lead("l1") == make_lead()


# --------------------------------------------------------------------------- values


def test_times_come_back_as_utc_whatever_zone_they_went_in(store: PostgresStorage) -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    store.add_to_outbox(make_mail())
    at = datetime(2026, 4, 1, 18, 30, tzinfo=tokyo)
    store.mark_sent("k1", SendStatus.SENT, "250 ok", at)
    (entry,) = store.outbox()
    assert entry.updated_at == at and entry.updated_at.tzinfo is timezone.utc
    (sent,) = store.marketing_sends_since("l1", T0.astimezone(tokyo))
    assert sent == T0 and sent.tzinfo is timezone.utc


def test_bodies_come_back_exactly_even_where_jsonb_would_not(store: PostgresStorage) -> None:
    activity = make_activity(note="a\x00b", big=1e20, small=1e-7)
    assert store.add_activity(activity)
    (back,) = store.activities("l1")
    assert back == activity
    assert type(back.properties["big"]) is float


def test_iterating_methods_read_page_by_page_and_miss_nothing(
    store: PostgresStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("nurturekit.storage.postgres._PAGE", 3)
    with store.transaction():
        for n in range(10):
            store.put_lead(make_lead(f"l{n}"))
            store.put_enrollment(make_enrollment(n + 1, scenario="a" if n % 2 else "b"))
            store.add_to_outbox(make_mail(f"k{n}"))
            store.add_activity(make_activity(minutes=n, kind="email_open" if n % 2 else "x"))
    assert sorted(lead.id for lead in store.leads()) == sorted(f"l{n}" for n in range(10))
    assert len(list(store.enrollments())) == 10
    assert len(list(store.enrollments("a"))) == 5
    assert len(list(store.outbox())) == 10
    assert len(list(store.activities_of_kinds(["email_open", "x", "email_open"]))) == 10


def test_activities_of_kinds_read_page_by_page_even_at_one_time(
    store: PostgresStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pages follow (time, key): activities at one time span pages whole."""
    monkeypatch.setattr("nurturekit.storage.postgres._PAGE", 3)
    added = [
        make_activity(f"l{n % 3}", minutes=n // 4, kind="email_open", ref=str(n)) for n in range(11)
    ]
    added += [make_activity("l1", minutes=1, kind="page_view")]
    for activity in added:
        assert store.add_activity(activity)
    found = list(store.activities_of_kinds(["email_open"]))
    assert sorted(a.key for a in found) == sorted(a.key for a in added[:11])


def test_a_send_marked_on_its_own_commits_without_waiting_for_the_log_flush(
    store: PostgresStorage, dsn: str, pg_schema: str
) -> None:
    store.add_to_outbox(make_mail("k1"))
    store.add_to_outbox(make_mail("k2"))
    # The statement turns synchronous_commit off for its own transaction only …
    with store.transaction():
        params = ("sent", "", T0, None, "k1")
        assert store._count("mark", q.MARK_SENT_WITHOUT_FLUSH, params) == 1
        assert store._one("show", "SHOW synchronous_commit") == ("off",)
    assert store._one("show", "SHOW synchronous_commit") == ("on",)
    # … and mark_sent outside a transaction uses it: committed and seen by others at once.
    store.mark_sent("k2", SendStatus.SENT, "250 ok", T0)
    assert store._one("show", "SHOW synchronous_commit") == ("on",)
    with PostgresStorage(dsn, schema=pg_schema) as other:
        assert {e.mail.key: e.status for e in other.outbox()} == {
            "k1": SendStatus.SENT,
            "k2": SendStatus.SENT,
        }
    # Inside a transaction, the mark is part of it and commits like the rest.
    store.add_to_outbox(make_mail("k3"))
    with store.transaction():
        store.mark_sent("k3", SendStatus.DEFERRED, "try later", T0)
        assert store._one("show", "SHOW synchronous_commit") == ("on",)


def test_claims_on_their_own_commit_without_waiting_for_the_log_flush(
    store: PostgresStorage,
) -> None:
    _seed_due(store, 2)
    store.add_to_outbox(make_mail("k1"))
    claim = {"now": T0, "limit": 1, "worker": "w", "until": T0 + LEASE, "retry_before": T0}
    for text in (q.CLAIM_DUE_WITHOUT_FLUSH, q.CLAIM_MAIL_WITHOUT_FLUSH):
        with store.transaction():
            assert len(store._all("claim", text, claim)) == 1
            assert store._one("show", "SHOW synchronous_commit") == ("off",)
    # The store uses them outside a transaction only; either way the claims hold.
    assert len(store.claim_due(T0, 10, "w", LEASE)) == 1
    with store.transaction():
        assert store.claim_due(T0, 10, "w", LEASE) == []
        assert store.claim_mail(T0, 10, "w", LEASE) == []
        assert store._one("show", "SHOW synchronous_commit") == ("on",)
    assert store._one("show", "SHOW synchronous_commit") == ("on",)


def test_marking_a_send_the_outbox_does_not_hold_is_an_error(store: PostgresStorage) -> None:
    with pytest.raises(StorageError, match="no send with key 'nope'"):
        store.mark_sent("nope", SendStatus.SENT, "", T0)


# --------------------------------------------------------------------------- schema


def test_a_schema_written_by_a_newer_nurturekit_is_refused_and_left_untouched(
    dsn: str, pg_schema: str, postgres_dsn: str
) -> None:
    with PostgresStorage(dsn, schema=pg_schema) as store:
        store.put_lead(make_lead())
    newer = SCHEMA_VERSION + 1
    meta = f'"{pg_schema}".nurturekit_meta'
    _admin(postgres_dsn, f"UPDATE {meta} SET value = %s", (str(newer),))
    before = _tables(postgres_dsn, pg_schema)
    with pytest.raises(StorageError) as raised:
        PostgresStorage(dsn, schema=pg_schema)
    message = str(raised.value)
    assert f"version {newer}" in message and f"up to {SCHEMA_VERSION}" in message
    assert "nothing was changed" in message
    assert _tables(postgres_dsn, pg_schema) == before
    assert _admin(postgres_dsn, f"SELECT value FROM {meta}") == [(str(newer),)]
    assert _admin(postgres_dsn, f'SELECT id FROM "{pg_schema}".leads') == [("l1",)]


def test_a_newer_version_alone_is_enough_to_refuse_before_creating_anything(
    dsn: str, pg_schema: str, postgres_dsn: str
) -> None:
    _admin(postgres_dsn, f'CREATE SCHEMA "{pg_schema}"')
    _admin(
        postgres_dsn,
        f'CREATE TABLE "{pg_schema}".nurturekit_meta (key text PRIMARY KEY, value text)',
    )
    _admin(
        postgres_dsn,
        f"INSERT INTO \"{pg_schema}\".nurturekit_meta VALUES ('schema_version', '99')",
    )
    with pytest.raises(StorageError, match="version 99"):
        PostgresStorage(dsn, schema=pg_schema)
    assert _tables(postgres_dsn, pg_schema) == ["nurturekit_meta"]


def test_a_schema_holding_someone_elses_tables_is_refused(
    dsn: str, pg_schema: str, postgres_dsn: str
) -> None:
    _admin(postgres_dsn, f'CREATE SCHEMA "{pg_schema}"')
    _admin(postgres_dsn, f'CREATE TABLE "{pg_schema}".leads (name text)')
    with pytest.raises(StorageError, match="tables that nurturekit did not create"):
        PostgresStorage(dsn, schema=pg_schema)
    assert _tables(postgres_dsn, pg_schema) == ["leads"]


def test_a_version_1_schema_gets_the_handoff_tables_and_keeps_its_data(
    dsn: str, pg_schema: str, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patched:  # the nurturekit of schema version 1
        patched.setattr("nurturekit.storage.postgres_sql.SCHEMA_VERSION", 1)
        with PostgresStorage(dsn, schema=pg_schema) as old:
            _old_lead(postgres_dsn, pg_schema, make_lead())
            old.add_activity(make_activity(page="pricing"))
            old.put_enrollment(make_enrollment(1))
            old.add_to_outbox(make_mail("k1"))
    meta = f'"{pg_schema}".nurturekit_meta'
    assert _admin(postgres_dsn, f"SELECT value FROM {meta}") == [("1",)]
    assert "handoffs" not in _tables(postgres_dsn, pg_schema)
    with PostgresStorage(dsn, schema=pg_schema) as store:
        assert store.get_lead("l1") == make_lead()
        assert list(store.activities("l1")) == [make_activity(page="pricing")]
        assert store.enrollments_of("l1") == [make_enrollment(1)]
        assert [m.key for m in store.pending_mail(10)] == ["k1"]
        store.put_handoff(make_handoff())
        assert store.handoffs_of("l1") == [make_handoff()]
        assert store.next_in_rotation("team", 3) == 0
    assert _admin(postgres_dsn, f"SELECT value FROM {meta}") == [(str(SCHEMA_VERSION),)]
    assert {"handoffs", "rotations"} <= set(_tables(postgres_dsn, pg_schema))
    indexes = _admin(
        postgres_dsn, "SELECT indexname FROM pg_indexes WHERE schemaname = %s", (pg_schema,)
    )
    assert {"handoffs_by_lead", "handoffs_breaches", "handoffs_notices"} <= {
        name for (name,) in indexes
    }


def _old_lead(postgres_dsn: str, schema: str, lead: Lead) -> None:
    """Store ``lead`` as a schema before version 4 did: its body alone."""
    _admin(
        postgres_dsn,
        f'INSERT INTO "{schema}".leads (id, body) VALUES (%s, %s)',
        (lead.id, lead_to_json(lead)),
    )


def test_a_version_2_schema_gets_retry_times_and_suppression_flags_from_its_data(
    dsn: str, pg_schema: str, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = Contactability(status=ContactStatus.UNSUBSCRIBED, since=T0, reason="form")
    with monkeypatch.context() as patched:  # the nurturekit of schema version 2
        patched.setattr("nurturekit.storage.postgres_sql.SCHEMA_VERSION", 2)
        with PostgresStorage(dsn, schema=pg_schema) as old:
            _old_lead(postgres_dsn, pg_schema, make_lead(contactability=gone))
            old.add_to_outbox(make_mail("k1"))
            old.put_handoff(make_handoff())
    state = LeadState(lead_id="l1", card=ScoreCard(lead_id="l1"), disqualified=True)
    table = f'"{pg_schema}"'
    _admin(
        postgres_dsn,
        f"UPDATE {table}.outbox SET status = 'deferred', attempts = 1, updated_at = %s",
        (T0,),
    )
    _admin(
        postgres_dsn,
        f"INSERT INTO {table}.states (lead_id, body) VALUES ('l1', %s)",
        (state_to_json(state),),
    )
    with PostgresStorage(dsn, schema=pg_schema) as store:
        (entry,) = store.outbox()
        assert entry.retry_at == T0
        assert [m.key for m in store.claim_mail(T0, 10, "w", LEASE)] == ["k1"]
        held = store.hold_mail(["k1"], "w")
        assert held["k1"].disqualified and not held["k1"].with_sales
        # Version 4 reads the contact status from a column filled from the lead's body.
        assert held["k1"].contact is ContactStatus.UNSUBSCRIBED
        store.put_lead(make_lead())
        assert store.hold_mail(["k1"], "w")["k1"].contact is ContactStatus.SUBSCRIBED
        assert [h.id for h in store.claim_notices(T0, 10, "w", LEASE)] == ["h1"]


def test_a_version_5_schema_gets_activities_by_kind_in_time_order_and_keeps_its_data(
    dsn: str, pg_schema: str, postgres_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    older = [make_activity(minutes=n, kind="email_open", ref=str(n)) for n in range(3)]
    with monkeypatch.context() as patched:  # the nurturekit of schema version 5
        patched.setattr("nurturekit.storage.postgres_sql.SCHEMA_VERSION", 5)
        with PostgresStorage(dsn, schema=pg_schema) as old:
            old.put_lead(make_lead())
            assert old.add_activities(older) == [True, True, True]
            old.put_state(LeadState(lead_id="l1", card=ScoreCard(lead_id="l1")))
    with PostgresStorage(dsn, schema=pg_schema) as store:
        assert sorted(store.activities_of_kinds(["email_open"]), key=str) == sorted(older, key=str)
        state = store.get_state("l1")
        assert state is not None and state.lead_id == "l1"
    (definition,) = _admin(
        postgres_dsn,
        "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND indexname = %s",
        (pg_schema, "activities_by_kind"),
    )
    assert definition[0].endswith("(kind, at, key)")
    (options,) = _admin(
        postgres_dsn,
        "SELECT c.reloptions FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relname = 'states'",
        (pg_schema,),
    )
    assert options[0] == ["fillfactor=90"]


def test_workers_starting_together_on_a_fresh_database_migrate_it_once(
    dsn: str, pg_schema: str, postgres_dsn: str
) -> None:
    start = threading.Barrier(6)

    def open_store(_: int) -> None:
        start.wait()
        PostgresStorage(dsn, schema=pg_schema).close()

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(open_store, range(6)))
    meta = f'"{pg_schema}".nurturekit_meta'
    assert _admin(postgres_dsn, f"SELECT key, value FROM {meta}") == [
        ("schema_version", str(SCHEMA_VERSION))
    ]
    with PostgresStorage(dsn, schema=pg_schema) as store:
        store.put_lead(make_lead())


def test_a_schema_created_beforehand_is_used(dsn: str, pg_schema: str, postgres_dsn: str) -> None:
    _admin(postgres_dsn, f'CREATE SCHEMA "{pg_schema}"')
    with PostgresStorage(dsn, schema=pg_schema) as store:
        store.put_lead(make_lead())
    assert "leads" in _tables(postgres_dsn, pg_schema)


@pytest.mark.parametrize("schema", ["", "1abc", "a-b", 'x"; DROP TABLE y; --', "a" * 64])
def test_a_schema_name_that_is_not_a_plain_identifier_is_refused(schema: str) -> None:
    with pytest.raises(StorageError, match="not a plain PostgreSQL identifier"):
        PostgresStorage("postgresql://nobody@127.0.0.1:1/none", schema=schema)


# --------------------------------------------------------------------------- the import boundary


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_importing_nurturekit_does_not_import_psycopg() -> None:
    done = _python(
        """
        import sys
        import nurturekit, nurturekit.storage, nurturekit.engine
        import nurturekit.storage.postgres, nurturekit.storage.postgres_sql
        print(sorted(name for name in sys.modules if name.startswith("psycopg")))
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_without_psycopg_the_store_says_what_to_install() -> None:
    done = _python(
        """
        import sys
        sys.modules["psycopg"] = None  # as if it were not installed
        from nurturekit.errors import StorageError
        from nurturekit.storage.postgres import PostgresStorage
        try:
            PostgresStorage("postgresql://nobody@127.0.0.1:1/none")
        except StorageError as error:
            print(error)
        """
    )
    assert done.returncode == 0, done.stderr
    assert "pip install 'nurturekit[postgres]'" in done.stdout


# --------------------------------------------------------------------------- round trips


def test_run_due_costs_one_statement_per_send_and_a_handful_per_batch(
    store: PostgresStorage, postgres_dsn: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hand-over record of each send is its own statement (the delivery guarantee wants it
    committed before the next hand-over); everything else is read and written per batch."""
    from engine_fixtures import World
    from test_reliability import seed

    world = World(storage=store)
    ids = seed(f"{postgres_dsn}{'&' if '?' in postgres_dsn else '?'}schema={pg_schema}", 40)
    statements: list[str] = []
    run = PostgresStorage._run

    def counting(self: PostgresStorage, what: str, text: str, params: Any = ()) -> Any:
        statements.append(what)
        return run(self, what, text, params)

    monkeypatch.setattr(PostgresStorage, "_run", counting)
    report = world.engine.run_due(now=datetime.now(timezone.utc), limit=40)
    assert (report.claimed, report.sent, report.failures) == (40, 40, ())
    assert {m.enrollment_id for m in world.mailer.outbox} == ids
    assert statements.count("record a send") == 40
    # claim sends, claim steps, read leads and states, write the batch, claim the new sends,
    # re-check their leads (BEGIN and COMMIT aside).
    assert len(statements) - 40 <= 8, statements
