"""``run_due`` runs its claimed steps in batches: one transaction per batch, the leads and states
of the batch read at once, the writes of plain steps kept back and written together, a savepoint
for a run that writes more. On every store: a step that fails undoes only its own writes and the
others are kept; a batch that fails as a whole is run again step by step; a store without the
batch methods is run one step per transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from engine_fixtures import SENDER, TEMPLATES, World, program

from nurturekit.conditions import activity
from nurturekit.engine import Engine
from nurturekit.errors import StorageError
from nurturekit.lead import Lead
from nurturekit.messages import OutgoingMail
from nurturekit.ports import LeadState, Storage
from nurturekit.program import FrequencyCap, Policies, Program
from nurturekit.scenario import (
    AdjustScore,
    CallHook,
    Enrollment,
    EnrollmentStatus,
    HandOff,
    OnActivity,
    Scenario,
    SendMail,
    SetStage,
)
from nurturekit.storage import open_storage
from nurturekit.storage.memory import InMemoryStorage
from nurturekit.templates import Template

PRICING = Scenario(
    name="pricing material",
    trigger=OnActivity(when=activity("page_view", page="pricing")),
    mail_type="trigger",
    steps=[
        SendMail(id="pricing", template="pricing", next="sync"),
        CallHook(id="sync", hook="sync"),
    ],
)
LEADS = ["l1", "l2", "l3", "l4"]


def _engine(
    world: World, *scenarios: Scenario, failing: set[str] | None = None, **policies: Any
) -> Engine:
    """An engine over ``world``'s store with ``scenarios`` added; its CRM hook fails for the
    leads in ``failing`` (which the test may change)."""
    base = program()
    refused = failing if failing is not None else set()

    def sync(lead: Lead, enrollment: Enrollment) -> None:
        if lead.id in refused:
            raise RuntimeError(f"CRM refused {lead.id}")

    return Engine(
        Program(
            scoring=base.scoring,
            stages=base.stages,
            scenarios=[*base.scenarios, *scenarios],
            templates=[
                *TEMPLATES,
                Template(name="pricing", subject="料金表", text="{{ name }}様\n料金表"),
            ],
            sender=SENDER,
            hooks={"sync": sync},
            policies=Policies(**policies),
        ),
        world.storage,
        world.mailer,
        links=world.links,
        clock=world.clock,
    )


def _world(storage: Storage, failing: set[str]) -> World:
    """Leads l1…l4 with a due pricing step each; the CRM hook fails for the leads in
    ``failing`` (after their mail was written to the outbox)."""
    world = World(storage=storage)
    world.engine = _engine(world, PRICING, failing=failing)
    for lead_id in LEADS:
        world.lead(lead_id)
        world.did("page_view", lead_id, page="pricing")
    return world


def _pricing(storage: Storage, lead_id: str, scenario: str = PRICING.name) -> Enrollment:
    (enrollment,) = [e for e in storage.enrollments_of(lead_id) if e.scenario == scenario]
    return enrollment


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "memory":
        yield InMemoryStorage()
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'nurture.db'}"
    else:
        dsn = request.getfixturevalue("postgres_dsn")
        schema = request.getfixturevalue("pg_schema")
        url = f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"
    storage = open_storage(url)
    yield storage
    getattr(storage, "close", lambda: None)()


def test_a_failing_step_undoes_only_its_own_writes_and_the_batch_keeps_the_others(
    store: Storage,
) -> None:
    failing = {"l2"}
    world = _world(store, failing)
    report = world.engine.run_due()
    assert report.claimed == 4
    assert report.failures == (("pricing material/l2/1", "RuntimeError: CRM refused l2"),)
    # l2's mail was written to the outbox before its hook failed: that write is undone too.
    assert sorted(m.lead_id for m in world.mailer.outbox) == ["l1", "l3", "l4"]
    assert sorted(e.mail.lead_id for e in store.outbox()) == ["l1", "l3", "l4"]
    for lead_id in ("l1", "l3", "l4"):
        assert _pricing(store, lead_id).status is EnrollmentStatus.COMPLETED
    failed = _pricing(store, "l2")
    assert (failed.status, failed.step, failed.attempt) == (EnrollmentStatus.ACTIVE, "pricing", 2)
    # Retried after its back-off, it goes through once the hook does.
    failing.clear()
    world.advance(minutes=5)
    assert sorted(m.lead_id for m in world.mailer.outbox) == LEADS
    assert _pricing(store, "l2").status is EnrollmentStatus.COMPLETED


def test_a_failing_run_that_wrote_more_than_sends_is_undone_in_its_savepoint(
    store: Storage,
) -> None:
    """A run that adjusts the score and moves the stage before its hook fails: its activity,
    state and send are undone; the other leads' runs, and their writes, are kept."""
    flow = Scenario(
        name="hot lead",
        trigger=OnActivity(when=activity("page_view", page="pricing")),
        steps=[
            SendMail(id="pricing", template="pricing", next="bonus"),
            AdjustScore(id="bonus", points=25, reason="asked for pricing", next="stage"),
            SetStage(id="stage", stage="consideration", reason="pricing", next="sync"),
            CallHook(id="sync", hook="sync"),
        ],
    )
    world = World(storage=store)
    failing = {"l2"}
    world.engine = _engine(world, flow, failing=failing)
    for lead_id in LEADS:
        world.lead(lead_id)
        world.did("page_view", lead_id, page="pricing")
    report = world.engine.run_due()
    assert report.failures == (("hot lead/l2/1", "RuntimeError: CRM refused l2"),)
    assert sorted(m.lead_id for m in world.mailer.outbox) == ["l1", "l3", "l4"]
    for lead_id in LEADS:
        state = store.get_state(lead_id)
        assert state is not None
        adjusted = [a for a in store.activities(lead_id) if a.kind == "score_adjusted"]
        if lead_id == "l2":
            assert adjusted == [] and state.moves[-1].target != "consideration"
            assert _pricing(store, lead_id, "hot lead").step == "pricing"
        else:
            assert len(adjusted) == 1 and state.moves[-1].target == "consideration"
            assert _pricing(store, lead_id, "hot lead").status is EnrollmentStatus.COMPLETED
    failing.clear()
    world.advance(minutes=5)
    assert sorted(m.lead_id for m in world.mailer.outbox) == LEADS


