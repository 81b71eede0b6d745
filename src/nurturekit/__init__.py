"""nurturekit: B2B lead nurturing as a library.

Score leads, move them through buying stages, send step mails that branch on behaviour and hand
qualified leads to sales. The domain objects live here; see ``docs/concepts.md``.

>>> from nurturekit import Engine, HandoffPolicy, Lead, Program, Scenario, ScoringModel
"""

from nurturekit.activity import Activity, Kind
from nurturekit.clock import ManualClock, SystemClock
from nurturekit.conditions import Condition, Explanation, View, condition_from_dict
from nurturekit.engine import Engine
from nurturekit.errors import NurtureError
from nurturekit.handoff import Handoff, HandoffPolicy, MqlDefinition
from nurturekit.lead import Consent, Contactability, ContactStatus, Lead
from nurturekit.program import Program
from nurturekit.scenario import Scenario
from nurturekit.scoring import (
    Band,
    BehaviourRule,
    Cap,
    Contribution,
    FitRule,
    HalfLife,
    IdleLoss,
    Level,
    Score,
    ScoreCard,
    ScoringModel,
)
from nurturekit.stages import Dormancy, Stage, StageHistory, StageMachine, StageMove, Transition

__version__ = "0.1.0.dev0"

__all__ = [
    "Activity",
    "Band",
    "BehaviourRule",
    "Cap",
    "Condition",
    "Consent",
    "ContactStatus",
    "Contactability",
    "Contribution",
    "Dormancy",
    "Engine",
    "Explanation",
    "FitRule",
    "HalfLife",
    "Handoff",
    "HandoffPolicy",
    "IdleLoss",
    "Kind",
    "Lead",
    "Level",
    "ManualClock",
    "MqlDefinition",
    "NurtureError",
    "Program",
    "Scenario",
    "Score",
    "ScoreCard",
    "ScoringModel",
    "Stage",
    "StageHistory",
    "StageMachine",
    "StageMove",
    "SystemClock",
    "Transition",
    "View",
    "__version__",
    "condition_from_dict",
]
