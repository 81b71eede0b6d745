"""Notebook-style exploration: run the bundled program briefly, then look at its reports.

Every report of :mod:`nurturekit.reports` is a table of plain values: ``rows()`` gives dicts,
``to_pandas()`` a DataFrame (with the ``pandas`` extra), ``print()`` a text table, and a
notebook shows it as HTML (see ``examples/notebook.ipynb``). Run it with
``python examples/explore_records.py``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from nurturekit import Activity, Consent, Engine, Lead, ManualClock, reports
from nurturekit.mail import OutboxMailer
from nurturekit.programs import b2b_program
from nurturekit.storage import open_storage
from nurturekit.tokens import Links, TokenSigner

# The opt-in record marketing mail needs (Policies.require_consent, on by default).
OPTED_IN = Consent(
    at=datetime(2026, 4, 1, tzinfo=timezone.utc),
    method="web form",
    wording="製品情報のメール配信に同意する",
)


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
            Lead(
                id=lead_id,
                email=f"{lead_id}@example.co.jp",
                attributes=attributes,
                consent=OPTED_IN,
            )
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
    program, storage = engine.program, engine.storage
    print(reports.lead_scores(storage, program, now=now))
    print()
    state = storage.get_state("sato")
    assert state is not None
    print(program.scoring.score(state.card, now).explain())  # why sato has that score
    print()
    print(reports.step_kpis(storage, program=program))
    print()
    print(reports.funnel(storage, program))


if __name__ == "__main__":
    main()