def test_the_frequency_cap_counts_a_send_of_the_same_run_not_written_yet(store: Storage) -> None:
    double = Scenario(
        name="double",
        trigger=OnActivity(when=activity("page_view", page="pricing")),
        steps=[
            SendMail(id="first", template="pricing", next="second"),
            SendMail(id="second", template="pricing"),
        ],
    )
    world = World(storage=store)
    world.engine = _engine(
        world, double, frequency_cap=FrequencyCap(times=1, per=timedelta(days=1))
    )
    world.lead("l1")
    world.did("page_view", "l1", page="pricing")
    world.engine.run_due()
    assert [m.step for m in world.mailer.outbox] == ["first"]
    held = _pricing(store, "l1", "double")
    assert (held.step, held.due_at) == ("second", world.clock.now() + timedelta(days=1))


class _FailingWrite(InMemoryStorage):
    """A store whose first batch write fails, failing the batch's transaction."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = 1

    def write_steps(self, mails: Sequence[OutgoingMail], enrollments: Sequence[Enrollment]) -> None:
        if self.fail:
            self.fail -= 1
            raise StorageError("the database went away")
        super().write_steps(mails, enrollments)


def test_a_batch_whose_writes_fail_runs_again_step_by_step() -> None:
    store = _FailingWrite()
    world = _world(store, failing=set())
    report = world.engine.run_due()
    assert store.fail == 0
    assert (report.claimed, report.steps, report.sent, report.failures) == (4, 8, 4, ())
    assert sorted(m.lead_id for m in world.mailer.outbox) == LEADS
    assert all(_pricing(store, lead_id).status is EnrollmentStatus.COMPLETED for lead_id in LEADS)


class _FailingBatchRead(InMemoryStorage):
    """A store whose first batch read of lead states fails, failing the batch's transaction."""

    def __init__(self) -> None:
        super().__init__()
        self.fail = 1

    def get_states(self, lead_ids: Iterable[str]) -> dict[str, LeadState]:
        if self.fail:
            self.fail -= 1
            raise StorageError("the database went away")
        return super().get_states(lead_ids)


def test_a_batch_that_fails_as_a_whole_runs_again_step_by_step() -> None:
    store = _FailingBatchRead()
    world = _world(store, failing=set())
    report = world.engine.run_due()
    assert store.fail == 0
    assert (report.claimed, report.steps, report.sent, report.failures) == (4, 8, 4, ())
    assert sorted(m.lead_id for m in world.mailer.outbox) == LEADS


