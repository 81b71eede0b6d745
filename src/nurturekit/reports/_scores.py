"""The leads' current scores: each lead's, and how they spread in bins of equal width."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from nurturekit._time import aware_utc
from nurturekit.errors import InvalidInput
from nurturekit.ports import Storage
from nurturekit.program import Program
from nurturekit.reports._common import states
from nurturekit.reports._table import Report

__all__ = ["LEAD_SCORE_COLUMNS", "SCORE_COLUMNS", "lead_scores", "score_distribution"]

SCORE_COLUMNS = ("from_score", "to_score", "leads")


def score_distribution(
    storage: Storage, program: Program, *, now: datetime, width: int = 20
) -> Report:
    """The total score at ``now`` of every lead with a state
    (``program.scoring.score(state.card, now).total``, decay applied), counted in bins of
    ``width`` points.

    Columns:

    - ``from_score``: the lowest score of the bin (a multiple of ``width``; negative scores
      get bins below 0).
    - ``to_score``: the bin's end, excluded (``from_score + width``).
    - ``leads``: leads whose total is in ``[from_score, to_score)``.

    Rows go from the lowest score's bin to the highest's, the empty bins between included;
    no rows when no lead has a state. It reads the leads and their states (in batches) once.

    >>> from datetime import datetime, timezone
    >>> from nurturekit.programs import b2b_program
    >>> from nurturekit.storage.memory import InMemoryStorage
    >>> now = datetime(2026, 4, 1, tzinfo=timezone.utc)
    >>> score_distribution(InMemoryStorage(), b2b_program(), now=now)
    <Report 'Score distribution': 0 rows × 3 columns>
    """
    current = aware_utc(now, "score_distribution(now)")
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise InvalidInput(
            "score_distribution(width)", f"{width!r} is not a bin width; give a whole number ≥ 1"
        )
    scoring = program.scoring
    bins: Counter[int] = Counter()
    lead_ids = [lead.id for lead in storage.leads()]
    for state in states(storage, lead_ids):
        total = scoring.score(state.card, current).total
        bins[total // width * width] += 1
    rows = []
    if bins:
        for start in range(min(bins), max(bins) + width, width):
            rows.append({"from_score": start, "to_score": start + width, "leads": bins[start]})
    notes = [
        f"Leads with a state by their total score as of {current.isoformat()}, in bins of "
        f"{width} points: from_score included, to_score excluded.",
    ]
    return Report("Score distribution", SCORE_COLUMNS, rows, notes)


LEAD_SCORE_COLUMNS = (
    "lead_id",
    "email",
    "company",
    "total",
    "fit",
    "engagement",
    "temperature",
    "levels",
    "stage",
)


def lead_scores(storage: Storage, program: Program, *, now: datetime) -> Report:
    """Every lead with a state and its score at ``now``, highest total first (ties by id).

    Columns:

    - ``lead_id``, ``email``, ``company``: the lead.
    - ``total``, ``fit``, ``engagement``: ``program.scoring.score(state.card, now)``, decay
      applied.
    - ``temperature``: the score's band (``hot``, ``warm``, ``cold`` in the bundled program),
      or ``None`` when the model has no bands.
    - ``levels``: the levels the lead holds now, comma-separated (``"MQL"``), ``""`` for none.
    - ``stage``: the stage the lead is in (the last move's target), ``None`` without stages.

    Why one lead has its score: ``program.scoring.score(state.card, now).explain()``.

    >>> from datetime import datetime, timezone
    >>> from nurturekit.programs import b2b_program
    >>> from nurturekit.storage.memory import InMemoryStorage
    >>> now = datetime(2026, 4, 1, tzinfo=timezone.utc)
    >>> lead_scores(InMemoryStorage(), b2b_program(), now=now).columns[:4]
    ('lead_id', 'email', 'company', 'total')
    """
    current = aware_utc(now, "lead_scores(now)")
    scoring = program.scoring
    leads = {lead.id: lead for lead in storage.leads()}
    scored = []
    for state in states(storage, leads):
        lead = leads[state.lead_id]
        score = scoring.score(state.card, current)
        scored.append((-score.total, lead.id, lead, score, state))
    scored.sort(key=lambda item: item[:2])
    rows = []
    for _, _, lead, score, state in scored:
        rows.append(
            {
                "lead_id": lead.id,
                "email": lead.email,
                "company": lead.company,
                "total": score.total,
                "fit": score.fit,
                "engagement": score.engagement,
                "temperature": score.temperature,
                "levels": ", ".join(score.levels),
                "stage": state.moves[-1].target if state.moves else None,
            }
        )
    notes = [f"Scores as of {current.isoformat()}, highest first."]
    return Report("Lead scores", LEAD_SCORE_COLUMNS, rows, notes)
