"""Copies and snapshots of a :class:`~nurturekit.ports.LeadState`, for the stores.

A state is plain data: its lists, its set, its dict and its tally are the only mutable parts,
and their items (contributions, stage moves, times, keys) are immutable and shared. A store
copies a state when it hands one out that the caller may change, and snapshots one it lends
inside a transaction so that an undone transaction can put it back.

The scoring model and the stage machine only ever append to a state's lists (``entries``,
``refused``, ``times``, ``moves``) or replace them with new lists; they never change an item in
place. So a snapshot keeps each list with its length, not a copy: taking one costs the same
however long the lead's history is, and only putting one back copies. The set of applied keys,
the per-rule counts and the tally are copied (the tally keeps only what its windows can still
count).

Each function names every field of both classes; ``tests/test_states.py`` fails when a field is
added to either and not here.
"""

from __future__ import annotations

from typing import Any

from nurturekit.conditions.tally import Tally
from nurturekit.ports import LeadState
from nurturekit.scoring import ScoreCard

#: What :func:`snapshot_state` keeps: every field, lists as (list, length).
Snapshot = tuple[Any, ...]


def _tally(tally: Tally | None) -> Tally | None:
    return None if tally is None else tally.copy()


def _state(
    card: ScoreCard,
    moves: list[Any],
    levels: frozenset[str],
    with_sales: bool,
    disqualified: bool,
    qualified: bool,
    tally: Tally | None,
) -> LeadState:
    """A state of these values: built past ``__init__``, whose checks the values passed
    when they were first made (and a card's ``__attrs_post_init__`` would recount its
    entries)."""
    state: LeadState = object.__new__(LeadState)
    state.lead_id = card.lead_id
    state.card = card
    state.moves = moves
    state.levels = levels
    state.with_sales = with_sales
    state.disqualified = disqualified
    state.qualified = qualified
    state.tally = tally
    return state


def _card(
    lead_id: str,
    fit: Any,
    fit_total: int,
    entries: list[Any],
    engagement_points: int,
    refused: list[Any],
    seen: set[str],
    last_at: Any,
    last_key: str,
    times: list[Any],
    awarded: dict[str, int],
) -> ScoreCard:
    card: ScoreCard = object.__new__(ScoreCard)
    card.lead_id = lead_id
    card.fit = fit
    card.fit_total = fit_total
    card.entries = entries
    card.engagement_points = engagement_points
    card.refused = refused
    card.seen = seen
    card.last_at = last_at
    card.last_key = last_key
    card.times = times
    card.awarded = awarded
    return card


def copy_state(state: LeadState) -> LeadState:
    """A copy of a state whose lists and sets can be changed without touching the original."""
    c = state.card
    card = _card(
        c.lead_id,
        c.fit,
        c.fit_total,
        list(c.entries),
        c.engagement_points,
        list(c.refused),
        set(c.seen),
        c.last_at,
        c.last_key,
        list(c.times),
        dict(c.awarded),
    )
    return _state(
        card,
        list(state.moves),
        state.levels,
        state.with_sales,
        state.disqualified,
        state.qualified,
        _tally(state.tally),
    )


def snapshot_state(state: LeadState) -> Snapshot:
    """What :func:`state_from_snapshot` needs to give the state back as it is now, however it
    is changed meanwhile by appending to its lists, replacing them or setting its fields."""
    c = state.card
    return (
        c.lead_id,
        c.fit,
        c.fit_total,
        c.entries,
        len(c.entries),
        c.engagement_points,
        c.refused,
        len(c.refused),
        set(c.seen),
        c.last_at,
        c.last_key,
        c.times,
        len(c.times),
        dict(c.awarded),
        state.moves,
        len(state.moves),
        state.levels,
        state.with_sales,
        state.disqualified,
        state.qualified,
        _tally(state.tally),
    )


def state_from_snapshot(snapshot: Snapshot) -> LeadState:
    """A new state from a snapshot; the snapshot is not shared with it (it may be used again)."""
    (
        lead_id,
        fit,
        fit_total,
        entries,
        entries_count,
        engagement_points,
        refused,
        refused_count,
        seen,
        last_at,
        last_key,
        times,
        times_count,
        awarded,
        moves,
        moves_count,
        levels,
        with_sales,
        disqualified,
        qualified,
        tally,
    ) = snapshot
    card = _card(
        lead_id,
        fit,
        fit_total,
        entries[:entries_count],
        engagement_points,
        refused[:refused_count],
        set(seen),
        last_at,
        last_key,
        times[:times_count],
        dict(awarded),
    )
    return _state(
        card,
        moves[:moves_count],
        levels,
        with_sales,
        disqualified,
        qualified,
        _tally(tally),
    )