def test_a_second_step_of_a_lead_in_the_batch_sees_what_the_first_one_wrote(
    store: Storage,
) -> None:
    """Two enrolments of one lead are due in one batch: the first hands the lead to sales, so
    the second, though the batch read the lead's state before either ran, sends nothing."""
    world = World(storage=store)
    handing = Scenario(
        name="a hand-over",
        trigger=OnActivity(when=activity("never")),
        steps=[HandOff(id="sales")],
    )
    mailing = Scenario(
        name="b pricing",
        trigger=OnActivity(when=activity("never")),
        steps=[SendMail(id="pricing", template="pricing")],
    )
    world.engine = _engine(world, handing, mailing)
    world.lead("l1")
    now = world.clock.now()
    for scenario in (handing, mailing):
        store.put_enrollment(
            Enrollment(
                id=f"{scenario.name}/l1/1",
                scenario=scenario.name,
                lead_id="l1",
                number=1,
                status=EnrollmentStatus.ACTIVE,
                step=scenario.steps[0].id,
                due_at=now,
                entered_at=now,
            )
        )
    report = world.engine.run_due()
    assert (report.claimed, report.failures, report.sent) == (2, (), 0)
    assert world.mailer.outbox == []
    ended = _pricing(store, "l1", "b pricing")
    assert (ended.status, ended.reason) == (EnrollmentStatus.EXITED, "suppressed: owned by sales")


def test_delivery_claims_again_while_claims_come_back_full(
    store: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sends are claimed a few at a time; a full claim is followed by another, a short one
    ends the delivery (what is written after it waits for the next run)."""
    monkeypatch.setattr("nurturekit.engine.delivery._SENDS_PER_CLAIM", 2)
    world = _world(store, failing=set())
    claims: list[int] = []
    claim_mail = store.claim_mail

    def counting(*args: Any) -> list[OutgoingMail]:
        claimed = claim_mail(*args)
        claims.append(len(claimed))
        return claimed

    monkeypatch.setattr(store, "claim_mail", counting)
    report = world.engine.run_due()
    assert report.sent == 4
    assert sorted(m.lead_id for m in world.mailer.outbox) == LEADS
    assert claims == [0, 2, 2, 0]  # before the steps; then two full claims and a last, empty one


def test_a_batch_ends_once_fifty_of_its_runs_went_on_in_savepoints(
    store: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of plain steps goes up to 250 in one transaction; runs that write more each
    take a savepoint, and a batch ends after 50 of them (PostgreSQL keeps at most 64
    subtransactions of a transaction in its cache): the rest run in the next one."""
    bonus = Scenario(
        name="bonus",
        trigger=OnActivity(when=activity("page_view", page="pricing")),
        steps=[AdjustScore(id="bonus", points=5, reason="asked for pricing")],
    )
    world = World(storage=store)
    world.engine = _engine(world, bonus)
    leads = [f"l{n}" for n in range(120)]
    for lead_id in leads:
        world.lead(lead_id)
        world.did("page_view", lead_id, page="pricing")
    depth = 0
    savepoints: list[int] = []
    transaction, savepoint = store.transaction, store.savepoint

    @contextmanager
    def counted_transaction() -> Iterator[None]:
        nonlocal depth
        depth += 1
        if depth == 1:
            savepoints.append(0)
        try:
            with transaction():
                yield
        finally:
            depth -= 1

    @contextmanager
    def counted_savepoint() -> Iterator[None]:
        savepoints[-1] += 1
        with savepoint():
            yield

    monkeypatch.setattr(store, "transaction", counted_transaction)
    monkeypatch.setattr(store, "savepoint", counted_savepoint)
    report = world.engine.run_due()
    assert (report.claimed, report.failures) == (120, ())
    assert max(savepoints) == 50
    assert sum(savepoints) >= 120
    for lead_id in leads:
        adjusted = [a for a in store.activities(lead_id) if a.kind == "score_adjusted"]
        assert len(adjusted) == 1
        assert _pricing(store, lead_id, "bonus").status is EnrollmentStatus.COMPLETED


def test_up_to_250_plain_steps_are_written_together(
    store: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(storage=store)
    world.engine = _engine(world, PRICING)
    leads = [f"l{n}" for n in range(260)]
    for lead_id in leads:
        world.lead(lead_id)
        world.did("page_view", lead_id, page="pricing")
    written: list[int] = []
    write_steps = store.write_steps

    def counting(mails: Sequence[OutgoingMail], enrollments: Sequence[Enrollment]) -> None:
        written.append(len(enrollments))
        write_steps(mails, enrollments)

    monkeypatch.setattr(store, "write_steps", counting)
    report = world.engine.run_due()
    assert (report.claimed, report.sent, report.failures) == (260, 260, ())
    assert written == [250, 10]
