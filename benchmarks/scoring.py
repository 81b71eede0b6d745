"""Benchmark: activities scored per second with the seed-002 model, against a minimal loop.

    python benchmarks/scoring.py [--leads 100000] [--per-lead 6] [--runs 5]

Builds ``--leads`` leads and ``--per-lead`` activities each (a realistic mix: whitepaper
downloads, pricing, product and blog page views, mail opens and clicks, seminars), then times,
over several runs, the median of:

- ``apply``: :meth:`ScoringModel.apply` for every activity, in time order across leads, with the
  lead's history as the engine passes it;
- ``apply+score``: the same, plus reading :meth:`ScoringModel.score` after every activity, as the
  engine does before it checks stages and the MQL line;
- ``minimal``: a hand-written loop doing the same arithmetic with plain dicts and tuples
  (dedupe by key, rules by kind, property match, the "third product page visit" history count,
  a ledger line, a running total).

It prints activities per second for each and the ratio of ``apply`` to ``minimal``. Targets:
≥ 200k activities/s on one core, within 3× of the minimal loop. Not a test: run it by hand.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from nurturekit import Activity, Lead
from nurturekit.presets import seed002_scoring_model

KINDS = [
    ("download", {"type": "whitepaper"}),
    ("page_view", {"page": "pricing"}),
    ("page_view", {"page": "product"}),
    ("page_view", {"page": "blog"}),
    ("email_open", {}),
    ("email_open", {}),
    ("email_click", {}),
    ("seminar_attended", {}),
]
JOB_LEVELS = ["executive", "department_head", "section_manager", "staff", "unknown"]
INDUSTRIES = ["manufacturing", "it", "retail", "logistics", "finance"]


def build(leads: int, per_lead: int, seed: int = 7) -> tuple[dict[str, Lead], list[Activity]]:
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    people = {}
    activities = []
    for n in range(leads):
        lead_id = f"lead-{n}"
        people[lead_id] = Lead(
            id=lead_id,
            email=f"person{n}@example.co.jp",
            attributes={
                "job_level": rng.choice(JOB_LEVELS),
                "industry": rng.choice(INDUSTRIES),
                "employees": rng.choice([5, 30, 50, 120, 800]),
            },
        )
        for _ in range(per_lead):
            kind, props = rng.choice(KINDS)
            at = start + timedelta(minutes=rng.randrange(60 * 24 * 90))
            activities.append(Activity(lead_id=lead_id, kind=kind, at=at, properties=props))
    activities.sort(key=lambda a: (a.at, a.key))
    return people, activities


def run_library(people: dict[str, Lead], activities: list[Activity], read_score: bool) -> float:
    model = seed002_scoring_model()
    cards = {lead_id: model.new_card(lead) for lead_id, lead in people.items()}
    histories: dict[str, list[Activity]] = {lead_id: [] for lead_id in people}
    apply, score = model.apply, model.score
    started = time.perf_counter()
    for item in activities:
        lead_id = item.lead_id
        history = histories[lead_id]
        history.append(item)
        card = cards[lead_id]
        apply(card, people[lead_id], item, history)
        if read_score:
            score(card, item.at)
    return time.perf_counter() - started


def run_minimal(people: dict[str, Lead], activities: list[Activity]) -> float:
    points = {
        ("download", "whitepaper"): ("whitepaper download", 20),
        ("page_view", "pricing"): ("pricing page visit", 30),
        ("email_open", None): ("e-mail open", 5),
        ("email_click", None): ("e-mail link click", 10),
        ("seminar_attended", None): ("seminar attendance", 40),
    }
    prop_of = {"download": "type", "page_view": "page"}
    seen: set[str] = set()
    totals = dict.fromkeys(people, 0)
    ledgers: dict[str, list[tuple[str, int, datetime, str]]] = {lead_id: [] for lead_id in people}
    histories: dict[str, list[Activity]] = {lead_id: [] for lead_id in people}
    product_awarded: set[str] = set()
    started = time.perf_counter()
    for item in activities:
        key = item.key
        if key in seen:
            continue
        seen.add(key)
        lead_id = item.lead_id
        history = histories[lead_id]
        history.append(item)
        kind = item.kind
        prop = prop_of.get(kind)
        value = item.properties.get(prop) if prop else None
        rule = points.get((kind, value))
        if rule is not None:
            ledgers[lead_id].append((rule[0], rule[1], item.at, key))
            totals[lead_id] += rule[1]
        if kind == "page_view" and value == "product" and lead_id not in product_awarded:
            visits = sum(
                1
                for h in history
                if h.kind == "page_view" and h.properties.get("page") == "product"
            )
            if visits >= 3:
                product_awarded.add(lead_id)
                ledgers[lead_id].append(("product page visited several times", 15, item.at, key))
                totals[lead_id] += 15
    return time.perf_counter() - started


def median_rate(runs: int, count: int, job: Callable[[], float]) -> float:
    rates = []
    for _ in range(runs):
        gc.collect()
        rates.append(count / job())
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--per-lead", type=int, default=6)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    people, activities = build(args.leads, args.per_lead)
    count = len(activities)
    print(f"{args.leads} leads, {count} activities, median of {args.runs} runs")
    minimal = median_rate(args.runs, count, lambda: run_minimal(people, activities))
    applied = median_rate(args.runs, count, lambda: run_library(people, activities, False))
    scored = median_rate(args.runs, count, lambda: run_library(people, activities, True))
    print(f"minimal loop        {minimal:12,.0f} activities/s")
    print(f"apply               {applied:12,.0f} activities/s")
    print(f"apply+score         {scored:12,.0f} activities/s")
    print(f"apply vs minimal    {minimal / applied:12.2f}x slower")
    print(f"apply+score vs min  {minimal / scored:12.2f}x slower")


if __name__ == "__main__":
    main()
