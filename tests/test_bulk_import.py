"""Bulk imports: ``Engine.upsert_leads`` stores what ``upsert_lead`` stores one by one, a batch a
transaction; a lead the store refuses is reported and its batch-mates are kept;
``record_many`` reading a batch ahead gives what it gives activity by activity; and
``import_leads`` / ``import_activities`` over them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import attrs
import pytest
from engine_fixtures import OPTED_IN, START, WHITEPAPER, World, program

from nurturekit import Activity, Lead
from nurturekit.conditions import activity, did
from nurturekit.engine import Engine, RecordResult
from nurturekit.engine.core import _stamped
from nurturekit.errors import InvalidInput, StorageError, UnknownLead
from nurturekit.handoff import HandoffPolicy, MqlDefinition
from nurturekit.importer import import_activities, import_leads
from nurturekit.lead import Consent, Contactability
from nurturekit.ports import Storage
from nurturekit.programs import b2b_program
from nurturekit.scenario import Exit
from nurturekit.storage import open_storage
from nurturekit.storage.codec import state_to_json

STORES = ["memory", "sqlite", "postgresql"]


@pytest.fixture(params=STORES)
def kind(request: pytest.FixtureRequest) -> str:
    return cast(str, request.param)


@pytest.fixture
def make_store(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[str], Storage]]:
    """Opens a store of ``kind`` by name: the same name, the same database (a SQLite file, a
    PostgreSQL schema), opened again; each dropped afterwards."""
    opened: list[Storage] = []
    schemas: list[str] = []
    memory: dict[str, Storage] = {}
    dsn = request.getfixturevalue("postgres_dsn") if kind == "postgresql" else ""
    prefix = f"nk_test_{uuid.uuid4().hex[:12]}"

    def make(name: str) -> Storage:
        if kind == "memory":
            return memory.setdefault(name, open_storage("memory://"))
        if kind == "sqlite":
            store = open_storage(f"sqlite:///{tmp_path / name}.db")
        else:
            schema = f"{prefix}_{name}"
            if schema not in schemas:
                schemas.append(schema)
            store = open_storage(f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}")
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()
    if schemas:
        import psycopg
        from psycopg import sql

        with psycopg.connect(dsn, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )


def _engine(storage: Storage, world: World | None = None) -> tuple[Engine, World]:
    world = world or World(the_program=b2b_program())
    engine = Engine(
        world.engine.program, storage, world.mailer, links=world.links, clock=world.clock
    )
    return engine, world


def _lead(lead_id: str, **changes: Any) -> Lead:
    fields: dict[str, Any] = {
        "id": lead_id,
        "email": f"{lead_id}@example.co.jp",
        "name": "田中",
        "attributes": {"job_level": "director", "industry": "manufacturing", "employees": 500},
        "consent": OPTED_IN,
    }
    fields.update(changes)
    return Lead(**fields)


def _stored(storage: Storage, ids: Sequence[str]) -> list[tuple[Lead | None, str | None]]:
    """Each lead as stored, with its state as JSON (LeadState compares by identity)."""
    found = []
    for lead_id in ids:
        state = storage.get_state(lead_id)
        found.append((storage.get_lead(lead_id), None if state is None else state_to_json(state)))
    return found


# --- upsert_leads ---------------------------------------------------------------------------------


def _first_leads() -> list[Lead]:
    unsubscribed = Contactability(status="unsubscribed", since=START, reason="unsubscribe link")
    return [
        _lead("a"),
        _lead("b", contactability=unsubscribed),
        _lead("c", attributes={"job_level": "staff"}),
        _lead("d", consent=None),
    ]


def _second_leads() -> list[Lead]:
    other = Consent(at=START, method="seminar sign-up", wording="案内を受け取る")
    return [
        _lead("a", consent=None),  # keeps its stored opt-in record
        _lead("b"),  # the default "subscribed": keeps its stored unsubscription
        _lead("c", attributes={"job_level": "executive", "employees": 10}),  # fit refitted
        _lead("d", consent=other),
        _lead("e", name="new"),
        _lead("e", name="twice", attributes={"industry": "it"}),  # given twice in one batch
        _lead("f", created_at=START - timedelta(days=3)),  # its own created_at is kept
    ]


def test_upsert_leads_stores_what_upsert_lead_stores_one_by_one(
    make_store: Callable[[str], Storage],
) -> None:
    one, world = _engine(make_store("one"))
    bulk, _ = _engine(make_store("bulk"), world)
    for lead in _first_leads():
        one.upsert_lead(lead)
    assert bulk.upsert_leads(_first_leads(), batch_size=3).stored == 4
    world.clock.advance(timedelta(days=1))
    for lead in _second_leads():
        one.upsert_lead(lead)
    summary = bulk.upsert_leads(iter(_second_leads()), batch_size=4)
    assert (summary.stored, summary.refused) == (7, ())

    ids = ["a", "b", "c", "d", "e", "f"]
    assert _stored(bulk.storage, ids) == _stored(one.storage, ids)
    a, b, _, d, e, f = (bulk.storage.get_lead(i) for i in ids)
    assert a is not None and a.consent == OPTED_IN and a.created_at == START
    assert b is not None and b.contactability.status.value == "unsubscribed"
    assert d is not None and d.consent is not None and d.consent.method == "seminar sign-up"
    assert e is not None and e.name == "twice" and e.created_at == START + timedelta(days=1)
    assert f is not None and f.created_at == START - timedelta(days=3)
    state = bulk.storage.get_state("c")
    assert state is not None
    assert [line.rule for line in state.card.fit] == ["job level: department head or above"]


def test_a_lead_stamped_with_its_created_at_equals_one_evolved_by_attrs() -> None:
    lead = _lead("l1", email="ann@例え.jp", attributes={"tags": ["a", "b"], "n": 1})
    assert [field.name for field in attrs.fields(Lead)][-2:] == ["created_at", "_email_ascii"]
    stamped = _stamped(lead, START)
    evolved = attrs.evolve(lead, created_at=START)
    assert stamped == evolved and hash(stamped) == hash(evolved)
    assert stamped.email_ascii == evolved.email_ascii == "ann@xn--r8jz45g.jp"
    assert repr(stamped) == repr(evolved)


def test_upsert_leads_takes_a_batch_size_of_one_or_more() -> None:
    engine, _ = _engine(open_storage("memory://"))
    for wrong in (0, -1, True, 1.5):
        with pytest.raises(InvalidInput, match="batch_size"):
            engine.upsert_leads([], batch_size=wrong)  # type: ignore[arg-type]
    assert engine.upsert_leads([]).stored == 0


class _Refusing:
    """A store that refuses to write the leads whose ids are in ``refused`` (as a database
    may refuse a row: a constraint, a trigger, a value it cannot encode)."""

    def __init__(self, inner: Storage, refused: set[str], everything: bool = False) -> None:
        self._inner = inner
        self.refused = refused
        self.everything = everything

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _check(self, leads: Sequence[Lead]) -> None:
        for lead in leads:
            if self.everything or lead.id in self.refused:
                raise StorageError(f"the store refused lead {lead.id!r}")

    def put_lead(self, lead: Lead) -> None:
        self._check([lead])
        self._inner.put_lead(lead)

    def put_leads(self, leads: Sequence[Lead]) -> None:
        self._check(leads)
        put_leads = getattr(self._inner, "put_leads", None)
        if put_leads is None:
            for lead in leads:
                self._inner.put_lead(lead)
        else:
            put_leads(leads)


@pytest.mark.parametrize("where", [0, 3, 6])
def test_a_lead_the_store_refuses_is_reported_and_its_batch_mates_are_kept(
    make_store: Callable[[str], Storage], where: int
) -> None:
    storage = make_store("refusing")
    refusing = _Refusing(storage, {f"l{where}"})
    engine, _ = _engine(cast(Storage, refusing))
    leads = [_lead(f"l{n}") for n in range(10)]
    summary = engine.upsert_leads(leads, batch_size=4)
    assert summary.stored == 9
    assert [(position, str(error)) for position, error in summary.refused] == [
        (where, f"the store refused lead 'l{where}'")
    ]
    for n in range(10):
        stored, state = storage.get_lead(f"l{n}"), storage.get_state(f"l{n}")
        if n == where:
            assert stored is None and state is None
        else:
            assert stored is not None and stored.created_at == START
            assert state is not None and state.card.fit_total > 0


def test_a_store_that_refuses_every_lead_stops_the_upsert_keeping_the_batches_before(
    make_store: Callable[[str], Storage],
) -> None:
    storage = make_store("failing")
    refusing = _Refusing(storage, set())
    engine, _ = _engine(cast(Storage, refusing))
    leads = [_lead(f"l{n}") for n in range(10)]

    def failing_from_the_second_batch() -> Iterator[Lead]:
        for n, lead in enumerate(leads):
            if n == 4:
                refusing.everything = True
            yield lead

    with pytest.raises(StorageError, match="refused lead 'l6'"):  # the third tried alone
        engine.upsert_leads(failing_from_the_second_batch(), batch_size=4)
    assert [lead.id for lead in storage.leads()] == ["l0", "l1", "l2", "l3"]


def test_import_leads_reports_a_row_the_store_refuses_and_imports_the_others(
    make_store: Callable[[str], Storage], tmp_path: Path
) -> None:
    storage = make_store("import")
    engine, _ = _engine(cast(Storage, _Refusing(storage, {"l2"})))
    path = tmp_path / "leads.csv"
    path.write_text(
        "id,email,employees\n"
        "l1,l1@example.co.jp,10\n"
        "l2,l2@example.co.jp,20\n"
        "l3,not an address,30\n"
        "l4,l4@example.co.jp,40\n",
        encoding="utf-8",
    )
    summary = import_leads(engine, path)
    assert (summary.read, summary.imported, summary.skipped) == (4, 2, 0)
    assert [(e.line, e.column) for e in summary.errors] == [(3, None), (4, "email")]
    assert summary.errors[0].reason == "not stored: the store refused lead 'l2'"
    assert sorted(lead.id for lead in storage.leads()) == ["l1", "l4"]


def test_import_leads_streams_a_batch_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nurturekit import importer

    assert importer.LEADS_BATCH_SIZE == 5000
    monkeypatch.setattr(importer, "LEADS_BATCH_SIZE", 1000)
    world = World(the_program=b2b_program())
    batches: list[int] = []
    upsert_leads = world.engine.upsert_leads

    def spy(leads: Any, *, batch_size: int = 1000) -> Any:
        batch = list(leads)
        batches.append(len(batch))
        return upsert_leads(batch, batch_size=batch_size)

    world.engine.upsert_leads = spy  # type: ignore[method-assign]
    path = tmp_path / "leads.csv"
    path.write_text(
        "id,email\n" + "".join(f"l{n},l{n}@example.co.jp\n" for n in range(2500)),
        encoding="utf-8",
    )
    assert import_leads(world.engine, path).imported == 2500
    assert batches == [1000, 1000, 500]


# --- record_many reading a batch ahead ------------------------------------------------------------


class _PerActivity:
    """A store without the batch reads: the engine records activity by activity."""

    def __init__(self, inner: Storage) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        if name in ("activities_of", "enrollments_of_leads"):
            raise AttributeError(name)
        return getattr(self._inner, name)


def _seed(engine: Engine, world: World) -> None:
    leads = [_lead(f"l{n}") for n in range(1, 9)]
    leads[6] = _lead("l7", attributes={"job_level": "staff", "employees": 5})
    engine.upsert_leads(leads)
    at = START - timedelta(days=2)
    engine.record_many(
        [
            # l1: 45 fit + 20 + 5 = 70; a pricing view (30) makes 100: a hand-off.
            Activity(lead_id="l1", kind="download", at=at, properties={"type": "whitepaper"}),
            Activity(lead_id="l1", kind="email_open", at=at + timedelta(hours=1)),
            Activity(lead_id="l4", kind="page_view", at=at, properties={"page": "product"}),
            Activity(lead_id="l5", kind="page_view", at=at, key="seen-before"),
            Activity(lead_id="l6", kind="page_view", at=START - timedelta(hours=1)),
        ]
    )


def _batch() -> list[Activity]:
    now = START - timedelta(minutes=30)
    product = {"page": "product"}
    return [
        Activity(lead_id="l1", kind="page_view", at=now, properties={"page": "pricing"}),
        Activity(lead_id="l2", kind="download", at=now, properties={"type": "whitepaper"}),
        Activity(lead_id="l3", kind="unsubscribed", at=now),
        Activity(lead_id="l4", kind="page_view", at=now, properties=product),
        Activity(lead_id="l5", kind="page_view", at=now, key="seen-before"),  # a duplicate
        Activity(lead_id="l6", kind="page_view", at=START - timedelta(days=1)),  # a late one
        Activity(lead_id="l4", kind="page_view", at=now + timedelta(minutes=1), properties=product),
        Activity(lead_id="l7", kind="email_open", at=now, key="shared-key"),
        Activity(lead_id="l8", kind="email_open", at=now, key="shared-key"),  # taken by l7's
        Activity(lead_id="l8", kind="seminar_attended", at=now),
        Activity(lead_id="l2", kind="email_open", at=now + timedelta(minutes=2)),
    ]


def _one_a_lead() -> list[Activity]:
    """A batch with an activity per lead: a database may store them all at once."""
    now = START - timedelta(minutes=30)
    return [
        Activity(lead_id="l1", kind="page_view", at=now, properties={"page": "pricing"}),
        Activity(lead_id="l2", kind="download", at=now, properties={"type": "whitepaper"}),
        Activity(lead_id="l3", kind="unsubscribed", at=now),
        Activity(lead_id="l5", kind="page_view", at=now, key="seen-before"),  # a duplicate
        Activity(lead_id="l6", kind="page_view", at=START - timedelta(days=1)),  # a late one
        Activity(lead_id="l7", kind="email_open", at=now, key="shared-key"),
        Activity(lead_id="l8", kind="email_open", at=now, key="shared-key"),  # taken by l7's
        Activity(lead_id="l4", kind="page_view", at=now, properties={"page": "product"}),
    ]


def _everything(storage: Storage, ids: Sequence[str]) -> list[Any]:
    return [
        (
            lead_id,
            _stored(storage, [lead_id]),
            list(storage.activities(lead_id)),
            storage.enrollments_of(lead_id),
            storage.handoffs_of(lead_id),
        )
        for lead_id in ids
    ] + [sorted((e.mail.key, e.status) for e in storage.outbox())]


@pytest.mark.parametrize("history", [False, True])
@pytest.mark.parametrize("one_a_lead", [False, True])
def test_record_many_reading_a_batch_ahead_gives_what_it_gives_activity_by_activity(
    make_store: Callable[[str], Storage], kind: str, history: bool, one_a_lead: bool
) -> None:
    ahead_store = make_store("ahead")
    by_one_store = make_store("by_one")
    ahead, world = _engine(ahead_store)
    by_one, _ = _engine(cast(Storage, _PerActivity(by_one_store)), world)
    _seed(ahead, world)
    _seed(by_one, world)
    if kind != "memory":  # a cold start: nothing of the leads in the store's memory
        ahead_store.close()
        by_one_store.close()
        ahead_store = make_store("ahead")
        by_one_store = make_store("by_one")
        ahead, _ = _engine(ahead_store, world)
        by_one, _ = _engine(cast(Storage, _PerActivity(by_one_store)), world)
    fetched: list[int] = []
    if kind != "memory":
        activities_of = ahead_store.activities_of  # type: ignore[attr-defined]

        def spy(ids: Any) -> Any:
            ids = list(ids)
            fetched.append(len(ids))
            return activities_of(ids)

        ahead_store.activities_of = spy  # type: ignore[attr-defined]
    batch = _one_a_lead if one_a_lead else _batch
    results: list[RecordResult] = ahead.record_many(batch(), history=history)
    expected = by_one.record_many(batch(), history=history)
    assert results == expected
    assert fetched == ([] if kind == "memory" else [8])
    if one_a_lead:
        assert [r.stored for r in results] == [True] * 3 + [False, True, True, False, True]
    else:
        stored = [True] * 4 + [False] + [True] * 3 + [False, True, True]
        assert [r.stored for r in results] == stored
    if not history:
        assert results[0].handoff is not None  # l1 handed off, its whitepaper scenario left
        assert [e.scenario for e in results[1].enrolled] == ["whitepaper follow-up"]
    ids = [f"l{n}" for n in range(1, 9)]
    assert _everything(ahead_store, ids) == _everything(by_one_store, ids)
    lead = ahead_store.get_lead("l3")
    assert lead is not None and lead.contactability.status.value == "unsubscribed"


def test_record_many_reads_the_enrolments_again_after_a_hand_off_left_them(
    make_store: Callable[[str], Storage], kind: str
) -> None:
    """The enrolments read ahead are stale once a hand-off has ended them: the goals and
    exits are checked against the store's."""
    asked = Exit(name="asked", when=activity("inquiry"))
    scenario = attrs.evolve(WHITEPAPER, exits=[*WHITEPAPER.exits, asked])
    policy = HandoffPolicy(definitions=[MqlDefinition(name="asked", when=did("inquiry"))])
    the_program = attrs.evolve(program(), scenarios=[scenario], handoff=policy)
    stores = {name: make_store(name) for name in ("ahead", "by_one")}
    engines = {}
    world = World(the_program=the_program)
    for name, storage in stores.items():
        wrapped = storage if name == "ahead" else cast(Storage, _PerActivity(storage))
        engine, _ = _engine(wrapped, world)
        engine.upsert_leads([_lead("l1"), _lead("l2")])
        engine.record_many(
            [
                Activity(
                    lead_id=lead_id, kind="download", at=START, properties={"type": "whitepaper"}
                )
                for lead_id in ("l1", "l2")
            ]
        )
        engines[name] = engine
    batch = [
        Activity(lead_id=lead_id, kind="inquiry", at=START + timedelta(minutes=1))
        for lead_id in ("l1", "l2")
    ]
    results = engines["ahead"].record_many(batch)
    assert results == engines["by_one"].record_many(batch)
    assert all(r.handoff is not None and r.ended == () for r in results)
    for lead_id in ("l1", "l2"):
        (ended,) = stores["ahead"].enrollments_of(lead_id)
        assert (ended.status.value, ended.reason) == ("exited", "handed to sales")
        assert [ended] == stores["by_one"].enrollments_of(lead_id)


