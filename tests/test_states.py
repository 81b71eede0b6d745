"""The stores' copies and snapshots of a lead state: every field, no shared containers."""

from __future__ import annotations

from datetime import datetime, timezone

import attrs

from nurturekit.activity import Activity
from nurturekit.conditions import did
from nurturekit.conditions.activities import plan_tally
from nurturekit.ports import LeadState
from nurturekit.scoring import Contribution, ScoreCard
from nurturekit.stages import StageMove
from nurturekit.storage._states import copy_state, snapshot_state, state_from_snapshot

T0 = datetime(2026, 4, 1, tzinfo=timezone.utc)
ACTIVITY = Activity(lead_id="l1", kind="page_view", at=T0, key="k1")
CONTAINERS = ("entries", "refused", "seen", "times", "awarded")


def a_state() -> LeadState:
    """A state with a value other than the default in every field."""
    move = StageMove(
        lead_id="l1", source=None, target="awareness", at=T0, reason="start", manual=True
    )
    card = ScoreCard(
        lead_id="l1",
        fit=(Contribution("fit", "fit", 3, 3, None, None, None),),
        fit_total=3,
        entries=[Contribution("r", "engagement", 5, 5, T0, "k1", "page_view")],
        engagement_points=5,
        refused=[Contribution("r", "engagement", 5, 5, T0, "k0", "page_view")],
        seen={"k0", "k1"},
        last_at=T0,
        last_key="k1",
        times=[T0],
    )
    return LeadState(
        lead_id="l1",
        card=card,
        moves=[move],
        levels=frozenset({"warm"}),
        with_sales=True,
        disqualified=True,
        qualified=True,
        tally=plan_tally([did("page_view", within="7d")]).tally([ACTIVITY]),
    )


def same_values(copy: LeadState, state: LeadState) -> None:
    for field in attrs.fields(LeadState):
        if field.name != "card":
            assert getattr(copy, field.name) == getattr(state, field.name), field.name
    for field in attrs.fields(ScoreCard):
        assert getattr(copy.card, field.name) == getattr(state.card, field.name), field.name


def shares_no_container(copy: LeadState, state: LeadState) -> None:
    assert copy is not state and copy.card is not state.card
    for name in CONTAINERS:
        assert getattr(copy.card, name) is not getattr(state.card, name), name
    assert copy.moves is not state.moves
    assert copy.tally is not state.tally
    assert copy.tally is not None and state.tally is not None
    assert copy.tally.counts is not state.tally.counts
    assert all(copy.tally.times[k] is not t for k, t in state.tally.times.items())


def test_every_field_differs_from_its_default_in_the_sample() -> None:
    state = a_state()
    for cls, value in ((LeadState, state), (ScoreCard, state.card)):
        for field in attrs.fields(cls):
            if field.name in ("lead_id", "card"):
                continue
            default = field.default
            if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                default = default.factory()
            assert getattr(value, field.name) != default, field.name


def test_a_copy_has_every_field_and_containers_of_its_own() -> None:
    state = a_state()
    copy = copy_state(state)
    same_values(copy, state)
    shares_no_container(copy, state)


def test_a_snapshot_gives_back_the_state_as_it_was_before_changes() -> None:
    state = a_state()
    snapshot = snapshot_state(state)
    # What the scoring model and the stage machine do: append to a list, or replace it.
    state.card.entries.append(state.card.entries[0])
    state.card.refused = []
    state.card.seen.add("k2")
    state.card.times.append(T0)
    state.card.engagement_points = 99
    state.moves = []
    state.levels = frozenset()
    state.with_sales = False
    restored = state_from_snapshot(snapshot)
    same_values(restored, a_state())
    again = state_from_snapshot(snapshot)
    same_values(again, a_state())
    shares_no_container(again, restored)


def test_a_snapshot_keeps_the_lists_it_puts_back_without_copying_them() -> None:
    """Taking a snapshot costs the same however long the history: the lists are kept with
    their lengths (they are only appended to or replaced), and only putting one back copies."""
    state = a_state()
    snapshot = snapshot_state(state)
    for name in ("entries", "refused", "times"):
        assert any(part is getattr(state.card, name) for part in snapshot), name
    assert any(part is state.moves for part in snapshot)
    state.card.entries.append(state.card.entries[0])
    state.moves.append(state.moves[0])
    restored = state_from_snapshot(snapshot)
    assert len(restored.card.entries) == 1 and len(restored.moves) == 1
    assert len(state.card.entries) == 2 and len(state.moves) == 2
