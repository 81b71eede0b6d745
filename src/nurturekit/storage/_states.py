"""Copies and snapshots of a :class:`~nurturekit.ports.LeadState`, for the stores.

A state is plain data: its lists, its set and its tally are the only mutable parts, and their items
(contributions, stage moves, times, keys) are immutable and shared. A store copies a state
when it hands one out that the caller may change, and snapshots one it lends inside a
transaction so that an undone transaction can put it back.

The functions are written out field by field from the attrs fields of :class:`LeadState` and
:class:`~nurturekit.scoring.ScoreCard` (so a field added to either is copied too): a loop of
``getattr`` / ``setattr`` or ``attrs.evolve`` costs several times more, and the engine takes
one of these per recorded activity.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from nurturekit.conditions.tally import Tally
from nurturekit.ports import LeadState
from nurturekit.scoring import ScoreCard

#: A state's values as a flat tuple, its containers copied: :data:`snapshot_state` makes it.
Snapshot = tuple[Any, ...]

#: The mutable fields, and the type whose constructor copies each.
_MUTABLE = {
    "entries": "list",
    "refused": "list",
    "times": "list",
    "seen": "set",
    "moves": "list",
    "tally": "copy_tally",
    "awarded": "dict",
}


def _copy_tally(tally: Tally | None) -> Tally | None:
    return None if tally is None else tally.copy()


def _fields() -> list[tuple[str, str]]:
    """(expression reading the field from ``state`` / ``card``, field name) for every field
    of both classes but ``LeadState.card``, card fields first."""
    out = [(f"card.{f.name}", f.name) for f in attrs.fields(ScoreCard)]
    out += [(f"state.{f.name}", f.name) for f in attrs.fields(LeadState) if f.name != "card"]
    return out


def _copied(expression: str, name: str) -> str:
    return f"{_MUTABLE[name]}({expression})" if name in _MUTABLE else expression


def _build() -> tuple[
    Callable[[LeadState], LeadState],
    Callable[[LeadState], Snapshot],
    Callable[[Snapshot], LeadState],
]:
    fields = _fields()
    card_names = [f.name for f in attrs.fields(ScoreCard)]
    state_names = [f.name for f in attrs.fields(LeadState) if f.name != "card"]
    read = ["    card = state.card"]
    copy = ["def copy(state):", *read, "    c = new(ScoreCard)"]
    copy += [f"    c.{name} = {_copied(f'card.{name}', name)}" for name in card_names]
    copy += ["    s = new(LeadState)", "    s.card = c"]
    copy += [f"    s.{name} = {_copied(f'state.{name}', name)}" for name in state_names]
    copy += ["    return s"]
    snapshot = ["def snapshot(state):", *read]
    snapshot += ["    return (" + ", ".join(_copied(e, n) for e, n in fields) + ",)"]
    restore = ["def restore(values):", "    (" + ", ".join(n for _, n in fields) + ",) = values"]
    restore += ["    c = new(ScoreCard)"]
    restore += [f"    c.{name} = {_copied(name, name)}" for name in card_names]
    restore += ["    s = new(LeadState)", "    s.card = c"]
    restore += [f"    s.{name} = {_copied(name, name)}" for name in state_names]
    restore += ["    return s"]
    scope: dict[str, Any] = {
        "new": object.__new__,
        "ScoreCard": ScoreCard,
        "LeadState": LeadState,
        "copy_tally": _copy_tally,
    }
    # Our own text, built from attrs fields.
    exec("\n".join(copy + snapshot + restore), scope)
    return scope["copy"], scope["snapshot"], scope["restore"]


copy_state: Callable[[LeadState], LeadState]
"""A copy of a state whose lists and sets can be changed without touching the original."""

snapshot_state: Callable[[LeadState], Snapshot]
"""The state's values in a tuple, its containers copied: cheaper than a copy (no objects are
built), for a state that is only restored if a transaction is undone."""

state_from_snapshot: Callable[[Snapshot], LeadState]
"""A new state from a snapshot; the snapshot is not shared with it (it may be used again)."""

copy_state, snapshot_state, state_from_snapshot = _build()
