"""Score one lead with the seed-002 point table and print why it has the score it has.

Run it with ``python examples/score_a_lead.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from nurturekit import Activity, Lead
from nurturekit.conditions import View, did, level
from nurturekit.presets import seed002_scoring_model


def main() -> None:
    model = seed002_scoring_model()
    lead = Lead(
        id="lead-0042",
        email="sato@tokai-seiki.example.co.jp",
        name="Sato Hanako",
        company="Tokai Seiki",
        attributes={"job_level": "department_head", "industry": "manufacturing", "employees": 120},
        source="whitepaper",
    )
    start = datetime(2026, 4, 1, 9, 30, tzinfo=timezone.utc)
    history = [
        Activity(lead_id=lead.id, kind="download", at=start, properties={"type": "whitepaper"}),
        Activity(
            lead_id=lead.id,
            kind="download",
            at=start + timedelta(days=2),
            properties={"type": "whitepaper"},
        ),
        Activity(
            lead_id=lead.id,
            kind="page_view",
            at=start + timedelta(days=3, hours=4),
            properties={"page": "pricing"},
        ),
    ]

    card = model.new_card(lead)
    for seen, item in enumerate(history, start=1):
        model.apply(card, lead, item, history[:seen])
    now = start + timedelta(days=4)
    score = model.score(card, now)
    print(score.explain())

    # The MQL definition of seed 002 is a condition like any other, and explains itself.
    mql = level("MQL") & did("page_view", page="pricing", within="30d")
    print()
    print(mql.explain(View(lead=lead, now=now, activities=history, score=score)))


if __name__ == "__main__":
    main()
