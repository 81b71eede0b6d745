"""Scenarios: the frame of a nurture programme (trigger, target, goal, exits, KPIs) and its steps.

A :class:`Scenario` is a frozen value, checked when it is defined. Its steps form a graph — send
a mail, wait, wait for an activity (with a timeout path), branch on a condition, adjust the
score, set the stage, hand off to sales, call a hook, end — that the engine walks for each
:class:`Enrollment`. Every condition is from :mod:`nurturekit.conditions`.

>>> from datetime import timedelta
>>> from nurturekit.conditions import activity, did, attr
>>> follow_up = Scenario(
...     name="whitepaper follow-up",
...     trigger=OnActivity(when=activity("download", type="whitepaper")),
...     target=attr("employees").at_least(100),
...     goal=did("meeting_booked"),
...     kpis=("open rate", "meetings booked"),
...     steps=[
...         SendMail(id="thanks", template="thanks", next="wait3"),
...         Wait(id="wait3", duration=timedelta(days=3), next="case"),
...         SendMail(id="case", template="case_study", next="wait7"),
...         Wait(id="wait7", duration=timedelta(days=4), next="offer"),
...         SendMail(id="offer", template="consultation_offer"),
...     ],
... )
>>> follow_up.start
'thanks'

The package: :mod:`~nurturekit.scenario.steps` holds the steps,
:mod:`~nurturekit.scenario.core` the frame (triggers, exits, re-entry, mail type) and the
:class:`Scenario` that checks its steps as a graph, :mod:`~nurturekit.scenario.enrollment` a
lead's :class:`Enrollment` in a scenario. Import every name from ``nurturekit.scenario`` itself.
"""

from nurturekit.scenario.core import (
    Broadcast,
    Exit,
    MailType,
    OnActivity,
    OnLevelCrossed,
    OnStageEntered,
    ReEntry,
    Scenario,
    Trigger,
)
from nurturekit.scenario.enrollment import Enrollment, EnrollmentStatus
from nurturekit.scenario.enrollment import _make_enrollment as _make_enrollment
from nurturekit.scenario.steps import (
    AdjustScore,
    Branch,
    CallHook,
    End,
    HandOff,
    NextWeekdayAt,
    SendMail,
    SetStage,
    Step,
    Wait,
    WaitFor,
)

__all__ = [
    "AdjustScore",
    "Branch",
    "Broadcast",
    "CallHook",
    "End",
    "Enrollment",
    "EnrollmentStatus",
    "Exit",
    "HandOff",
    "MailType",
    "NextWeekdayAt",
    "OnActivity",
    "OnLevelCrossed",
    "OnStageEntered",
    "ReEntry",
    "Scenario",
    "SendMail",
    "SetStage",
    "Step",
    "Trigger",
    "Wait",
    "WaitFor",
]
