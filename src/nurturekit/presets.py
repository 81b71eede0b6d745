"""Ready-made models drawn from the source articles: start from one, then tune it to your data.

- :func:`seed002_scoring_model`: the point table of the lead-scoring article (job level,
  industry, company size; whitepaper downloads, pricing visits, mail opens and clicks, seminars).
- The stage machines of :mod:`nurturekit.stages`: :func:`awareness_interest_consideration`,
  :func:`buying_process` and :func:`lifecycle`.

Thresholds are examples: the article itself says to tune them against your own conversion
history.
"""

from __future__ import annotations

from collections.abc import Sequence

from nurturekit.conditions import activity, attr, did
from nurturekit.lead import EMPLOYEES, INDUSTRY, JOB_LEVEL
from nurturekit.scoring import Band, BehaviourRule, Cap, FitRule, Level, ScoringModel
from nurturekit.stages import awareness_interest_consideration, buying_process, lifecycle

__all__ = [
    "DEPARTMENT_HEAD_OR_ABOVE",
    "awareness_interest_consideration",
    "buying_process",
    "lifecycle",
    "seed002_scoring_model",
]

#: ``job_level`` values that count as "department head or above" (部長以上).
DEPARTMENT_HEAD_OR_ABOVE = ("executive", "director", "department_head")


def seed002_scoring_model(
    *,
    target_industries: Sequence[str] = ("manufacturing", "it"),
    semi_target_industries: Sequence[str] = ("retail", "logistics"),
    mql_at: int = 100,
) -> ScoringModel:
    """The example point table of the lead-scoring article, as a :class:`ScoringModel`.

    Fit: department head or above +20, section manager +10, staff +5; target industry +15,
    semi-target +5; 50 or more employees +10. Engagement: whitepaper download +20, pricing page
    visit +30, mail open +5, mail link click +10, seminar attendance +40, product page visited
    several times (the third visit) +15, once per lead.

    Attributes read: ``job_level`` (``"executive"``, ``"director"``, ``"department_head"``,
    ``"section_manager"``, ``"staff"``), ``industry``, ``employees``. Activities read:
    ``download`` with ``type="whitepaper"``, ``page_view`` with ``page="pricing"`` or
    ``page="product"``, ``email_open``, ``email_click``, ``seminar_attended``.

    Levels: ``MQL`` at ``mql_at`` (100). Temperature on engagement: hot ≥ 60, warm ≥ 20, else
    cold.
    """
    return ScoringModel(
        name="seed 002 point table",
        fit_rules=[
            FitRule(
                name="job level: department head or above",
                when=attr(JOB_LEVEL).one_of(*DEPARTMENT_HEAD_OR_ABOVE),
                points=20,
            ),
            FitRule(
                name="job level: section manager",
                when=attr(JOB_LEVEL).eq("section_manager"),
                points=10,
            ),
            FitRule(name="job level: staff", when=attr(JOB_LEVEL).eq("staff"), points=5),
            FitRule(
                name="industry: target",
                when=attr(INDUSTRY).one_of(*target_industries),
                points=15,
            ),
            FitRule(
                name="industry: semi-target",
                when=attr(INDUSTRY).one_of(*semi_target_industries),
                points=5,
            ),
            FitRule(name="employees: 50 or more", when=attr(EMPLOYEES).at_least(50), points=10),
        ],
        behaviour_rules=[
            BehaviourRule(
                name="whitepaper download",
                when=activity("download", type="whitepaper"),
                points=20,
            ),
            BehaviourRule(
                name="pricing page visit",
                when=activity("page_view", page="pricing"),
                points=30,
            ),
            BehaviourRule(name="e-mail open", when=activity("email_open"), points=5),
            BehaviourRule(name="e-mail link click", when=activity("email_click"), points=10),
            BehaviourRule(name="seminar attendance", when=activity("seminar_attended"), points=40),
            BehaviourRule(
                name="product page visited several times",
                when=activity("page_view", page="product")
                & did("page_view", page="product", at_least=3),
                points=15,
                cap=Cap(times=1),
            ),
        ],
        levels=[Level(name="MQL", at_least=mql_at)],
        bands=[Band(name="hot", at_least=60), Band(name="warm", at_least=20), Band(name="cold")],
        band_axis="engagement",
    )
