"""Seed 001's SLA example end to end, on memory, SQLite and PostgreSQL.

A lead qualifies by the score + pricing + size rule → the sink is told → sales calls within
24 h → accepts → SQL. Another is never called → its breach is escalated exactly once. Another
is "not now" → recycled into nurture, and later qualifies again.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from engine_fixtures import DORMANT, SEMINAR, SENDER, TEMPLATES, WHITEPAPER, World

from nurturekit.conditions import attr, did, score
from nurturekit.errors import NoOpenHandoff
from nurturekit.handoff import (
    Assignment,
    AssignmentRule,
    HandoffPolicy,
    HandoffStatus,
    MqlDefinition,
    Sla,
    handoff_report,
)
from nurturekit.ports import Storage
from nurturekit.presets import awareness_interest_consideration, seed002_scoring_model
from nurturekit.program import Program
from nurturekit.scenario import EnrollmentStatus, Scenario, SendMail, Wait
from nurturekit.sinks import ListSink
from nurturekit.storage import open_storage

RECYCLED = Scenario(
    name="recycled nurture",
    trigger=DORMANT.trigger,
    kpis=("requalified",),
    goal=did("inquiry"),
    silenced={"NK103"},
    steps=[
        Wait(id="rest", duration=timedelta(days=30), next="case"),
        SendMail(id="case", template="wp_case"),
    ],
)
POLICY = HandoffPolicy(
    definitions=[
        MqlDefinition(
            name="score + pricing + size",
            when=score().at_least(100)
            & did("page_view", page="pricing")
            & attr("employees").at_least(100),
        ),
        MqlDefinition(name="score + seminar", when=score().at_least(80) & did("seminar_attended")),
    ],
    assignment=Assignment(
        rules=[AssignmentRule(when=attr("region").eq("kansai"), owner="nakamura")],
        fallback="queue:inside-sales",
    ),
    sla=Sla(first_contact=timedelta(hours=24)),
    recycle_into="recycled nurture",
    reset_engagement_on_recycle=True,
)


def the_program() -> Program:
    return Program(
        scoring=seed002_scoring_model(),
        stages=awareness_interest_consideration(),
        scenarios=[WHITEPAPER, SEMINAR, DORMANT, RECYCLED],
        templates=TEMPLATES,
        sender=SENDER,
        handoff=POLICY,
    )


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "memory":
        url = "memory://"
    elif request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'nurture.db'}"
    else:
        dsn = request.getfixturevalue("postgres_dsn")
        schema = request.getfixturevalue("pg_schema")
        url = f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"
    store = open_storage(url)
    yield store
    getattr(store, "close", lambda: None)()


def qualify(world: World, lead_id: str, **attributes: Any) -> None:
    attributes.setdefault("job_level", "department_head")
    attributes.setdefault("industry", "manufacturing")
    attributes.setdefault("employees", 120)
    world.lead(lead_id, **attributes)
    world.did("download", lead_id=lead_id, type="whitepaper", n=1)
    world.did("download", lead_id=lead_id, type="whitepaper", n=2)
    world.did("page_view", lead_id=lead_id, page="pricing")


def test_seed_001_sla_example(storage: Storage) -> None:
    sink = ListSink()
    world = World(storage, the_program(), sink)
    start = world.clock.now()

    # 1. Qualifies by score + pricing + size → the sink is told at once.
    qualify(world, "accepted")
    (handoff,) = storage.handoffs_of("accepted")
    assert handoff.definition == "score + pricing + size"
    assert handoff.score == 115
    assert "✓ score is at least 100 (it is 115)" in handoff.explanation
    assert handoff.owner == "queue:inside-sales"
    assert handoff.deadline == start + timedelta(hours=24)
    assert [(e.kind, e.handoff.id) for e in sink.events] == [("handoff", handoff.id)]
    # Handed to sales: out of the whitepaper follow-up, no marketing mail.
    assert {e.status for e in storage.enrollments_of("accepted")} == {EnrollmentStatus.EXITED}
    world.engine.run_due()
    assert world.sent("accepted") == []

    # 2. A second lead, in Kansai, is never called.
    qualify(world, "ignored", region="kansai")
    (ignored,) = storage.handoffs_of("ignored")
    assert ignored.owner == "nakamura"

    # A third says "not now".
    qualify(world, "later")

    world.clock.advance(timedelta(hours=3))
    world.engine.feedback("accepted", "contacted", note="called, interested")
    world.engine.feedback("later", "contacted")
    world.clock.advance(timedelta(hours=1))
    world.engine.feedback("later", "not_now", note="budget next fiscal year")

    world.clock.advance(timedelta(hours=20, minutes=1))  # 24 h and a minute after hand-off
    report = world.engine.run_due()
    assert report.escalated == 1
    world.clock.advance(timedelta(hours=1))
    assert world.engine.run_due().escalated == 0  # exactly once
    breaches = [e for e in sink.events if e.kind == "sla_breach"]
    assert [e.handoff.id for e in breaches] == [ignored.id]
    assert [a.kind for a in storage.activities("ignored")].count("sla_breached") == 1

    world.engine.feedback("accepted", "accepted")
    (accepted,) = storage.handoffs_of("accepted")
    assert accepted.status is HandoffStatus.ACCEPTED
    assert accepted.contacted_at == start + timedelta(hours=3)
    assert "sales_accepted" in [a.kind for a in storage.activities("accepted")]

    # 3. Recycled: back in nurture, and free to qualify again.
    (recycled,) = storage.handoffs_of("later")
    assert recycled.status is HandoffStatus.RECYCLED
    assert recycled.outcome_note == "budget next fiscal year"
    nurture = [e for e in storage.enrollments_of("later") if e.scenario == "recycled nurture"]
    assert [e.status for e in nurture] == [EnrollmentStatus.ACTIVE]
    world.clock.advance(timedelta(days=2))
    world.did("seminar_attended", lead_id="later")
    assert [h.definition for h in storage.handoffs_of("later")] == [
        "score + pricing + size",
        "score + seminar",
    ]
    assert len(sink.events) == 5  # three hand-offs, one breach, one re-qualification

    figures = handoff_report(storage.handoffs(), world.clock.now())
    assert figures.mqls == 4
    assert figures.sqls == 1


def test_a_lead_is_handed_off_once_per_qualification(storage: Storage) -> None:
    world = World(storage, the_program(), ListSink())
    qualify(world, "l1")
    world.did("page_view", lead_id="l1", page="pricing", again=1)
    world.did("seminar_attended", lead_id="l1")
    assert len(storage.handoffs_of("l1")) == 1


def test_a_failing_sink_loses_nothing(storage: Storage) -> None:
    sink = ListSink(fail_times=2)
    world = World(storage, the_program(), sink)
    qualify(world, "l1")
    assert sink.events == []
    (handoff,) = storage.handoffs_of("l1")
    assert handoff.notified_at is None
    # A failed notice is tried again once its claim has run out (the engine's lease).
    world.engine.run_due()
    assert sink.events == []
    world.clock.advance(world.engine.lease + timedelta(seconds=1))
    world.engine.run_due()
    assert sink.events == []
    world.clock.advance(world.engine.lease + timedelta(seconds=1))
    world.engine.run_due()
    assert [e.kind for e in sink.events] == ["handoff"]
    (handoff,) = storage.handoffs_of("l1")
    assert handoff.notified_at is not None and handoff.notify_attempts == 2


def test_not_a_fit_stops_marketing_mail_and_does_not_bounce_back(storage: Storage) -> None:
    world = World(storage, the_program(), ListSink())
    qualify(world, "l1")
    world.engine.feedback("l1", "not_a_fit", note="student")
    world.did("seminar_registered", lead_id="l1")
    world.engine.run_due()
    world.clock.advance(timedelta(days=3))
    world.engine.run_due()
    assert world.sent("l1") == []
    with pytest.raises(NoOpenHandoff):
        world.engine.feedback("l1", "accepted")
    # The definition still holds, but nothing new qualified the lead: no second hand-off.
    world.did("seminar_attended", lead_id="l1")
    assert [h.status for h in storage.handoffs_of("l1")] == [HandoffStatus.DISQUALIFIED]


def test_program_refuses_an_unknown_recycle_scenario() -> None:
    from nurturekit.errors import InvalidProgram

    with pytest.raises(InvalidProgram, match="recycle"):
        attrs.evolve(the_program(), handoff=attrs.evolve(POLICY, recycle_into="nowhere"))


def test_with_the_lifecycle_machine_an_accepted_lead_becomes_an_sql(storage: Storage) -> None:
    from nurturekit.presets import lifecycle

    program = attrs.evolve(the_program(), stages=lifecycle())
    world = World(storage, program, ListSink())
    qualify(world, "won")
    state = storage.get_state("won")
    assert state is not None and state.moves[-1].target == "mql"  # score level MQL reached
    world.engine.feedback("won", "contacted")
    world.engine.feedback("won", "accepted", note="budget approved")
    state = storage.get_state("won")
    assert state is not None
    assert (state.moves[-1].target, state.moves[-1].reason) == (
        "sql",
        "sales: accepted (budget approved)",
    )
    qualify(world, "later")
    world.engine.feedback("later", "not_now")
    state = storage.get_state("later")
    assert state is not None and state.moves[-1].target == "recycled"


def test_the_policy_names_the_stage_each_outcome_moves_to(storage: Storage) -> None:
    from nurturekit.presets import lifecycle

    policy = attrs.evolve(
        POLICY, stage_on_outcome={"accepted": "opportunity", "not_a_fit": "recycled"}
    )
    program = attrs.evolve(the_program(), stages=lifecycle(), handoff=policy)
    world = World(storage, program, ListSink())
    qualify(world, "won")
    world.engine.feedback("won", "contacted")
    world.engine.feedback("won", "accepted")
    state = storage.get_state("won")
    assert state is not None and state.moves[-1].target == "mql"  # mql → opportunity: not allowed
    qualify(world, "later")
    world.engine.feedback("later", "not_now")
    state = storage.get_state("later")
    assert state is not None and state.moves[-1].target == "mql"  # no stage for not now
    qualify(world, "nofit")
    world.engine.feedback("nofit", "not_a_fit")
    state = storage.get_state("nofit")
    assert state is not None and state.moves[-1].target == "recycled"


def test_a_stage_for_an_unknown_outcome_is_refused_naming_the_outcomes() -> None:
    from nurturekit.errors import InvalidInput

    with pytest.raises(InvalidInput, match="'won' is not an outcome; the outcomes are 'contacted'"):
        attrs.evolve(POLICY, stage_on_outcome={"won": "sql"})
