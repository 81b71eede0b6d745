"""The SQLite store's lead states (schema versions 4 and 5): a row of what does not grow with the
lead's history, and a row per score line, activity time, stage move and seen key. A write
appends what is new and writes a replaced list again whole; a rolled-back transaction leaves no
trace in what the store believes the file holds; a file of schema version 3, with each state
whole in its JSON body, and one of version 4, with the stage moves in the row, are migrated
forward and read the same states back."""

from __future__ import annotations

import json
import re
import sqlite3
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_codec import contributions, moves, reference, states, texts, times

from nurturekit.conditions.tally import Tally
from nurturekit.errors import StorageError
from nurturekit.ports import LeadState
from nurturekit.scoring import Contribution, ScoreCard
from nurturekit.stages import StageMove
from nurturekit.storage import sqlite_sql
from nurturekit.storage.codec import state_from_json, state_to_json
from nurturekit.storage.sqlite import SCHEMA_VERSION, SQLiteStorage
from nurturekit.testing import make_activity

T0 = datetime(2026, 4, 1, 9, 0, tzinfo=timezone.utc)
JST = timezone(timedelta(hours=9))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "nk.db"


def query(path: Path, sql: str) -> list[Any]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def line(n: int, part: str = "engagement") -> Contribution:
    return Contribution(
        f"rule {n % 3}", part, n, n, T0 + timedelta(minutes=n), f"k{n}", "page_view"
    )


