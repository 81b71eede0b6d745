"""Buying stages: guarded moves with reasons, moves back by hand, dormancy, and the presets."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nurturekit.activity import Activity
from nurturekit.conditions import View, always, did, in_stage, never
from nurturekit.errors import (
    InvalidCondition,
    InvalidStageMachine,
    NaiveDatetime,
    TransitionNotAllowed,
    UnknownStage,
)
from nurturekit.lead import Lead
from nurturekit.stages import (
    Dormancy,
    Stage,
    StageHistory,
    StageMachine,
    StageMove,
    Transition,
    awareness_interest_consideration,
    buying_process,
    lifecycle,
)

UTC = timezone.utc
T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
ANN = Lead(id="ann", email="ann@example.com")


@attrs.frozen(kw_only=True)
class Points:
    """A stand-in for a scoring model's score: what score and level guards read."""

    total: int = 0
    fit: int = 0
    engagement: int = 0
    levels: tuple[str, ...] = ()
    temperature: str | None = None


def did_(kind: str, at: datetime, **properties: Any) -> Activity:
    return Activity(lead_id="ann", kind=kind, at=at, properties=properties)


def view(
    now: datetime,
    history: Sequence[Activity] = (),
    *,
    current: Activity | None = None,
    points: Points | None = None,
) -> View:
    return View(lead=ANN, now=now, activities=tuple(history), activity=current, score=points)


def days(n: float) -> timedelta:
    return timedelta(days=n)


# --------------------------------------------------------------------------- seed 002's stages


def test_a_lead_in_awareness_who_downloads_a_whitepaper_moves_to_interest_and_says_why() -> None:
    history = StageHistory.start(awareness_interest_consideration(), "ann", T0)
    download = did_("download", T0 + days(1), type="whitepaper")

    moves = history.advance(view(T0 + days(1), [download], current=download))

    assert [(m.source, m.target) for m in moves] == [("awareness", "interest")]
    move = moves[0]
    assert history.current == "interest"
    assert move.lead_id == "ann"
    assert move.at == T0 + days(1)
    assert not move.manual
    assert "✓ did download at least once (found 1)" in move.reason
    assert "✗ score is at least 50 (no score yet)" in move.reason


def test_a_lead_reaching_50_points_moves_to_interest_on_score_alone() -> None:
    machine = awareness_interest_consideration()
    moves = machine.advance("awareness", view(T0, points=Points(total=55)))
    assert [m.target for m in moves] == ["interest"]
    assert "✓ score is at least 50 (it is 55)" in moves[0].reason


def test_a_lead_who_visited_pricing_twice_crosses_two_stages_on_one_activity() -> None:
    # Seed 002: a pricing visit is worth 30 points; two of them pass the 50-point interest line
    # and the second visit also meets "visited pricing several times".
    history = StageHistory.start(awareness_interest_consideration(), "ann", T0)
    first = did_("page_view", T0 + days(1), page="pricing")
    history.advance(view(T0 + days(1), [first], current=first, points=Points(total=30)))
    assert history.current == "awareness"

    second = did_("page_view", T0 + days(2), page="pricing")
    moves = history.advance(
        view(T0 + days(2), [first, second], current=second, points=Points(total=60))
    )

    assert [(m.source, m.target) for m in moves] == [
        ("awareness", "interest"),
        ("interest", "consideration"),
    ]
    assert "score is at least 50 (it is 60)" in moves[0].reason
    assert "did page_view with page=pricing at least twice (found 2)" in moves[1].reason
    assert history.current == "consideration"


def test_nothing_moves_when_no_guard_holds() -> None:
    history = StageHistory.start(awareness_interest_consideration(), "ann", T0)
    blog = did_("page_view", T0 + days(1), page="blog")
    assert history.advance(view(T0 + days(1), [blog], current=blog, points=Points(total=5))) == []
    assert history.current == "awareness"
    assert len(history.moves) == 1


def test_after_90_days_without_activity_the_lead_goes_dormant_and_comes_back_on_the_next() -> None:
    history = StageHistory.start(awareness_interest_consideration(), "ann", T0)
    download = did_("download", T0, type="whitepaper")
    history.advance(view(T0, [download], current=download))
    assert history.current == "interest"

    assert history.advance(view(T0 + days(89), [download])) == []
    moves = history.advance(view(T0 + days(90), [download]))
    assert [(m.source, m.target) for m in moves] == [("interest", "dormant")]
    assert "✗ did any activity at least once within 90 days (found 0)" in moves[0].reason

    click = did_("email_click", T0 + days(120), mail="industry-trends")
    moves = history.advance(view(T0 + days(120), [download, click], current=click))
    # Back to awareness, and on to interest at once: the earlier download still counts.
    assert [(m.source, m.target) for m in moves] == [
        ("dormant", "awareness"),
        ("awareness", "interest"),
    ]
    assert "✓ this activity is any activity (it is email_click" in moves[0].reason


