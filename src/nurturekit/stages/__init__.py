"""Buying stages: a validated stage machine, guarded moves with reasons, and each lead's history.

A :class:`StageMachine` is a frozen definition shared by every lead: its stages, the transitions
between them (guarded by a :class:`~nurturekit.conditions.Condition`, or manual-only), and an
optional :class:`Dormancy` rule. A :class:`StageHistory` is one lead's record of moves. Moves go
forward and back (B2B journeys stall and regress), and every move keeps its time and reason.

>>> from datetime import datetime, timezone
>>> from nurturekit import Lead
>>> from nurturekit.conditions import View
>>> machine = awareness_interest_consideration()
>>> at = datetime(2026, 4, 1, tzinfo=timezone.utc)
>>> history = StageHistory.start(machine, "l1", at)
>>> history.current
'awareness'
>>> made = history.move("interest", at, reason="asked for a demo at the trade show")
>>> (made.source, made.target, made.manual)
('awareness', 'interest', True)

The package: :mod:`~nurturekit.stages.machine` holds the machine and its parts,
:mod:`~nurturekit.stages.history` a lead's history, :mod:`~nurturekit.stages.presets` the
seeds' machines. Import every name from ``nurturekit.stages`` itself.
"""

from nurturekit.stages.history import StageHistory
from nurturekit.stages.machine import _MOVE_FIELDS as _MOVE_FIELDS
from nurturekit.stages.machine import Dormancy, Stage, StageMachine, StageMove, Transition
from nurturekit.stages.presets import awareness_interest_consideration, buying_process, lifecycle

__all__ = [
    "Dormancy",
    "Stage",
    "StageHistory",
    "StageMachine",
    "StageMove",
    "Transition",
    "awareness_interest_consideration",
    "buying_process",
    "lifecycle",
]
