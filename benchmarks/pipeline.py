"""Benchmark: the full ``record`` pipeline, and ``run_due`` against how much is enrolled.

    python benchmarks/pipeline.py [--leads 100000] [--per-lead 3] [--runs 3]

1. ``record``: activities per second through :meth:`Engine.record` — store, seed-002 scoring,
   the three-stage machine, seed 001's three scenarios (goals, waits, triggers) — over
   ``--leads`` leads in memory. Target ≥ 50k/s. Then the same kind of workload over
   ``--sqlite-leads`` leads on an SQLite file through :meth:`Engine.record_many` in batches of
   1,000, and its ratio to the in-memory figure of the same run (target ≥ 0.5×).
2. ``run_due``: the time to run 1,000 due enrolments (a send each, into an outbox mailer) when
   10,000 are enrolled, and when 1,000,000 are; the ratio should stay within 1.5×: run_due
   costs what is due, not what is enrolled.

Medians of ``--runs`` runs. Not a test: run it by hand.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from engine_fixtures import MIX, START, World

from nurturekit import Activity
from nurturekit.ports import Storage
from nurturekit.scenario import Enrollment, EnrollmentStatus
from nurturekit.storage import open_storage


def workload(
    leads: int, per_lead: int, storage: Storage | None = None
) -> tuple[World, list[Activity]]:
    """``leads`` leads of mixed fit in a fresh world (on ``storage``, else in memory), and
    ``per_lead`` random activities each over 30 days, in time order; the world's clock stands
    at the last one."""
    world = World(storage)
    rng = random.Random(1)
    with world.storage.transaction():
        for n in range(leads):
            world.lead(
                f"l{n}",
                job_level=rng.choice(["staff", "section_manager", "department_head"]),
                industry=rng.choice(["it", "retail", "finance"]),
                employees=rng.choice([10, 60, 300]),
            )
    activities = []
    for n in range(leads):
        for _ in range(per_lead):
            kind, props = rng.choice(MIX)
            at = START + timedelta(minutes=rng.randrange(60 * 24 * 30))
            activities.append(Activity(lead_id=f"l{n}", kind=kind, at=at, properties=props))
    activities.sort(key=lambda a: a.at)
    world.clock.set(activities[-1].at)
    return world, activities


def record_rate(leads: int, per_lead: int) -> float:
    world, activities = workload(leads, per_lead)
    gc.collect()
    record = world.engine.record
    started = time.perf_counter()
    for activity in activities:
        record(activity)
    elapsed = time.perf_counter() - started
    return len(activities) / elapsed


def sqlite_record_many_rate(leads: int, per_lead: int) -> float:
    """The workload on a fresh SQLite file, through ``record_many`` in batches of 1,000."""
    with tempfile.TemporaryDirectory() as folder:
        storage = open_storage(f"sqlite:///{folder}/pipeline.db")
        world, activities = workload(leads, per_lead, storage)
        gc.collect()
        record_many = world.engine.record_many
        started = time.perf_counter()
        for i in range(0, len(activities), 1000):
            record_many(activities[i : i + 1000])
        elapsed = time.perf_counter() - started
        storage.close()
        return len(activities) / elapsed


def run_due_seconds(enrolled: int, due: int = 1000) -> float:
    world = World()
    storage = world.storage
    for n in range(due):
        world.lead(f"d{n}")
    now = world.clock.now()
    later = now + timedelta(days=30)
    for n in range(enrolled):
        is_due = n < due
        storage.put_enrollment(
            Enrollment(
                id=f"whitepaper follow-up/{'d' if is_due else 'x'}{n}/1",
                scenario="whitepaper follow-up",
                lead_id=f"d{n}" if is_due else f"x{n}",
                number=1,
                status=EnrollmentStatus.ACTIVE,
                step="case",
                due_at=now if is_due else later + timedelta(seconds=n),
                entered_at=now,
            )
        )
    gc.collect()
    started = time.perf_counter()
    report = world.engine.run_due(limit=due)
    elapsed = time.perf_counter() - started
    assert report.sent == due, report
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--per-lead", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sqlite-leads", type=int, default=10_000)
    parser.add_argument("--big", type=int, default=1_000_000)
    args = parser.parse_args()

    rates = [record_rate(args.leads, args.per_lead) for _ in range(args.runs)]
    print(
        f"record: {args.leads} leads × {args.per_lead} activities, median of {args.runs}: "
        f"{statistics.median(rates):,.0f} activities/s  (runs: "
        + ", ".join(f"{r:,.0f}" for r in rates)
        + ")"
    )
    on_sqlite = [
        sqlite_record_many_rate(args.sqlite_leads, args.per_lead) for _ in range(args.runs)
    ]
    print(
        f"SQLite record_many, {args.sqlite_leads} leads: {statistics.median(on_sqlite):,.0f} "
        f"activities/s, {statistics.median(on_sqlite) / statistics.median(rates):.2f}× in memory"
        "  (runs: " + ", ".join(f"{r:,.0f}" for r in on_sqlite) + ")"
    )
    small = statistics.median(run_due_seconds(10_000) for _ in range(args.runs))
    big = statistics.median(run_due_seconds(args.big) for _ in range(args.runs))
    print(f"run_due 1,000 due among 10,000 enrolled: {small * 1000:.1f} ms")
    print(f"run_due 1,000 due among {args.big:,} enrolled: {big * 1000:.1f} ms")
    print(f"ratio: {big / small:.2f}x")


if __name__ == "__main__":
    main()