def test_a_new_lead_with_no_activity_is_not_dormant_until_90_days_have_passed() -> None:
    history = StageHistory.start(awareness_interest_consideration(), "ann", T0)
    assert history.advance(view(T0)) == []
    assert history.advance(view(T0 + days(89))) == []
    moves = history.advance(view(T0 + days(90)))
    assert [m.target for m in moves] == ["dormant"]
    assert (
        "✓ in the current stage for at least 90 days (in awareness since 2026-04-01 09:00 UTC)"
        in moves[0].reason
    )


def test_a_lead_moved_back_by_hand_after_a_long_silence_is_not_dormant_at_once() -> None:
    history = StageHistory.start(awareness_interest_consideration(), "ann", T0)
    blog = did_("page_view", T0, page="blog")
    history.move("interest", T0 + days(1), "asked for a demo at the trade show")
    history.move("awareness", T0 + days(60), "wrong department; nurture the right one")
    assert history.advance(view(T0 + days(100), [blog])) == []
    assert [m.target for m in history.advance(view(T0 + days(150), [blog]))] == ["dormant"]


def test_seed_002_guards_read_the_whole_record_so_a_lead_sent_back_still_qualifying_returns() -> (
    None
):
    history = StageHistory.start(awareness_interest_consideration(), "ann", T0)
    download = did_("download", T0, type="whitepaper")
    history.advance(view(T0, [download], current=download))
    history.move("awareness", T0 + days(1), "the download was for a colleague")
    open_ = did_("email_open", T0 + days(2))
    moves = history.advance(view(T0 + days(2), [download, open_], current=open_))
    assert [(m.source, m.target) for m in moves] == [("awareness", "interest")]
    assert "did download at least once (found 1)" in moves[0].reason


def test_a_lead_that_moved_in_this_call_does_not_go_dormant_in_the_same_call() -> None:
    machine = awareness_interest_consideration()
    old = did_("download", T0 - days(400))
    moves = machine.advance("awareness", view(T0, [old]), entered_at=T0 - days(400))
    assert [m.target for m in moves] == ["interest"]


def test_a_dormant_lead_stays_dormant_while_nothing_happens() -> None:
    machine = awareness_interest_consideration()
    assert machine.advance("dormant", view(T0 + days(400))) == []


def test_sales_sends_a_lead_back_from_consideration_to_interest_with_a_reason() -> None:
    history = StageHistory.start(awareness_interest_consideration(), "ann", T0)
    history.advance(view(T0, points=Points(total=85)))
    assert history.current == "consideration"
    move = history.move("interest", T0 + days(3), "budget frozen until April")
    assert (move.source, move.target, move.manual) == ("consideration", "interest", True)
    assert move.reason == "budget frozen until April"
    assert history.current == "interest"


# --------------------------------------------------------------------------- seed 003's phases


def test_a_deal_regresses_from_consideration_to_comparison_by_hand_with_the_callers_reason() -> (
    None
):
    history = StageHistory.start(buying_process(), "ann", T0)
    acts: list[Activity] = []
    for at, kind, props in [
        (T0 + days(1), "download", {"type": "whitepaper"}),
        (T0 + days(10), "seminar_attended", {"seminar": "case-studies"}),
        (T0 + days(20), "meeting_booked", {}),
    ]:
        acts.append(did_(kind, at, **props))
        history.advance(view(at, acts, current=acts[-1]))
    assert [m.target for m in history.moves] == [
        "awareness",
        "information_gathering",
        "comparison",
        "consideration",
    ]

    reason = "a competitor launched a new product; they are comparing again"
    move = history.move("comparison", T0 + days(30), reason)

    assert history.current == "comparison"
    assert move == StageMove(
        lead_id="ann",
        source="consideration",
        target="comparison",
        at=T0 + days(30),
        reason=reason,
        manual=True,
    )
    # The regression holds on ordinary activity; a new meeting request moves the deal on again.
    acts.append(did_("email_open", T0 + days(31)))
    assert history.advance(view(T0 + days(31), acts, current=acts[-1])) == []
    acts.append(did_("meeting_booked", T0 + days(45)))
    moves = history.advance(view(T0 + days(45), acts, current=acts[-1]))
    assert [(m.source, m.target) for m in moves] == [("comparison", "consideration")]
    assert "this activity is inquiry or meeting_booked (it is meeting_booked)" in moves[0].reason