def test_record_many_reading_ahead_refuses_a_batch_with_an_unknown_lead_whole(
    make_store: Callable[[str], Storage],
) -> None:
    storage = make_store("unknown")
    engine, world = _engine(storage)
    _seed(engine, world)
    batch = [
        Activity(lead_id="l2", kind="email_open", at=START),
        Activity(lead_id="nobody", kind="email_open", at=START),
    ]
    with pytest.raises(UnknownLead):
        engine.record_many(batch)
    assert list(storage.activities("l2")) == []


def test_import_activities_looks_leads_up_only_for_a_batch_with_an_unknown_lead(
    make_store: Callable[[str], Storage], tmp_path: Path
) -> None:
    storage = make_store("lookups")
    engine, world = _engine(storage)
    _seed(engine, world)
    looked_up: list[list[str]] = []
    get_leads = storage.get_leads

    def spy(ids: Any) -> Any:
        ids = list(ids)
        looked_up.append(ids)
        return get_leads(ids)

    storage.get_leads = spy  # type: ignore[method-assign]
    path = tmp_path / "activities.jsonl"
    rows = [("l1", "email_open"), ("ghost", "email_open"), ("l2", "email_open")]
    rows += [("l1", "email_click"), ("ghost", "page_view"), ("l3", "email_open")]
    path.write_text(
        "".join(
            f'{{"lead_id": "{lead_id}", "kind": "{kind}", "at": "2026-04-05T00:00:00Z"}}\n'
            for lead_id, kind in rows
        ),
        encoding="utf-8",
    )
    summary = import_activities(engine, path, batch_size=3)
    assert (summary.read, summary.imported, summary.skipped) == (6, 4, 0)
    assert [(e.line, e.column) for e in summary.errors] == [(2, "lead_id"), (5, "lead_id")]
    assert "ghost" in summary.errors[0].reason
    # A batch the store refuses for an unknown lead: its leads looked up in one call (the
    # engine's own reads ahead, on a database, are such calls too), never one by one.
    assert ["l1", "ghost", "l2"] in looked_up and ["l1", "ghost", "l3"] in looked_up
    assert all(len(ids) > 1 for ids in looked_up)
    # A batch whose leads are all stored is not looked up by the importer: only the
    # engine's reads ahead (none on the in-memory store) read its leads.
    looked_up.clear()
    path.write_text(
        '{"lead_id": "l1", "kind": "email_open", "at": "2026-04-06T00:00:00Z"}\n'
        '{"lead_id": "l2", "kind": "email_open", "at": "2026-04-06T00:00:00Z"}\n',
        encoding="utf-8",
    )
    assert import_activities(engine, path).imported == 2
    assert looked_up == ([] if getattr(storage, "activities_of", None) is None else [["l1", "l2"]])


