"""Notebook-style exploration: run the bundled program briefly, then look at plain records.

Every function here returns a list of dicts — one row each, plain values — ready for
``pandas.DataFrame(rows)`` if you have pandas, or for printing if you do not. Run it with
``python examples/explore_records.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from nurturekit import Activity, Engine, Lead, ManualClock
from nurturekit.analytics import scenario_kpis
from nurturekit.mail import OutboxMailer
from nurturekit.ports import Storage
from nurturekit.programs import b2b_program
from nurturekit.storage import open_storage
from nurturekit.tokens import Links, TokenSigner


def score_rows(engine: Engine, now: datetime) -> list[dict[str, Any]]:
    """One row per lead: its score, the parts of it, its temperature and stage."""
    rows = []
    for lead in engine.storage.leads():
        state = engine.storage.get_state(lead.id)
        if state is None:
            continue
        score = engine.program.scoring.score(state.card, now)
        rows.append(
            {
                "lead": lead.id,
                "total": score.total,
                "fit": score.fit,
                "engagement": score.engagement,
                "temperature": score.temperature,
                "stage": state.moves[-1].target if state.moves else None,
                "mql": "MQL" in score.levels,
            }
        )
    return sorted(rows, key=lambda row: -row["total"])


def ledger_rows(engine: Engine, lead_id: str, now: datetime) -> list[dict[str, Any]]:
    """Why a lead has its score: one row per ledger line."""
    state = engine.storage.get_state(lead_id)
    assert state is not None
    return [
        {"rule": c.rule, "axis": c.axis, "points": c.points, "value": c.value, "at": c.at}
        for c in engine.program.scoring.score(state.card, now).ledger
    ]


def step_rows(storage: Storage) -> list[dict[str, Any]]:
    """One row per scenario step that sent mail, with its rates."""
    return [
        {
            "scenario": step.scenario,
            "step": step.step,
            "sent": step.sent,
            "open_rate": step.open_rate,
            "click_rate": step.click_rate,
        }
        for kpis in scenario_kpis(storage)
        for step in kpis.steps
    ]


def main() -> None:
    clock = ManualClock(datetime(2026, 4, 6, 1, 0, tzinfo=timezone.utc))
    engine = Engine(
        b2b_program(),
        open_storage("memory://"),
        OutboxMailer(),
        clock=clock,
        links=Links("https://example.co.jp/nk", TokenSigner(secret=b"example-secret" * 3)),
    )
    people = {
        "sato": {"job_level": "department_head", "industry": "manufacturing", "employees": 120},
        "ito": {"job_level": "staff", "industry": "retail", "employees": 30},
    }
    for lead_id, attributes in people.items():
        engine.upsert_lead(
            Lead(id=lead_id, email=f"{lead_id}@example.co.jp", attributes=attributes)
        )
    for lead_id, kind, props in (
        ("sato", "download", {"type": "whitepaper"}),
        ("ito", "page_view", {"page": "blog"}),
        ("sato", "page_view", {"page": "pricing"}),
    ):
        engine.record(Activity(lead_id=lead_id, kind=kind, at=clock.now(), properties=props))
        clock.advance(timedelta(minutes=30))
    engine.run_due()
    now = clock.now()
    for title, rows in (
        ("scores", score_rows(engine, now)),
        ("sato's ledger", ledger_rows(engine, "sato", now)),
        ("steps", step_rows(engine.storage)),
    ):
        print(title)
        for row in rows:
            print("  ", row)


if __name__ == "__main__":
    main()