def test_one_pricing_visit_after_a_download_crosses_two_phases() -> None:
    machine = buying_process()
    download = did_("download", T0, type="whitepaper")
    pricing = did_("page_view", T0 + days(3), page="pricing")
    moves = machine.advance("awareness", view(T0 + days(3), [download, pricing], current=pricing))
    assert [m.target for m in moves] == ["information_gathering", "comparison"]


def test_pricing_or_comparison_pages_move_information_gathering_to_comparison() -> None:
    machine = buying_process()
    for page in ("pricing", "comparison"):
        visit = did_("page_view", T0, page=page)
        moves = machine.advance("information_gathering", view(T0, [visit], current=visit))
        assert [m.target for m in moves] == ["comparison"]


def test_the_decision_is_made_by_sales_not_by_a_guard() -> None:
    machine = buying_process()
    inquiry = did_("inquiry", T0)
    assert machine.advance("consideration", view(T0, [inquiry], current=inquiry)) == []
    move = machine.move("consideration", "decision", T0, "chose us over two competitors", "ann")
    assert (move.target, move.manual) == ("decision", True)


def test_a_customer_who_downloads_new_material_starts_an_upsell_cycle() -> None:
    machine = buying_process()
    old = did_("download", T0 - days(200), type="whitepaper")
    mail = did_("email_open", T0)
    assert machine.advance("repeat", view(T0, [old, mail], current=mail)) == []

    new = did_("download", T0 + days(1), type="case-study")
    moves = machine.advance("repeat", view(T0 + days(1), [old, mail, new], current=new))
    assert [m.target for m in moves] == ["information_gathering"]


def test_a_stalled_journey_resumes_information_gathering_on_the_next_activity() -> None:
    history = StageHistory.start(buying_process(), "ann", T0)
    download = did_("download", T0)
    history.advance(view(T0, [download], current=download))
    assert history.advance(view(T0 + days(119), [download])) == []
    assert [m.target for m in history.advance(view(T0 + days(120), [download]))] == ["stalled"]

    visit = did_("page_view", T0 + days(150), page="blog")
    moves = history.advance(view(T0 + days(150), [download, visit], current=visit))
    assert [m.target for m in moves] == ["information_gathering"]


# --------------------------------------------------------------------------- lifecycle


def test_a_lead_reaching_the_mql_level_becomes_an_mql_and_sales_takes_it_from_there() -> None:
    history = StageHistory.start(lifecycle(), "ann", T0)
    assert history.advance(view(T0, points=Points(total=80))) == []

    moves = history.advance(view(T0 + days(1), points=Points(total=105, levels=("MQL",))))
    assert [(m.source, m.target) for m in moves] == [("lead", "mql")]
    assert "score has reached level 'MQL' (score 105, levels reached: MQL)" in moves[0].reason

    history.move("sql", T0 + days(2), "first call: budget and timing confirmed")
    history.move("opportunity", T0 + days(9), "demo done, proposal requested")
    history.move("customer", T0 + days(40), "contract signed")
    assert history.current == "customer"
    assert history.advance(view(T0 + days(41), points=Points(total=300, levels=("MQL",)))) == []
    with pytest.raises(TransitionNotAllowed, match="it allows: none"):
        history.move("recycled", T0 + days(42), "should not happen")


def test_a_recycled_lead_becomes_an_mql_again_when_it_reaches_the_level_again() -> None:
    history = StageHistory.start(lifecycle(), "ann", T0)
    history.advance(view(T0, points=Points(total=100, levels=("MQL",))))
    history.move("recycled", T0 + days(1), "not now: re-evaluating next fiscal year")
    assert history.advance(view(T0 + days(2), points=Points(total=70))) == []
    moves = history.advance(view(T0 + days(60), points=Points(total=110, levels=("MQL",))))
    assert [(m.source, m.target) for m in moves] == [("recycled", "mql")]


def test_disqualified_is_final() -> None:
    machine = lifecycle()
    assert machine.stage("disqualified").final
    assert machine.allowed_targets("disqualified") == ()
    assert machine.advance("disqualified", view(T0, points=Points(levels=("MQL",)))) == []