class _RefusingActivities:
    """A store that refuses to write the activities whose keys are in ``refused`` (or all of
    them), as a database may refuse a row."""

    def __init__(self, inner: Storage, refused: set[str]) -> None:
        self._inner = inner
        self.refused = refused
        self.everything = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _check(self, activities: Sequence[Activity]) -> None:
        for one in activities:
            if self.everything or one.key in self.refused:
                raise StorageError(f"the store refused activity {one.key!r}")

    def add_activity(self, one: Activity) -> bool:
        self._check([one])
        return self._inner.add_activity(one)

    def add_activities(self, activities: Sequence[Activity]) -> list[bool]:
        self._check(activities)
        add_activities = getattr(self._inner, "add_activities", None)
        if add_activities is None:
            return [self._inner.add_activity(one) for one in activities]
        return cast(list[bool], add_activities(activities))


def _activities_file(path: Path, rows: Sequence[tuple[str, str]]) -> Path:
    path.write_text(
        "".join(
            f'{{"lead_id": "{lead_id}", "kind": "email_open", "key": "{key}", '
            f'"at": "2026-04-05T00:{n:02d}:00Z"}}\n'
            for n, (lead_id, key) in enumerate(rows)
        ),
        encoding="utf-8",
    )
    return path


def test_import_activities_reports_a_row_the_store_refuses_and_keeps_its_batch_mates(
    make_store: Callable[[str], Storage], tmp_path: Path
) -> None:
    storage = make_store("refusing_activities")
    refusing = _RefusingActivities(storage, {"k3"})
    engine, _ = _engine(cast(Storage, refusing))
    engine.upsert_leads([_lead(f"l{n}") for n in range(1, 5)])
    rows = [("l1", "k1"), ("l2", "k2"), ("l3", "k3"), ("l4", "k4")]
    rows += [("ghost", "k5"), ("l1", "k6"), ("l2", "k7")]
    summary = import_activities(engine, _activities_file(tmp_path / "a.jsonl", rows), batch_size=4)
    assert (summary.read, summary.imported, summary.skipped) == (7, 5, 0)
    assert [(e.line, e.column, e.reason) for e in summary.errors] == [
        (3, None, "not stored: the store refused activity 'k3'"),
        (5, "lead_id", summary.errors[1].reason),
    ]
    stored = sorted(a.key for n in range(1, 5) for a in storage.activities(f"l{n}"))
    assert stored == ["k1", "k2", "k4", "k6", "k7"]

    # A store that refuses every row: the import stops with its error, the batches before
    # kept; run again once the store is back, it resumes.
    more = [(f"l{1 + n % 4}", f"m{n}") for n in range(12)]
    path = _activities_file(tmp_path / "b.jsonl", more)
    calls = 0
    record_many = engine.record_many

    def failing_from_the_second_batch(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        refusing.everything = calls > 1
        return record_many(*args, **kwargs)

    engine.record_many = failing_from_the_second_batch  # type: ignore[method-assign]
    with pytest.raises(StorageError, match="refused activity 'm6'"):  # the third alone
        import_activities(engine, path, batch_size=4)
    assert sum(len(storage.activities(f"l{n}")) for n in range(1, 5)) == 5 + 4
    refusing.everything = False
    engine.record_many = record_many  # type: ignore[method-assign]
    again = import_activities(engine, path, batch_size=4)
    assert (again.imported, again.skipped, again.errors) == (8, 4, ())


def _history_rows() -> list[Activity]:
    """History of several leads, interleaved and out of id order, each lead's rows in time
    order; l8's row with ``shared-key`` comes before l7's, so it is the one stored."""
    at = START - timedelta(days=3)
    product = {"page": "product"}
    return [
        Activity(lead_id="l4", kind="page_view", at=at, properties=product),
        Activity(lead_id="l2", kind="download", at=at, properties={"type": "whitepaper"}),
        Activity(lead_id="l8", kind="email_open", at=at, key="shared-key"),
        Activity(lead_id="l1", kind="page_view", at=at, properties={"page": "pricing"}),
        Activity(lead_id="l4", kind="page_view", at=at + timedelta(hours=1), properties=product),
        Activity(lead_id="l3", kind="unsubscribed", at=at),
        Activity(lead_id="l7", kind="email_open", at=at, key="shared-key"),
        Activity(lead_id="l2", kind="email_open", at=at + timedelta(hours=2)),
        Activity(lead_id="l5", kind="page_view", at=at, key="seen-before"),  # a duplicate
        Activity(lead_id="l6", kind="page_view", at=at - timedelta(days=2)),  # a late one
        Activity(lead_id="l8", kind="seminar_attended", at=at + timedelta(hours=1)),
    ]


def _history_file(path: Path, rows: Sequence[Activity]) -> Path:
    import json

    path.write_text("".join(json.dumps(a.to_dict()) + "\n" for a in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("shared_key", [True, False])
@pytest.mark.parametrize("sorted_in", ["memory", "files"])
def test_history_recorded_by_lead_gives_what_the_file_order_gives(
    make_store: Callable[[str], Storage], tmp_path: Path, shared_key: bool, sorted_in: str
) -> None:
    """History rows are recorded sorted by lead (each lead's in the file's order), in
    memory or, past ``history_batch_size`` rows, through temporary files: the outcome is
    that of recording the rows one by one in the file's order. A history where two leads'
    rows share a key keeps the file's order (in files: the two rows in different parts)."""
    sorted_store, by_one_store = make_store("by_lead"), make_store("file_order")
    by_lead, world = _engine(sorted_store)
    by_one, _ = _engine(by_one_store, world)
    _seed(by_lead, world)
    _seed(by_one, world)
    rows = _history_rows()
    if not shared_key:
        rows = [a for a in rows if a.key != "shared-key"]
    recorded: list[str] = []
    record_many = by_lead.record_many

    def spy(activities: Any, *, history: bool = False) -> Any:
        batch = list(activities)
        recorded.extend(a.lead_id for a in batch)
        return record_many(batch, history=history)

    by_lead.record_many = spy  # type: ignore[method-assign]
    summary = import_activities(
        by_lead,
        _history_file(tmp_path / "history.jsonl", rows),
        history_before=START,
        history_batch_size=len(rows) if sorted_in == "memory" else 3,
    )
    for row in rows:
        by_one.record(row, history=True)
    assert summary.history == summary.imported == len(rows) - 1 - shared_key
    file_order = [a.lead_id for a in rows]
    assert recorded == (file_order if shared_key else sorted(file_order))
    ids = [f"l{n}" for n in range(1, 9)]
    assert _everything(sorted_store, ids) == _everything(by_one_store, ids)
    if shared_key:
        assert [a.kind for a in sorted_store.activities("l7")] == []
        assert "shared-key" in [a.key for a in sorted_store.activities("l8")]


def test_history_batches_of_a_few_rows_and_the_size_checked(tmp_path: Path) -> None:
    storage = open_storage("memory://")
    engine, world = _engine(storage)
    _seed(engine, world)
    rows = [a for a in _history_rows() if a.key != "shared-key"]
    path = _history_file(tmp_path / "history.jsonl", rows)
    batches: list[list[str]] = []
    record_many = engine.record_many

    def spy(activities: Any, *, history: bool = False) -> Any:
        batch = list(activities)
        batches.append([a.lead_id for a in batch])
        return record_many(batch, history=history)

    engine.record_many = spy  # type: ignore[method-assign]
    summary = import_activities(engine, path, history_before=START, history_batch_size=4)
    assert summary.history == len(rows) - 1
    file_order = [a.lead_id for a in rows]
    # Sorted as a whole (each lead's rows in the file's order), then 4 to a transaction.
    by_lead = sorted(file_order)
    assert batches == [by_lead[n : n + 4] for n in range(0, len(rows), 4)]
    for size in (0, -1):
        with pytest.raises(ValueError, match="history_batch_size must be at least 1"):
            import_activities(engine, path, history_batch_size=size)
