"""Benchmark: the database stores.

    python benchmarks/storage.py [--activities 50000] [--sends 5000] [--runs 3] [--dsn ...]

1. SQLite ``record_many``: activities per second through ``Engine.record_many`` in batches of
   1,000 (one transaction per batch) — target ≥ 30k/s (the SQLite FAQ's ~50k inserts/s in one
   transaction is the anchor) — and single ``Engine.record`` calls per second, each its own
   durable commit.
2. PostgreSQL ``run_due``: steps per second with 1 and with 2 worker processes draining
   ``--sends`` due sends (each a real step: compose, outbox row, hand-over to a mailer that
   appends to a file) — target ≥ 1,000 steps/s per worker, and 2 workers ≥ 1.6× one. The
   clock starts when every worker process is up and connected, and stops at the last send.

Medians of ``--runs`` runs. Not a test: run it by hand. PostgreSQL figures need ``--dsn`` (or
NURTUREKIT_TEST_POSTGRES_DSN).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from engine_fixtures import OPTED_IN, START, World  # noqa: E402
from test_reliability import read_log, seed, start  # noqa: E402

from nurturekit import Activity  # noqa: E402
from nurturekit.engine import Engine  # noqa: E402
from nurturekit.lead import Lead  # noqa: E402
from nurturekit.storage import open_storage  # noqa: E402

KINDS = [("page_view", {"page": "blog"}), ("email_open", {}), ("page_view", {"page": "pricing"})]


def sqlite_rates(count: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as folder:
        world = World()
        storage = open_storage(f"sqlite:///{folder}/bench.db")
        engine = Engine(
            world.engine.program, storage, world.mailer, links=world.links, clock=world.clock
        )
        leads = max(1, count // 5)
        with storage.transaction():
            for n in range(leads):
                engine.upsert_lead(
                    Lead(id=f"l{n}", email=f"l{n}@example.co.jp", name="田中", consent=OPTED_IN)
                )
        activities = [
            Activity(
                lead_id=f"l{n % leads}",
                kind=KINDS[n % 3][0],
                at=START + timedelta(seconds=n),
                properties=KINDS[n % 3][1],
            )
            for n in range(count)
        ]
        world.clock.set(activities[-1].at)
        started = time.perf_counter()
        for i in range(0, count, 1000):
            engine.record_many(activities[i : i + 1000])
        batch_rate = count / (time.perf_counter() - started)
        singles = [
            Activity(lead_id="l0", kind="page_view", at=START + timedelta(days=1, seconds=n))
            for n in range(500)
        ]
        started = time.perf_counter()
        for activity in singles:
            engine.record(activity)
        single_rate = len(singles) / (time.perf_counter() - started)
        return batch_rate, single_rate


def postgres_rate(dsn: str, sends: int, workers: int) -> float:
    schema = f"nk_bench_{uuid.uuid4().hex[:12]}"
    url = f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}"
    seed(url, sends)
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "sent.log"
        go = Path(folder) / "go"
        names = [f"w{n}" for n in range(workers)]
        procs = [start(url, log, name, idle=1.0, go=go) for name in names]
        # Time the workers' run_due, not their start-up (Python, imports, connecting): each
        # waits, ready, until every one is, then they start together.
        while not all(Path(f"{log}.{name}.started").exists() for name in names):
            time.sleep(0.01)
        started = time.perf_counter()
        go.touch()
        while len(read_log(log)) < sends:
            time.sleep(0.01)
        elapsed = time.perf_counter() - started
        for proc in procs:
            proc.wait()
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    return sends / elapsed


def _runs(values: list[float]) -> str:
    return (
        f"{statistics.median(values):,.0f}/s (runs: " + ", ".join(f"{v:,.0f}" for v in values) + ")"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--activities", type=int, default=50_000)
    parser.add_argument("--sends", type=int, default=5_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dsn", default=os.environ.get("NURTUREKIT_TEST_POSTGRES_DSN"))
    args = parser.parse_args()
    rates = [sqlite_rates(args.activities) for _ in range(args.runs)]
    print(f"medians of {args.runs} runs")
    print(f"SQLite record_many: {_runs([batch for batch, _ in rates])} activities")
    print(f"SQLite single durable record: {_runs([single for _, single in rates])}")
    if args.dsn:
        ones, twos, ratios = [], [], []
        for _ in range(args.runs):
            one = postgres_rate(args.dsn, args.sends, 1)
            two = postgres_rate(args.dsn, args.sends, 2)
            ones.append(one)
            twos.append(two)
            ratios.append(two / one)
        print(f"PostgreSQL run_due, 1 worker: {_runs(ones)} steps")
        print(f"PostgreSQL run_due, 2 workers: {_runs(twos)} steps")
        print(
            f"2 workers vs 1: {statistics.median(ratios):.2f}x (runs: "
            + ", ".join(f"{r:.2f}x" for r in ratios)
            + ")"
        )


if __name__ == "__main__":
    main()