# --------------------------------------------------------------------------- advance's walk


def _machine(*transitions: Transition) -> StageMachine:
    return StageMachine(
        stages=[Stage(name=n, initial=n == "a") for n in ("a", "b", "c")], transitions=transitions
    )


def test_guards_see_the_stage_being_tested_from() -> None:
    machine = _machine(
        Transition(source="a", target="b", when=in_stage("a")),
        Transition(source="b", target="c", when=in_stage("b")),
    )
    moves = machine.advance("a", view(T0))
    assert [m.target for m in moves] == ["b", "c"]
    assert "stage is b (it is 'b')" in moves[1].reason


def test_a_stage_visited_in_this_call_is_not_entered_again() -> None:
    machine = _machine(
        Transition(source="a", target="b", when=always()),
        Transition(source="b", target="a", when=always()),
        Transition(source="b", target="c", when=always()),
        Transition(source="c", target="a", when=always()),
    )
    assert [(m.source, m.target) for m in machine.advance("a", view(T0))] == [
        ("a", "b"),
        ("b", "c"),
    ]


def test_transitions_are_tested_in_declaration_order_and_never_holds_never() -> None:
    machine = _machine(
        Transition(source="a", target="c", when=never()),
        Transition(source="a", target="b", when=always()),
        Transition(source="a", target="c", when=always()),
        Transition(source="b", target="c"),
    )
    assert [m.target for m in machine.advance("a", view(T0))] == ["b"]


def test_advance_stops_at_a_final_stage_which_never_goes_dormant() -> None:
    machine = StageMachine(
        stages=[Stage(name="a", initial=True), Stage(name="won", final=True), Stage(name="z")],
        transitions=[
            Transition(source="a", target="won", when=always()),
            Transition(source="z", target="a"),
        ],
        dormancy=Dormancy(after="1d", stage="z"),
    )
    moves = machine.advance("a", view(T0), entered_at=T0 - days(30))
    assert [m.target for m in moves] == ["won"]
    assert machine.advance("won", view(T0), entered_at=T0 - days(30)) == []
    assert machine.allowed_targets("won") == ()


def test_declared_transitions_are_tested_before_dormancy() -> None:
    machine = StageMachine(
        stages=[Stage(name="a", initial=True), Stage(name="b"), Stage(name="sleep")],
        transitions=[
            Transition(source="a", target="b", when=always()),
            Transition(source="sleep", target="a"),
        ],
        dormancy=Dormancy(after=timedelta(days=30), stage="sleep"),
    )
    assert [m.target for m in machine.advance("a", view(T0), entered_at=T0 - days(60))] == ["b"]
    assert machine.advance("b", view(T0), entered_at=T0 - days(60))[0].target == "sleep"
    assert machine.outgoing("a")[-1].name == "dormancy"


def test_advance_takes_the_lead_id_from_the_view_unless_given() -> None:
    machine = _machine(
        Transition(source="a", target="b", when=always()), Transition(source="a", target="c")
    )
    assert machine.advance("a", view(T0))[0].lead_id == "ann"
    assert machine.advance("a", view(T0), lead_id="bob")[0].lead_id == "bob"


# --------------------------------------------------------------------------- manual moves


def test_a_manual_move_the_machine_does_not_declare_is_refused_listing_the_allowed_ones() -> None:
    machine = awareness_interest_consideration()
    with pytest.raises(TransitionNotAllowed) as caught:
        machine.move("awareness", "consideration", T0, "skip ahead")
    assert caught.value.source == "awareness"
    assert caught.value.target == "consideration"
    assert caught.value.allowed == ("interest", "dormant")
    assert "'interest', 'dormant'" in str(caught.value)


def test_a_move_to_the_same_stage_is_not_a_move() -> None:
    with pytest.raises(TransitionNotAllowed):
        awareness_interest_consideration().move("interest", "interest", T0, "again")


def test_a_guarded_transition_and_the_dormancy_edge_can_also_be_made_by_hand() -> None:
    machine = awareness_interest_consideration()
    assert machine.move("awareness", "interest", T0, "met at the trade show").target == "interest"
    assert machine.move("interest", "dormant", T0, "left the company").target == "dormant"


@pytest.mark.parametrize("reason", ["", "   "])
def test_a_manual_move_needs_a_reason(reason: str) -> None:
    with pytest.raises(InvalidStageMachine) as caught:
        awareness_interest_consideration().move("interest", "awareness", T0, reason)
    assert caught.value.where == "reason"