def new_state(count: int, lead_id: str = "l1") -> LeadState:
    return LeadState(
        lead_id=lead_id,
        card=ScoreCard(
            lead_id=lead_id,
            entries=[line(n) for n in range(count)],
            refused=[line(-n) for n in range(1, count // 4 + 1)],
            seen={f"k{n}" for n in range(count)},
            times=[T0 + timedelta(minutes=n) for n in range(count)],
            last_at=T0 + timedelta(minutes=count - 1),
            last_key=f"k{count - 1}",
        ),
    )


def read(path: Path, lead_id: str = "l1") -> str:
    """The lead's state as a new store object on the file reads it, in its whole JSON form."""
    with SQLiteStorage(path) as storage:
        state = storage.get_state(lead_id)
        assert state is not None
        return state_to_json(state)


def logged(storage: SQLiteStorage) -> list[tuple[str, str, int]]:
    """From now on, each batch statement the store runs: (INSERT or DELETE, table, rows)."""
    log: list[tuple[str, str, int]] = []
    run = storage._many

    def many(sql: str, rows: Any) -> None:
        rows = list(rows)
        found = re.match(r"(INSERT|DELETE) (?:INTO|FROM) (\w+)", sql)
        assert found is not None, sql
        log.append((found.group(1), found.group(2), len(rows)))
        run(sql, rows)

    storage._many = many  # type: ignore[method-assign]
    return log


def change_in_a_transaction(storage: SQLiteStorage, change: Any) -> LeadState:
    with storage.transaction():
        state = storage.get_state("l1")
        assert state is not None
        change(state)
        storage.put_state(state)
    return state


# ------------------------------------------------------------------------------ writing


class TestWriting:
    def test_a_state_that_grew_appends_its_new_items_only(self, db: Path) -> None:
        with SQLiteStorage(db) as storage:
            storage.put_state(new_state(1000))
            log = logged(storage)
            for n in range(1000, 1003):

                def grow(state: LeadState, n: int = n) -> None:
                    card = state.card
                    card.entries += [line(n), line(n + 10_000)]
                    card.refused.append(line(-n))
                    card.times.append(T0 + timedelta(minutes=n))
                    card.seen.add(f"k{n}")
                    card.last_at, card.last_key = card.times[-1], f"k{n}"

                state = change_in_a_transaction(storage, grow)
                assert log == [
                    ("INSERT", "state_lines", 3),
                    ("INSERT", "state_times", 1),
                    ("INSERT", "state_seen", 1),
                    ("INSERT", "states", 1),
                ]
                log.clear()
            expected = state_to_json(state)
            # A state whose items did not change writes its row alone.
            change_in_a_transaction(storage, lambda state: setattr(state, "qualified", True))
            assert log == [("INSERT", "states", 1)]
        assert read(db) == expected[:-1] + ',"qualified":true}'
        assert query(db, "SELECT count(*), max(seq) FROM state_lines WHERE part = 0") == [
            (1006, 1005)
        ]

    def test_a_stage_move_appends_one_row(self, db: Path) -> None:
        first = StageMove(
            lead_id="l1", source=None, target="awareness", at=T0, reason="start", manual=False
        )
        with SQLiteStorage(db) as storage:
            state = new_state(3)
            state.moves.append(first)
            storage.put_state(state)
            log = logged(storage)
            later = T0 + timedelta(days=1)

            def advance(state: LeadState) -> None:
                state.moves.append(
                    StageMove(
                        lead_id="l1",
                        source="awareness",
                        target="interest",
                        at=later,
                        reason="✓ score is at least 50 (it is 55)",
                        manual=False,
                    )
                )

            state = change_in_a_transaction(storage, advance)
            assert log == [("INSERT", "state_moves", 1), ("INSERT", "states", 1)]
        assert read(db) == state_to_json(state)
        assert query(db, "SELECT seq, source, target, manual, move_lead FROM state_moves") == [
            (0, None, "awareness", 0, None),
            (1, "awareness", "interest", 0, None),
        ]

    def test_a_move_of_another_lead_keeps_its_lead(self, db: Path) -> None:
        state = new_state(1)
        state.moves.append(
            StageMove(lead_id="l2", source=None, target="a", at=T0, reason="by hand", manual=True)
        )
        with SQLiteStorage(db) as storage:
            storage.put_state(state)
        assert read(db) == state_to_json(state)
        assert query(db, "SELECT move_lead FROM state_moves") == [("l2",)]

    def test_a_state_read_from_the_file_appends_too(self, db: Path) -> None:
        with SQLiteStorage(db) as storage:
            storage.put_state(new_state(500))
        with SQLiteStorage(db) as storage:  # nothing cached: the state is read from its rows
            log = logged(storage)
            state = change_in_a_transaction(storage, lambda s: s.card.entries.append(line(500)))
            assert log == [("INSERT", "state_lines", 1), ("INSERT", "states", 1)]
        assert read(db) == state_to_json(state)

    def test_a_replaced_list_is_written_again_whole(self, db: Path) -> None:
        with SQLiteStorage(db) as storage:
            storage.put_state(new_state(100))
            log = logged(storage)

            def late(state: LeadState) -> None:  # as the scoring model does: a new list
                card = state.card
                card.entries = sorted([*card.entries, line(-7)], key=lambda c: c.points)
                card.times = sorted([*card.times, T0 - timedelta(minutes=7)])

            state = change_in_a_transaction(storage, late)
            assert log == [
                ("DELETE", "state_lines", 1),
                ("DELETE", "state_times", 1),
                ("INSERT", "state_lines", 101),
                ("INSERT", "state_times", 101),
                ("INSERT", "states", 1),
            ]
            log.clear()
            # The same list cut short, or cut and grown again: written whole as well.
            state = change_in_a_transaction(storage, lambda s: s.card.entries.pop())
            state = change_in_a_transaction(
                storage, lambda s: (s.card.entries.pop(), s.card.entries.append(line(900)))
            )
            assert [entry for entry in log if entry[1] == "state_lines"] == [
                ("DELETE", "state_lines", 1),
                ("INSERT", "state_lines", 100),
                ("DELETE", "state_lines", 1),
                ("INSERT", "state_lines", 100),
            ]
        assert read(db) == state_to_json(state)

    def test_seen_keys_are_added_and_written_again_when_one_went(self, db: Path) -> None:
        with SQLiteStorage(db) as storage:
            storage.put_state(new_state(50))
            log = logged(storage)
            change_in_a_transaction(storage, lambda s: s.card.seen.update({"new-1", "new-2"}))
            assert log == [("INSERT", "state_seen", 2), ("INSERT", "states", 1)]
            log.clear()
            state = change_in_a_transaction(
                storage, lambda s: (s.card.seen.discard("k3"), s.card.seen.add("new-3"))
            )
            assert log == [
                ("DELETE", "state_seen", 1),
                ("INSERT", "state_seen", 52),
                ("INSERT", "states", 1),
            ]
        assert read(db) == state_to_json(state)

    def test_a_state_put_from_outside_a_transaction_is_written_whole(self, db: Path) -> None:
        with SQLiteStorage(db) as storage:
            storage.put_state(new_state(20))
            state = storage.get_state("l1")  # a copy: its lists are not the store's
            assert state is not None
            state.card.entries.append(line(20))
            log = logged(storage)
            storage.put_state(state)
            assert ("INSERT", "state_lines", 26) in log
        assert read(db) == state_to_json(state)

    def test_the_first_write_of_a_lead_read_without_a_state_deletes_nothing(self, db: Path) -> None:
        with SQLiteStorage(db) as storage:
            log = logged(storage)
            with storage.transaction():
                assert storage.get_state("l1") is None  # as the engine asks first
                storage.put_state(new_state(4))
            assert [(verb, table) for verb, table, _ in log] == [
                ("INSERT", "state_lines"),
                ("INSERT", "state_times"),
                ("INSERT", "state_seen"),
                ("INSERT", "states"),
            ]
        assert read(db) == state_to_json(new_state(4))

    def test_the_row_keeps_only_what_does_not_grow(self, db: Path) -> None:
        state = new_state(1000)
        state.moves += [
            StageMove(lead_id="l1", source=None, target="a", at=T0, reason="r" * 100, manual=False)
        ] * 10
        with SQLiteStorage(db) as storage:
            storage.put_state(state)
        ((body,),) = query(db, "SELECT body FROM states")
        assert len(body) < 300 and "moves" not in json.loads(body)
        # (engagement points are left out when there are none)
        head = {"fit", "fit_total", "engagement_points", "last_at", "last_key"}
        assert set(json.loads(body)["card"]) | {"engagement_points"} == head


#: What the engine and the scoring model do to a state between two writes: lists appended to,
#: or replaced by new lists; also lists cut short in place, and seen keys removed.
changes = st.lists(
    st.tuples(
        st.sampled_from(
            [
                *("append", "refuse", "time", "see", "unsee", "move", "level"),
                *("insert", "remove", "rebuild", "pop", "clear"),
            ]
        ),
        st.integers(0, 20),
        contributions,
        texts,
        times,
        moves,
    ),
    max_size=6,
)


def change(
    state: LeadState, what: str, n: int, c: Contribution, s: str, t: datetime, m: StageMove
) -> None:
    card = state.card
    if what == "append":
        card.entries.append(c)
    elif what == "refuse":
        card.refused.append(c)
    elif what == "time":
        card.times.append(t)
        card.last_at, card.last_key = t, s
    elif what == "see":
        card.seen.add(s)
    elif what == "unsee" and card.seen:
        card.seen.discard(sorted(card.seen)[n % len(card.seen)])
    elif what == "move":
        state.moves.append(m)
    elif what == "level":
        state.levels = state.levels | {s}
    elif what == "insert":  # a late activity: a new list
        entries = list(card.entries)
        entries.insert(n % (len(entries) + 1), c)
        card.entries = entries
    elif what == "remove" and card.refused:
        card.refused = [r for i, r in enumerate(card.refused) if i != n % len(card.refused)]
    elif what == "rebuild":  # equal items, other objects
        card.entries = [Contribution(*e) for e in card.entries]
    elif what == "pop" and card.times:
        card.times.pop()
    elif what == "clear":
        card.entries.clear()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(states, st.lists(st.tuples(st.booleans(), changes), min_size=1, max_size=5))
def test_every_write_reads_back_as_written(
    state: LeadState, rounds: list[tuple[bool, list[tuple[Any, ...]]]]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "nk.db"
        with SQLiteStorage(path) as storage:
            storage.put_state(state)
            assert read(path) == reference(state)
            for inside, steps in rounds:
                if inside:  # the store's own object, changed in place (the engine's way)
                    with storage.transaction():
                        state = storage.get_state("l1")  # type: ignore[assignment]
                        for step in steps:
                            change(state, *step)
                        storage.put_state(state)
                else:  # a copy, put from outside a transaction
                    state = storage.get_state("l1")  # type: ignore[assignment]
                    for step in steps:
                        change(state, *step)
                    storage.put_state(state)
                assert read(path) == reference(state)


def _as_lead(state: LeadState, lead_id: str) -> LeadState:
    """``state`` made the state of ``lead_id`` (its moves of other leads kept as they are)."""
    return attrs.evolve(
        state,
        lead_id=lead_id,
        card=attrs.evolve(state.card, lead_id=lead_id),
        moves=[attrs.evolve(m, lead_id=lead_id) if m.lead_id == "l1" else m for m in state.moves],
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(states, min_size=1, max_size=5), st.integers(0, 3))
def test_states_read_together_read_back_each_as_written(
    made: list[LeadState], stateless: int
) -> None:
    """get_states reads the states of many leads five statements at a time: each state comes
    back whole, its lines, times, seen keys and moves its own; leads without one are left
    out."""
    written = [_as_lead(state, f"l{n}") for n, state in enumerate(made)]
    ids = [f"none{n}" for n in range(stateless)] + [state.lead_id for state in written]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "nk.db"
        with SQLiteStorage(path) as storage, storage.transaction():
            for state in written:
                storage.put_state(state)
        with SQLiteStorage(path) as storage:
            found = storage.get_states(reversed(ids))
            assert list(found) == [state.lead_id for state in reversed(written)]
            for state in written:
                assert reference(found[state.lead_id]) == reference(state)
                assert read(path, state.lead_id) == reference(state)


# ------------------------------------------------------------------------------ rollback


class TestRollback:
    def test_a_rollback_after_items_were_written_leaves_the_next_writes_whole(
        self, db: Path
    ) -> None:
        with SQLiteStorage(db) as storage:
            storage.put_state(new_state(2))
            with pytest.raises(ZeroDivisionError), storage.transaction():
                state = storage.get_state("l1")
                assert state is not None
                state.card.entries.append(line(2))
                state.card.times.append(T0 + timedelta(minutes=2))
                state.card.seen.add("k2")
                storage.put_state(state)
                with storage.savepoint():  # writes the states kept back so far
                    pass
                assert storage._all("SELECT count(*) FROM state_lines WHERE part = 0") == [(3,)]
                _ = 1 / 0
            for n in (3, 4):

                def grow(state: LeadState, n: int = n) -> None:
                    state.card.entries.append(line(n))
                    state.card.times.append(T0 + timedelta(minutes=n))
                    state.card.seen.add(f"k{n}")

                state = change_in_a_transaction(storage, grow)
            assert [c.activity_key for c in state.card.entries] == ["k0", "k1", "k3", "k4"]
        assert read(db) == state_to_json(state)
        assert query(db, "SELECT seq FROM state_lines WHERE part = 0 ORDER BY seq") == [
            (0,),
            (1,),
            (2,),
            (3,),
        ]

    def test_a_savepoint_rolled_back_after_items_were_written(self, db: Path) -> None:
        with SQLiteStorage(db) as storage:
            storage.put_state(new_state(2))
            with storage.transaction():
                state = storage.get_state("l1")
                assert state is not None
                state.card.entries.append(line(2))
                storage.put_state(state)
                with pytest.raises(ZeroDivisionError), storage.savepoint():
                    inner = storage.get_state("l1")
                    assert inner is not None
                    inner.card.entries.append(line(3))
                    storage.put_state(inner)
                    with storage.savepoint():  # writes line 3, which the rollback undoes
                        pass
                    _ = 1 / 0
                again = storage.get_state("l1")  # read again: the savepoint dropped the cache
                assert again is not None
                assert [c.activity_key for c in again.card.entries] == ["k0", "k1", "k2"]
                again.card.entries.append(line(4))
                storage.put_state(again)
            expected = state_to_json(again)
        assert read(db) == expected
        assert '"k3"' not in expected

    def test_a_failed_write_caught_inside_the_transaction_leaves_the_next_write_whole(
        self, db: Path
    ) -> None:
        with SQLiteStorage(db) as storage:
            storage.put_state(new_state(3))
            run = storage._many

            def failing(sql: str, rows: Any) -> None:
                if sql.startswith("INSERT INTO state_lines "):
                    raise StorageError("disk full")
                run(sql, rows)

            with storage.transaction():
                state = storage.get_state("l1")
                assert state is not None
                state.card.entries.append(line(3))
                storage.put_state(state)
                storage._many = failing  # type: ignore[method-assign]
                with pytest.raises(StorageError, match="disk full"):
                    storage.hold_mail([], "w")  # writes the states kept back: line 3 fails
                del storage._many
                state.card.entries.append(line(4))
                storage.put_state(state)
            assert [c.activity_key for c in state.card.entries] == ["k0", "k1", "k2", "k3", "k4"]
        assert read(db) == state_to_json(state)


# ------------------------------------------------------------------------------ the cache


def test_a_cached_lead_weighs_its_activities_and_a_fraction_of_its_state_items(db: Path) -> None:
    with SQLiteStorage(db) as storage, storage.transaction():
        for minute in range(100):
            storage.add_activity(make_activity(minutes=minute))
        assert len(storage.activities("l1")) == 100
        storage.put_state(new_state(160))  # 160 lines, 40 refused, 160 times, 160 keys
        entry = storage._cache.get("l1")
        assert entry is not None
        # 1 for the lead, 100 activities; 200 lines at 4/16, 160 times at 1/16, 160 keys at
        # 2/16 (once the state is written, and its keys copied, 1/16 more each).
        assert entry.weight == 1 + 100 + (4 * 200 + 160 + 2 * 160) // 16
    with SQLiteStorage(db) as storage, storage.transaction():
        assert storage.get_state("l1") is not None
        entry = storage._cache.get("l1")
        assert entry is not None and entry.written is not None
        assert entry.weight == 1 + (4 * 200 + 160 + 3 * 160) // 16


# ------------------------------------------------------------------------------ migration


class _AtVersion3(SQLiteStorage):
    """The nurturekit of schema version 3: each lead state whole, as JSON, in its row."""

    _migrations = sqlite_sql.MIGRATIONS[:3]


class _AtVersion4(SQLiteStorage):
    """The nurturekit of schema version 4: the stage moves still in the state's row."""

    _migrations = sqlite_sql.MIGRATIONS[:4]


def version_3_file(path: Path, bodies: dict[str, str]) -> None:
    """A file of schema version 3 holding these state bodies, as its code wrote them."""
    _AtVersion3(path).close()
    conn = sqlite3.connect(path)
    with conn:
        for lead_id, body in bodies.items():
            conn.execute(
                "INSERT INTO states (lead_id, body, with_sales, disqualified) VALUES (?, ?, ?, ?)",
                (lead_id, body, '"with_sales":true' in body, '"disqualified":true' in body),
            )
    conn.close()
    assert query(path, "SELECT value FROM nurturekit_meta") == [("3",)]


#: A state as the code of schema version 3 wrote it (``encode_state(state).text``): an adjustment
#: whose reason holds quotes, a NUL and a backslash, times in Tokyo, a tally, a stage move.
VERSION_3_BODY = (
    '{"lead_id":"l1","card":{"fit":[["employees ≥ 50","fit",10,10,null,null,null]],'
    '"fit_total":10,"entries":[["pricing page","engagement",20,20,"2026-04-01T09:00:00+00:00",'
    '"k1","page_view"],["adjustment: \\"VIP\\"\\u0000\\\\","engagement",-5,-5,'
    '"2026-04-01T18:00:00+09:00","k2","score_adjusted"],["idle decay","engagement",0,-3,'
    '"2026-05-01T09:00:00+00:00",null,null]],"engagement_points":15,"refused":[["pricing page",'
    '"engagement",20,20,"2026-04-01T10:00:00+00:00","k3","page_view"]],"seen":["k1","k2","k3"],'
    '"last_at":"2026-04-01T10:00:00.000005+00:00","last_key":"k3","times":['
    '"2026-04-01T09:00:00+00:00","2026-04-01T18:01:00+09:00",'
    '"2026-04-01T10:00:00.000005+00:00"]},"moves":[{"lead_id":"l1","source":null,'
    '"target":"awareness","at":"2026-04-01T09:00:00+00:00",'
    '"reason":"入力: entered the initial stage","manual":false}],"levels":["MQL"],'
    '"with_sales":true,"disqualified":false,"qualified":true,"tally":{"total":3,'
    '"newest":"2026-04-01T09:00:00+00:00","counted":[{"kinds":["page_view"],'
    '"where":[["page","pricing"]],"window":2592000000000,"count":2,'
    '"times":[1775030400000000,1775034000000000]},{"kinds":["form_submit"],"where":[],'
    '"window":null,"count":1,"times":[]}]}}'
)


class TestMigration:
    def test_a_version_3_state_reads_back_the_same_after_the_migration(self, db: Path) -> None:
        version_3_file(db, {"l1": VERSION_3_BODY})
        with SQLiteStorage(db) as storage:
            state = storage.get_state("l1")
            assert state is not None
            assert state_to_json(state) == state_to_json(state_from_json(VERSION_3_BODY))
            card = state.card
            assert card.entries[1].rule == 'adjustment: "VIP"\x00\\'
            assert card.entries[1].at == T0 and card.entries[1].at.utcoffset() == timedelta(hours=9)
            assert card.seen == {"k1", "k2", "k3"} and len(card.times) == 3
            assert isinstance(state.tally, Tally) and state.tally.total == 3
            held = storage.hold_mail([], "w")  # the flags' columns are untouched
            assert held == {}
        assert query(db, "SELECT value FROM nurturekit_meta") == [(str(SCHEMA_VERSION),)]
        assert query(db, "SELECT with_sales, disqualified FROM states") == [(1, 0)]
        assert query(db, "SELECT part, count(*) FROM state_lines GROUP BY part") == [
            (0, 3),
            (1, 1),
        ]
        ((body,),) = query(db, "SELECT body FROM states")
        # (engagement points are left out when there are none)
        head = {"fit", "fit_total", "engagement_points", "last_at", "last_key"}
        assert set(json.loads(body)["card"]) | {"engagement_points"} == head

    def test_a_migrated_state_then_grows_by_appending(self, db: Path) -> None:
        version_3_file(db, {"l1": VERSION_3_BODY})
        with SQLiteStorage(db) as storage:
            log = logged(storage)
            state = change_in_a_transaction(storage, lambda s: s.card.entries.append(line(9)))
            assert log == [("INSERT", "state_lines", 1), ("INSERT", "states", 1)]
        assert read(db) == state_to_json(state)

    def test_many_states_are_moved_page_by_page(self, db: Path) -> None:
        made = {f"lead-{n:04}": new_state(n % 7, f"lead-{n:04}") for n in range(1234)}
        version_3_file(db, {lead_id: state_to_json(s) for lead_id, s in made.items()})
        with SQLiteStorage(db) as storage:
            for lead_id, state in made.items():
                got = storage.get_state(lead_id)
                assert got is not None and state_to_json(got) == state_to_json(state)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(states, min_size=1, max_size=3))
    def test_any_state_reads_back_the_same_after_the_migration(self, made: list[LeadState]) -> None:
        bodies = {f"l{n}": reference(state) for n, state in enumerate(made)}
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "nk.db"
            version_3_file(path, bodies)
            with SQLiteStorage(path) as storage:
                for lead_id, body in bodies.items():
                    got = storage.get_state(lead_id)
                    # The state is the row's lead's (the made states all say "l1").
                    mine = body.replace('"lead_id":"l1"', f'"lead_id":"{lead_id}"', 1)
                    assert got is not None and state_to_json(got) == mine

    def test_a_version_4_state_reads_back_the_same_after_the_migration(self, db: Path) -> None:
        version_3_file(db, {"l1": VERSION_3_BODY, "l2": state_to_json(new_state(3, "l2"))})
        _AtVersion4(db).close()
        ((body,),) = query(db, "SELECT body FROM states WHERE lead_id = 'l1'")
        assert '"moves":[{"lead_id":"l1","source":null' in body  # as version 4 kept it
        assert query(db, "SELECT value FROM nurturekit_meta") == [("4",)]
        with SQLiteStorage(db) as storage:
            state = storage.get_state("l1")
            assert state is not None and state_to_json(state) == state_to_json(
                state_from_json(VERSION_3_BODY)
            )
            other = storage.get_state("l2")
            assert other is not None and state_to_json(other) == state_to_json(new_state(3, "l2"))
        assert query(db, "SELECT value FROM nurturekit_meta") == [(str(SCHEMA_VERSION),)]
        assert query(db, "SELECT lead_id, seq, target FROM state_moves") == [("l1", 0, "awareness")]
        for (body,) in query(db, "SELECT body FROM states"):
            assert "moves" not in json.loads(body)

    def test_a_damaged_version_4_state_stops_the_migration_and_leaves_version_4(
        self, db: Path
    ) -> None:
        version_3_file(db, {"l1": VERSION_3_BODY})
        _AtVersion4(db).close()
        conn = sqlite3.connect(db)
        with conn:
            conn.execute("UPDATE states SET body = replace(body, '\"target\"', '\"tar\"')")
        conn.close()
        with pytest.raises(StorageError, match="migration to schema version 5 failed"):
            SQLiteStorage(db)
        assert query(db, "SELECT value FROM nurturekit_meta") == [("4",)]
        names = {name for (name,) in query(db, "SELECT name FROM sqlite_master")}
        assert "state_moves" not in names

    def test_a_damaged_state_stops_the_migration_and_leaves_version_3(self, db: Path) -> None:
        version_3_file(db, {"l1": VERSION_3_BODY, "l2": '{"lead_id": "l2", "card": '})
        with pytest.raises(StorageError, match="migration to schema version 4 failed"):
            SQLiteStorage(db)
        assert query(db, "SELECT value FROM nurturekit_meta") == [("3",)]
        names = {name for (name,) in query(db, "SELECT name FROM sqlite_master")}
        assert "state_lines" not in names
        assert query(db, "SELECT body FROM states WHERE lead_id = 'l1'") == [(VERSION_3_BODY,)]
