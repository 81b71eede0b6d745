"""The one condition language: composable, serialisable, explainable predicates over a lead.

Segments, scoring rules, stage guards, scenario triggers, targets, goals and branches, and the MQL
definition are all :class:`Condition` objects. A condition is a frozen value; combine them with
``&``, ``|`` and ``~``; evaluate one against a :class:`View` (the lead, its activity history, its
score and stage, at a time ``now``); ask it *why* with :meth:`Condition.explain`; store it as a
plain dict with :meth:`Condition.to_dict` and read it back with :func:`condition_from_dict`.

>>> from datetime import datetime, timezone
>>> from nurturekit import Lead
>>> from nurturekit.conditions import attr, did, View
>>> rule = attr("employees").at_least(100) & did("page_view", page="pricing", within="30d")
>>> lead = Lead(id="l1", email="ann@example.com", attributes={"employees": 250})
>>> view = View(lead=lead, now=datetime(2026, 4, 1, tzinfo=timezone.utc))
>>> rule.evaluate(view)
False
>>> print(rule.explain(view))
✗ all of:
  ✓ employees is at least 100 (it is 250)
  ✗ did page_view with page=pricing at least once within 30 days (found 0)

Evaluating a condition does no I/O and never reads the clock: everything it looks at is in the
view.

The package's modules: :mod:`~nurturekit.conditions.core` holds :class:`View`,
:class:`Explanation`, the :class:`Condition` base class and the combinators (``all``, ``any``,
``not``, ``always``, ``never``); :mod:`~nurturekit.conditions.attributes` the attribute tests
(:func:`attr`); :mod:`~nurturekit.conditions.activities` the activity tests (:func:`did`,
:func:`activity`); :mod:`~nurturekit.conditions.state` the score, level, temperature, stage,
consent and contactability tests; :mod:`~nurturekit.conditions.serialisation`
:func:`condition_from_dict`. Import every name from ``nurturekit.conditions`` itself.
"""

from nurturekit.conditions.activities import ANY_KIND, ActivityIs, Did, activity, did
from nurturekit.conditions.attributes import (
    AttributeContains,
    AttributeEquals,
    AttributeExists,
    AttributeIn,
    AttributeRange,
    AttributeTest,
    attr,
)
from nurturekit.conditions.attributes import Scalar as Scalar
from nurturekit.conditions.core import _VIEW_FIELDS as _VIEW_FIELDS
from nurturekit.conditions.core import (
    AllOf,
    Always,
    AnyOf,
    Condition,
    Explanation,
    Never,
    Not,
    ScoreLike,
    View,
    always,
    never,
)
from nurturekit.conditions.serialisation import condition_from_dict
from nurturekit.conditions.state import (
    Consented,
    ContactStatusIs,
    InStage,
    InStageFor,
    LevelReached,
    ScoreRange,
    TemperatureIs,
    consented,
    contact_status,
    contactable,
    in_stage,
    in_stage_for,
    level,
    score,
    temperature,
)

__all__ = [
    "ANY_KIND",
    "ActivityIs",
    "AllOf",
    "Always",
    "AnyOf",
    "AttributeContains",
    "AttributeEquals",
    "AttributeExists",
    "AttributeIn",
    "AttributeRange",
    "AttributeTest",
    "Condition",
    "Consented",
    "ContactStatusIs",
    "Did",
    "Explanation",
    "InStage",
    "InStageFor",
    "LevelReached",
    "Never",
    "Not",
    "ScoreLike",
    "ScoreRange",
    "TemperatureIs",
    "View",
    "activity",
    "always",
    "attr",
    "condition_from_dict",
    "consented",
    "contact_status",
    "contactable",
    "did",
    "in_stage",
    "in_stage_for",
    "level",
    "never",
    "score",
    "temperature",
]