def test_a_manual_move_needs_an_aware_time() -> None:
    with pytest.raises(NaiveDatetime):
        awareness_interest_consideration().move(
            "interest", "awareness", datetime(2026, 4, 1), "nurture again"
        )


@pytest.mark.parametrize(
    ("call", "where"),
    [
        (lambda m: m.stage("intrest"), "stage"),
        (lambda m: m.allowed_targets("intrest"), "source"),
        (lambda m: m.outgoing("Interest"), "source"),
        (lambda m: m.advance("intrest", view(T0)), "current"),
        (lambda m: m.move("intrest", "awareness", T0, "typo"), "current"),
        (lambda m: m.move("interest", "aware", T0, "typo"), "target"),
        (lambda m: StageHistory.start(m, "ann", T0).move("bogus", T0, "x"), "target"),
        (lambda m: StageHistory.start(m, "ann", T0).time_in_stage("bogus", T0), "stage"),
    ],
)
def test_unknown_stage_names_raise_unknown_stage_listing_the_stages(
    call: Callable[[StageMachine], object], where: str
) -> None:
    machine = awareness_interest_consideration()
    with pytest.raises(UnknownStage) as caught:
        call(machine)
    assert caught.value.where == where
    assert "'awareness', 'interest', 'consideration', 'dormant'" in str(caught.value)


# --------------------------------------------------------------------------- history


def test_time_in_stage_adds_up_every_visit_and_the_current_one_up_to_now() -> None:
    history = StageHistory.start(awareness_interest_consideration(), "ann", T0)
    history.move("interest", T0 + days(10), "asked for a case study")
    history.move("awareness", T0 + days(15), "wrong department")
    history.move("interest", T0 + days(25), "the right person downloaded the guide")
    now = T0 + days(40)

    assert history.time_in_stage("awareness", now) == days(10 + 10)
    assert history.time_in_stage("interest", now) == days(5 + 15)
    assert history.time_in_stage("consideration", now) == timedelta(0)
    assert history.entered_at == T0 + days(25)
    # As of an earlier moment, later visits do not count yet.
    assert history.time_in_stage("interest", T0 + days(12)) == days(2)
    assert history.time_in_stage("awareness", T0 + days(12)) == days(10)


def test_a_move_earlier_than_the_last_one_is_refused() -> None:
    history = StageHistory.start(awareness_interest_consideration(), "ann", T0)
    history.move("interest", T0 + days(10), "asked for a case study")
    with pytest.raises(InvalidStageMachine, match="before the last move") as caught:
        history.move("awareness", T0 + days(9), "wrong department")
    assert caught.value.where == "moves[0].at"
    assert history.current == "interest"


def test_a_move_computed_from_a_stale_stage_is_refused_and_nothing_is_applied() -> None:
    machine = awareness_interest_consideration()
    history = StageHistory.start(machine, "ann", T0)
    fine = machine.move("awareness", "interest", T0 + days(1), "demo request", lead_id="ann")
    stale = machine.move("awareness", "dormant", T0 + days(2), "left", lead_id="ann")
    with pytest.raises(InvalidStageMachine, match="starts at 'awareness' but the lead is in"):
        history.apply([fine, stale])
    assert history.current == "awareness"
    assert len(history.moves) == 1


def test_a_move_for_another_lead_is_refused() -> None:
    machine = awareness_interest_consideration()
    history = StageHistory.start(machine, "ann", T0)
    bobs = machine.move("awareness", "interest", T0, "demo request", lead_id="bob")
    with pytest.raises(InvalidStageMachine, match="'bob'"):
        history.apply([bobs])


def test_an_undeclared_move_is_refused_when_applied() -> None:
    history = StageHistory.start(awareness_interest_consideration(), "ann", T0)
    forged = StageMove(
        lead_id="ann",
        source="awareness",
        target="consideration",
        at=T0,
        reason="skip",
        manual=True,
    )
    with pytest.raises(TransitionNotAllowed):
        history.apply([forged])


def test_a_stored_history_is_checked_when_loaded() -> None:
    machine = awareness_interest_consideration()
    history = StageHistory.start(machine, "ann", T0)
    history.move("interest", T0 + days(1), "demo request")
    again = StageHistory(machine=machine, lead_id="ann", moves=list(history.moves))
    assert again == history

    with pytest.raises(InvalidStageMachine, match="first placement"):
        StageHistory(machine=machine, lead_id="ann", moves=[])
    with pytest.raises(InvalidStageMachine) as caught:
        StageHistory(machine=machine, lead_id="ann", moves=history.moves[1:])
    assert caught.value.where == "moves[0].source"
    with pytest.raises(UnknownStage):
        StageHistory(machine=lifecycle(), lead_id="ann", moves=history.moves)


