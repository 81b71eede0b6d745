"""One lead's record of stage moves (:class:`StageHistory`), and the engine's way of advancing
it once per recorded activity."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import attrs

from nurturekit._repr import counted, html_block, html_table, moment, quoted, summary
from nurturekit._time import aware_utc
from nurturekit.conditions import (
    View,
)
from nurturekit.errors import (
    InvalidStageMachine,
    TransitionNotAllowed,
)
from nurturekit.stages.machine import StageMachine, StageMove

__all__ = ["StageHistory"]

# --------------------------------------------------------------------------- one lead's record


@attrs.define(kw_only=True)
class StageHistory:
    """One lead's moves through a :class:`StageMachine`, oldest first.

    Invariants: there is at least one move; the first has ``source=None``; each move starts
    where the previous one ended; times never go backwards; every stage is one of the
    machine's. So :attr:`current` is always a stage of the machine.
    """

    machine: StageMachine
    lead_id: str
    moves: list[StageMove]

    def __attrs_post_init__(self) -> None:
        if not self.moves:
            raise InvalidStageMachine(
                "moves",
                "a stage history needs at least its first placement; use StageHistory.start",
            )
        first = self.moves[0]
        if first.source is not None:
            raise InvalidStageMachine(
                "moves[0].source",
                f"the first move places the lead, so its source must be None, got {first.source!r}",
            )
        self.machine._known(first.target, "moves[0].target")
        if first.lead_id != self.lead_id:
            raise InvalidStageMachine(
                "moves[0].lead_id",
                f"the move is for lead {first.lead_id!r}, but this history is {self.lead_id!r}'s",
            )
        rest, self.moves = self.moves[1:], [first]
        self.apply(rest)

    @classmethod
    def start(cls, machine: StageMachine, lead_id: str, at: datetime) -> StageHistory:
        """Place a new lead in the machine's initial stage at ``at``."""
        placement = StageMove(
            lead_id=lead_id,
            source=None,
            target=machine.initial,
            at=at,
            reason="entered the initial stage",
            manual=False,
        )
        return cls(machine=machine, lead_id=lead_id, moves=[placement])

    @classmethod
    def adopt(cls, machine: StageMachine, lead_id: str, moves: list[StageMove]) -> StageHistory:
        """A history over ``moves`` — the very list, which its moves then extend — without
        checking them again: for moves this machine already checked (read back from storage)."""
        history = object.__new__(cls)
        history.machine = machine
        history.lead_id = lead_id
        history.moves = moves
        return history

    def __repr__(self) -> str:
        """The lead, its current stage and since when, and how many moves the history holds
        (the first placement counts as one)."""
        last = self.moves[-1] if self.moves else None
        return summary(
            "StageHistory",
            [
                ("lead", quoted(self.lead_id)),
                ("current", quoted(None if last is None else last.target)),
                ("since", moment(None if last is None else last.at)),
            ],
            [counted(len(self.moves), "move")],
        )

    def _repr_html_(self) -> str:
        """The repr over the moves as a table: at, from, to, reason, manual."""
        rows = (
            (m.at, m.source, m.target, m.reason, "yes" if m.manual else "no") for m in self.moves
        )
        table = html_table(
            ("at", "from", "to", "reason", "manual"), rows, total=len(self.moves), noun="move"
        )
        return html_block(repr(self), table)

    @property
    def current(self) -> str:
        """The lead's stage now: the target of the last move."""
        return self.moves[-1].target

    @property
    def entered_at(self) -> datetime:
        """When the lead entered its current stage."""
        return self.moves[-1].at

    def apply(self, moves: Iterable[StageMove]) -> None:
        """Append ``moves``, all or none, after checking that they chain on from :attr:`current`.

        Each move must be for this lead, start where the last one ended, be declared by the
        machine (else :class:`TransitionNotAllowed`) and not be earlier than the last one (else
        :class:`InvalidStageMachine`, naming the move). A move that starts elsewhere was
        computed from a stale stage and is refused with :class:`InvalidStageMachine`.
        """
        incoming = list(moves)
        here, last = self.current, self.entered_at
        for index, move in enumerate(incoming):
            where = f"moves[{index}]"
            if not isinstance(move, StageMove):
                raise InvalidStageMachine(where, f"expected a StageMove, got {move!r}")
            if move.lead_id != self.lead_id:
                raise InvalidStageMachine(
                    f"{where}.lead_id",
                    f"the move is for lead {move.lead_id!r}, but this history is "
                    f"{self.lead_id!r}'s",
                )
            if move.source != here:
                raise InvalidStageMachine(
                    f"{where}.source",
                    f"the move starts at {move.source!r} but the lead is in {here!r}; a move must "
                    f"start where the last one ended (was it computed from a stale stage?)",
                )
            allowed = self.machine.allowed_targets(here)
            if move.target not in allowed:
                raise TransitionNotAllowed(here, move.target, allowed)
            if move.at < last:
                raise InvalidStageMachine(
                    f"{where}.at",
                    f"the move is at {move.at.isoformat()}, before the last move at "
                    f"{last.isoformat()}; moves are recorded in time order",
                )
            here, last = move.target, move.at
        self.moves.extend(incoming)

    def advance(self, view: View) -> list[StageMove]:
        """Make the automatic moves that ``view`` calls for, record them and return them."""
        return advance_moves(self.machine, self.lead_id, self.moves, view)[0]

    def move(self, target: str, at: datetime, reason: str) -> StageMove:
        """Make a manual move to ``target`` for ``reason``, record it and return it."""
        made = self.machine.move(self.current, target, at, reason, lead_id=self.lead_id)
        self.apply([made])
        return made

    def time_in_stage(self, stage: str, now: datetime) -> timedelta:
        """Total time spent in ``stage`` up to ``now``, over every visit.

        The current visit counts up to ``now``; visits after ``now`` do not count, so the answer
        is the time in stage as of ``now``.
        """
        self.machine._known(stage, "stage")
        until = aware_utc(now, "now")
        total = timedelta(0)
        for index, move in enumerate(self.moves):
            if move.target != stage or move.at >= until:
                continue
            left = self.moves[index + 1].at if index + 1 < len(self.moves) else until
            total += min(left, until) - move.at
        return total


def advance_moves(
    machine: StageMachine, lead_id: str, moves: list[StageMove], view: View
) -> tuple[list[StageMove], View]:
    """:meth:`StageHistory.advance` over the history ``moves`` (which the new moves extend),
    without a history object: the new moves, and ``view`` at the stage where they ended (``view``
    itself when there were none). The engine's path, once per recorded activity."""
    last = moves[-1]
    made, moved = machine._walk_from(last.target, view, lead_id, last.at)
    if moved is None:
        return made, view
    if made[0].at < last.at:
        StageHistory.adopt(machine, lead_id, moves).apply(made)  # refuses a move back in time
    else:
        # Made by the machine from where the lead is: they chain and are declared.
        moves.extend(made)
    return made, moved
