"""Lead scoring: fit (who the lead is) plus engagement (what the lead did), explained to the point.

A :class:`ScoringModel` is data, not code: fit rules and behaviour rules, each a condition from
:mod:`nurturekit.conditions` plus points; caps, time windows and decay; named levels (``MQL`` at
100) and temperature bands (hot / warm / cold).

Scoring keeps a :class:`ScoreCard` per lead. Feed it activities with :meth:`ScoringModel.apply`
(cheap: no history scan for plain rules) and read a :class:`Score` with
:meth:`ScoringModel.score` at any time ``now``; decay is computed from timestamps at that moment,
never by a sweep job. Applying activities one by one, in any order, gives exactly the score that
:meth:`ScoringModel.rescore` computes from the whole history.

>>> from datetime import datetime, timezone
>>> from nurturekit import Activity, Lead
>>> from nurturekit.presets import seed002_scoring_model
>>> model = seed002_scoring_model()
>>> lead = Lead(id="l1", email="ann@example.com", attributes={"job_level": "department_head"})
>>> at = datetime(2026, 4, 1, 10, tzinfo=timezone.utc)
>>> card = model.new_card(lead)
>>> pricing = Activity(lead_id="l1", kind="page_view", at=at, properties={"page": "pricing"})
>>> model.apply(card, lead, pricing)
True
>>> model.score(card, at).total
50

The package's modules: :mod:`~nurturekit.scoring.values` holds what a user reads
(:class:`Score`, :class:`Contribution`, :class:`ScoreCard`); :mod:`~nurturekit.scoring.rules` the
parts a model is made of (:class:`FitRule`, :class:`BehaviourRule`, :class:`Cap`,
:class:`HalfLife`, :class:`IdleLoss`, :class:`Level`, :class:`Band`);
:mod:`~nurturekit.scoring.model` the :class:`ScoringModel` itself;
:mod:`~nurturekit.scoring.serialisation` its dict form. Import every name from
``nurturekit.scoring`` itself.
"""

from nurturekit.scoring.model import ScoringModel
from nurturekit.scoring.rules import Band, BehaviourRule, Cap, FitRule, HalfLife, IdleLoss, Level
from nurturekit.scoring.rules import Decay as Decay
from nurturekit.scoring.values import ENGAGEMENT as ENGAGEMENT
from nurturekit.scoring.values import FIT as FIT
from nurturekit.scoring.values import IDLE_DECAY_RULE as IDLE_DECAY_RULE
from nurturekit.scoring.values import Contribution, Score, ScoreCard

__all__ = [
    "Band",
    "BehaviourRule",
    "Cap",
    "Contribution",
    "FitRule",
    "HalfLife",
    "IdleLoss",
    "Level",
    "Score",
    "ScoreCard",
    "ScoringModel",
]