def test_the_first_placement_says_so() -> None:
    history = StageHistory.start(lifecycle(), "ann", T0)
    (first,) = history.moves
    assert (first.source, first.target, first.at) == (None, "lead", T0)
    assert first.reason == "entered the initial stage"
    assert history.current == "lead"


# --------------------------------------------------------------------------- validation


def _stages(*names: str, initial: str = "a", final: Sequence[str] = ()) -> list[Stage]:
    return [Stage(name=n, initial=n == initial, final=n in final) for n in names]


def _t(source: str, target: str) -> Transition:
    return Transition(source=source, target=target)


INVALID_MACHINES: list[tuple[str, Callable[[], StageMachine], str, str]] = [
    ("no stages", lambda: StageMachine(stages=[]), "stages", "at least one stage"),
    (
        "duplicate name",
        lambda: StageMachine(
            stages=[*_stages("a", "b"), Stage(name="b")], transitions=[_t("a", "b")]
        ),
        "stages[2].name",
        "'b' is used twice (stages[1] and stages[2])",
    ),
    (
        "no initial stage",
        lambda: StageMachine(stages=_stages("a", "b", initial="")),
        "stages",
        "no stage is marked initial; mark exactly one of 'a', 'b'",
    ),
    (
        "two initial stages",
        lambda: StageMachine(
            stages=[Stage(name="a", initial=True), Stage(name="b", initial=True)],
            transitions=[_t("a", "b")],
        ),
        "stages",
        "'a', 'b' are all marked initial",
    ),
    (
        "unknown source",
        lambda: StageMachine(stages=_stages("a", "b"), transitions=[_t("a", "b"), _t("x", "a")]),
        "transitions[1].source",
        "unknown stage 'x'; the stages are 'a', 'b'",
    ),
    (
        "unknown target",
        lambda: StageMachine(
            stages=_stages("a", "b"),
            transitions=[_t("a", "b"), _t("b", "a"), _t("a", "c"), _t("b", "zz")],
        ),
        "transitions[2].target",
        "unknown stage 'c'",
    ),
    (
        "unknown dormancy stage",
        lambda: StageMachine(
            stages=_stages("a", "b"),
            transitions=[_t("a", "b")],
            dormancy=Dormancy(after="90d", stage="sleeping"),
        ),
        "dormancy.stage",
        "unknown stage 'sleeping'; the stages are 'a', 'b'",
    ),
    (
        "transition to itself",
        lambda: StageMachine(stages=_stages("a", "b"), transitions=[_t("a", "b"), _t("b", "b")]),
        "transitions[1]",
        "from 'b' to itself",
    ),
    (
        "transition out of a final stage",
        lambda: StageMachine(
            stages=_stages("a", "won", final=("won",)),
            transitions=[_t("a", "won"), _t("won", "a")],
        ),
        "transitions[1].source",
        "stage 'won' is final",
    ),
    (
        "unreachable stages",
        lambda: StageMachine(
            stages=_stages("a", "b", "c", "d"), transitions=[_t("a", "b"), _t("c", "d")]
        ),
        "stages",
        "stages 'c', 'd' cannot be reached from the initial stage 'a'",
    ),
    (
        "one unreachable stage",
        lambda: StageMachine(stages=_stages("a", "b"), transitions=[_t("b", "a")]),
        "stages",
        "stage 'b' cannot be reached",
    ),
]


@pytest.mark.parametrize(
    ("build", "where", "fragment"),
    [case[1:] for case in INVALID_MACHINES],
    ids=[case[0] for case in INVALID_MACHINES],
)
def test_an_invalid_machine_is_refused_when_defined(
    build: Callable[[], StageMachine], where: str, fragment: str
) -> None:
    with pytest.raises(InvalidStageMachine) as caught:
        build()
    assert caught.value.where == where
    assert fragment in str(caught.value)


def test_dormancy_edges_count_for_reachability() -> None:
    machine = StageMachine(
        stages=_stages("a", "b", "sleep"),
        transitions=[_t("a", "b"), _t("sleep", "a")],
        dormancy=Dormancy(after="30d", stage="sleep"),
    )
    assert machine.allowed_targets("b") == ("sleep",)
    assert machine.allowed_targets("sleep") == ("a",)


