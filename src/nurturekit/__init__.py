"""nurturekit: B2B lead nurturing as a library.

Score leads, move them through buying stages, send step mails that branch on behaviour and hand
qualified leads to sales. The domain objects live here; see ``docs/concepts.md``.

>>> from nurturekit import Engine, HandoffPolicy, Lead, Program, Scenario, ScoringModel

What an application needs to run the engine is here too: :func:`load_program`,
:func:`open_storage`, :class:`Links` and :class:`TokenSigner`, the mailers and every error:

>>> from nurturekit import Engine, Links, OutboxMailer, TokenSigner, load_program, open_storage
>>> from nurturekit.programs import bundled_program_path
>>> engine = Engine(
...     load_program(bundled_program_path()),
...     open_storage("memory://"),
...     OutboxMailer(),
...     links=Links("https://example.co.jp/nk", TokenSigner(secret=b"s" * 32)),
... )
>>> engine.run_due().sent
0
"""

from nurturekit.activity import Activity, Kind
from nurturekit.clock import ManualClock, SystemClock
from nurturekit.conditions import Condition, Explanation, View, condition_from_dict
from nurturekit.engine import Engine, RecordResult, RunReport
from nurturekit.errors import (
    ActivityTooLarge,
    ClockError,
    ExpiredToken,
    InvalidActivity,
    InvalidCondition,
    InvalidInput,
    InvalidLead,
    InvalidProgram,
    InvalidScenario,
    InvalidScoringModel,
    InvalidStageMachine,
    InvalidToken,
    MailerUnavailable,
    MissingPlaceholder,
    NaiveDatetime,
    NoOpenHandoff,
    NurtureError,
    StorageError,
    TemplateError,
    TooManyProperties,
    TransitionNotAllowed,
    UnknownLead,
    UnknownStage,
    UnsafeHeader,
)
from nurturekit.handoff import Handoff, HandoffPolicy, MqlDefinition
from nurturekit.lead import Consent, Contactability, ContactStatus, Lead
from nurturekit.mail import ConsoleMailer, EmlDirectoryMailer, OutboxMailer, SmtpMailer
from nurturekit.program import Program
from nurturekit.program_file import load_program
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
from nurturekit.storage import open_storage
from nurturekit.tokens import Links, TokenSigner

__version__ = "0.1.0.dev0"

__all__ = [
    "Activity",
    "ActivityTooLarge",
    "Band",
    "BehaviourRule",
    "Cap",
    "ClockError",
    "Condition",
    "Consent",
    "ConsoleMailer",
    "ContactStatus",
    "Contactability",
    "Contribution",
    "Dormancy",
    "EmlDirectoryMailer",
    "Engine",
    "ExpiredToken",
    "Explanation",
    "FitRule",
    "HalfLife",
    "Handoff",
    "HandoffPolicy",
    "IdleLoss",
    "InvalidActivity",
    "InvalidCondition",
    "InvalidInput",
    "InvalidLead",
    "InvalidProgram",
    "InvalidScenario",
    "InvalidScoringModel",
    "InvalidStageMachine",
    "InvalidToken",
    "Kind",
    "Lead",
    "Level",
    "Links",
    "MailerUnavailable",
    "ManualClock",
    "MissingPlaceholder",
    "MqlDefinition",
    "NaiveDatetime",
    "NoOpenHandoff",
    "NurtureError",
    "OutboxMailer",
    "Program",
    "RecordResult",
    "RunReport",
    "Scenario",
    "Score",
    "ScoreCard",
    "ScoringModel",
    "SmtpMailer",
    "Stage",
    "StageHistory",
    "StageMachine",
    "StageMove",
    "StorageError",
    "SystemClock",
    "TemplateError",
    "TokenSigner",
    "TooManyProperties",
    "Transition",
    "TransitionNotAllowed",
    "UnknownLead",
    "UnknownStage",
    "UnsafeHeader",
    "View",
    "__version__",
    "condition_from_dict",
    "load_program",
    "open_storage",
]