@pytest.mark.parametrize(
    ("build", "where", "fragment"),
    [
        (lambda: Stage(name="Awareness"), "Stage.name", "lower-case identifier"),
        (lambda: Stage(name="2nd"), "Stage.name", "lower-case identifier"),
        (lambda: Stage(name="in progress"), "Stage.name", "lower-case identifier"),
        (lambda: Stage(name="x" * 65), "Stage.name", "at most 64"),
        (lambda: Stage(name=""), "Stage.name", "non-empty"),
        (lambda: Stage(name="a", initial=True, final=True), "Stage.final", "both initial"),
        (lambda: Transition(source="A", target="b"), "Transition.source", "'A'"),
        (
            lambda: Transition(source="a", target="b", when="did download"),  # type: ignore[arg-type]
            "Transition.when",
            "expected a Condition",
        ),
        (lambda: Dormancy(after="soon", stage="dormant"), "Dormancy.after", "'soon'"),
        (lambda: Dormancy(after="0d", stage="dormant"), "Dormancy.after", "positive"),
        (lambda: Dormancy(after=days(-1), stage="dormant"), "Dormancy.after", "positive"),
        (lambda: Dormancy(after="90d", stage="Dormant"), "Dormancy.stage", "'Dormant'"),
        (
            lambda: StageMachine(stages=["a"]),  # type: ignore[list-item]
            "stages[0]",
            "expected a Stage",
        ),
    ],
)
def test_a_malformed_part_is_refused_naming_it(
    build: Callable[[], object], where: str, fragment: str
) -> None:
    with pytest.raises(InvalidStageMachine) as caught:
        build()
    assert caught.value.where == where
    assert fragment in str(caught.value)


def test_stage_machine_errors_are_value_errors() -> None:
    with pytest.raises(ValueError):
        Stage(name="Bad")


# --------------------------------------------------------------------------- dicts


@pytest.mark.parametrize("preset", [awareness_interest_consideration, buying_process, lifecycle])
def test_every_preset_survives_a_round_trip_through_a_dict(
    preset: Callable[[], StageMachine],
) -> None:
    machine = preset()
    data = machine.to_dict()
    assert json.loads(json.dumps(data)) == data
    again = StageMachine.from_dict(data)
    assert again == machine
    assert again.to_dict() == data


def test_a_machine_dict_reads_like_the_seed() -> None:
    data = awareness_interest_consideration().to_dict()
    assert data["stages"][0] == {
        "name": "awareness",
        "initial": True,
        "description": data["stages"][0]["description"],
    }
    assert data["transitions"][0]["when"] == {
        "any": [{"did": "download"}, {"score": "total", "at_least": 50}]
    }
    assert data["transitions"][2] == {
        "source": "consideration",
        "target": "interest",
        "name": "back to interest",
    }
    assert data["dormancy"] == {"after": "90d", "stage": "dormant"}


def test_a_hand_written_dict_is_read() -> None:
    machine = StageMachine.from_dict(
        {
            "stages": [{"name": "new", "initial": True}, {"name": "hot"}, {"name": "cold"}],
            "transitions": [
                {"source": "new", "target": "hot", "when": {"did": "inquiry"}},
                {"source": "cold", "target": "new", "when": {"activity": "any"}},
            ],
            "dormancy": {"after": "2w", "stage": "cold"},
        }
    )
    assert machine.dormancy == Dormancy(after=days(14), stage="cold")
    assert machine.transitions[0].when == did("inquiry")
    assert machine.transitions[1].when is not None


@pytest.mark.parametrize(
    ("data", "error", "where", "fragment"),
    [
        ({"stages": [{"name": "a", "initial": True}], "states": []}, InvalidStageMachine,
         "stage machine", "unknown key 'states'"),
        ({"transitions": []}, InvalidStageMachine, "stage machine", "missing key 'stages'"),
        ({"stages": {"name": "a"}}, InvalidStageMachine, "stages", "expected a list"),
        ({"stages": [{"name": "a", "initial": "yes"}]}, InvalidStageMachine,
         "stages[0].initial", "true or false"),
        ({"stages": [{"initial": True}]}, InvalidStageMachine, "stages[0]", "missing key 'name'"),
        ({"stages": [{"name": "A", "initial": True}]}, InvalidStageMachine,
         "stages[0].name", "lower-case"),
        ({"stages": [{"name": "a", "initial": True}, {"name": "b"}],
          "transitions": [{"source": "a", "target": "b", "when": {"did": "x", "hours": 3}}]},
         InvalidCondition, "transitions[0].when", "unknown key 'hours'"),
        ({"stages": [{"name": "a", "initial": True}, {"name": "b"}],
          "transitions": [{"source": "a", "to": "b"}]},
         InvalidStageMachine, "transitions[0]", "unknown key 'to'"),
        ({"stages": [{"name": "a", "initial": True}, {"name": "b"}],
          "transitions": [{"source": "a", "target": "b"}],
          "dormancy": {"after": 90, "stage": "b"}},
         InvalidStageMachine, "dormancy.after", "'90d'"),
        ({"stages": [{"name": "a", "initial": True}, {"name": "b"}],
          "transitions": [{"source": "a", "target": "c"}]},
         InvalidStageMachine, "transitions[0].target", "unknown stage 'c'"),
    ],
)  # fmt: skip
def test_a_bad_dict_is_refused_naming_the_place(
    data: dict[str, Any], error: type[Exception], where: str, fragment: str
) -> None:
    with pytest.raises(error) as caught:
        StageMachine.from_dict(data)
    assert getattr(caught.value, "where", None) == where
    assert fragment in str(caught.value)


def test_errors_in_a_dict_carry_the_callers_path() -> None:
    data = {
        "stages": [{"name": "a", "initial": True}, {"name": "b"}],
        "transitions": [{"source": "a", "target": "b"}, {"source": "b", "target": "c"}],
    }
    with pytest.raises(InvalidStageMachine) as caught:
        StageMachine.from_dict(data, path="stages")
    assert caught.value.where == "stages.transitions[1].target"
    data["transitions"] = [{"source": "a", "target": "b", "when": {"did": "x", "at_least": -1}}]
    with pytest.raises(InvalidCondition) as bad_condition:
        StageMachine.from_dict(data, path="stages")
    assert bad_condition.value.where.startswith("stages.transitions[0].when")


# --------------------------------------------------------------------------- the invariant

MACHINES = [awareness_interest_consideration(), buying_process(), lifecycle()]
BOGUS = ["bogus", "Awareness", "", "customer ", "mql2"]
KINDS = ["download", "page_view", "email_open", "seminar_attended", "inquiry", "meeting_booked"]

manual_attempts = st.tuples(
    st.just("move"),
    st.sampled_from(sorted({n for m in MACHINES for n in m.names} | set(BOGUS))),
    st.sampled_from(["budget frozen", "competitor launched", "qualified", "", "  "]),
)
advances = st.tuples(
    st.just("advance"),
    st.one_of(st.none(), st.sampled_from(KINDS)),
    st.sampled_from(["pricing", "comparison", "blog"]),
    st.one_of(
        st.none(),
        st.builds(
            Points,
            total=st.integers(-20, 200),
            levels=st.sampled_from([(), ("MQL",)]),
        ),
    ),
)
steps = st.lists(
    st.tuples(
        st.one_of(st.just(timedelta(0)), st.timedeltas(timedelta(0), timedelta(days=200))),
        st.one_of(manual_attempts, advances),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(machine=st.sampled_from(MACHINES), plan=steps)
def test_a_lead_is_always_in_one_of_the_machines_stages_and_moves_chain(
    machine: StageMachine, plan: list[tuple[timedelta, tuple[Any, ...]]]
) -> None:
    history = StageHistory.start(machine, "ann", T0)
    now = T0
    acts: list[Activity] = []
    for step, action in plan:
        now += step
        if action[0] == "move":
            _, target, reason = action
            with contextlib.suppress(TransitionNotAllowed, UnknownStage, InvalidStageMachine):
                history.move(target, now, reason)
        else:
            _, kind, page, points = action
            current = None
            if kind is not None:
                current = did_(kind, now, page=page) if kind == "page_view" else did_(kind, now)
                acts.append(current)
            history.advance(view(now, acts, current=current, points=points))

        assert history.current in machine.names
        assert history.moves[0].source is None
        for before, after in zip(history.moves, history.moves[1:], strict=False):
            assert after.source == before.target
            assert after.source != after.target
            assert after.target in machine.allowed_targets(before.target)
            assert after.at >= before.at
            assert after.reason.strip()


def test_an_automatic_move_is_built_with_every_field() -> None:
    import attrs

    from nurturekit.stages import _MOVE_FIELDS, StageMove

    assert tuple(f.name for f in attrs.fields(StageMove)) == _MOVE_FIELDS
