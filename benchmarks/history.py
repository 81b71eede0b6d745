"""Benchmark: the cost of an activity against the length of its lead's history.

    python benchmarks/history.py [--prior 10,10000] [--leads 20] [--timed 1000] [--memory]

The bundled program (``nurturekit.programs.b2b_program``: seed 002's scoring, with a history
rule "product pages visited several times", the three buying stages, seed 001's scenarios),
``--leads`` leads, and page views (blog, pricing, product in turn) recorded through
``Engine.record_many`` in batches of 1,000. For each number of prior activities per lead, the
history is recorded first (not timed), then ``--timed`` more page views spread over the same
leads are timed. The target: at 10,000 prior activities a lead, at most 1.5× slower than at 10.

SQLite's per-lead cache is sized to hold every lead's whole history (``--cache-size`` sets it):
past its bound the least recently used leads are dropped, and these leads, used in turn, would
then each be read back from the file, history and all, at every activity, which is what the
cache bound costs (docs/storage.md), not what a long history costs. The line of each run says
how many leads the cache held at the end.

It also reports the memory the in-memory store holds per prior activity (``tracemalloc``), next
to what the activities themselves take, and the SQLite file's size per activity.

Not a test: run it by hand. No ``gc.freeze()``: the timings are what an application sees.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from nurturekit import Activity, Consent, Lead, ManualClock
from nurturekit.engine import Engine
from nurturekit.mail import OutboxMailer
from nurturekit.ports import Storage
from nurturekit.programs import b2b_program
from nurturekit.storage import open_storage
from nurturekit.storage.memory import InMemoryStorage
from nurturekit.storage.sqlite import SQLiteStorage
from nurturekit.tokens import Links, TokenSigner

START = datetime(2025, 1, 6, 1, 0, tzinfo=timezone.utc)
PAGES = ("blog", "pricing", "product")
BATCH = 1000

#: The opt-in record marketing mail needs (Policies.require_consent, on by default).
OPTED_IN = Consent(
    at=datetime(2026, 1, 5, tzinfo=timezone.utc), method="web form", wording="配信に同意する"
)


def page_views(leads: int, first: int, count: int) -> list[Activity]:
    """``count`` page views per lead, numbered from ``first``: one an hour per lead, the
    leads a minute apart, in time order."""
    out = []
    for n in range(first, first + count):
        for lead in range(leads):
            out.append(
                Activity(
                    lead_id=f"lead-{lead}",
                    kind="page_view",
                    at=START + timedelta(hours=n, minutes=lead),
                    properties={"page": PAGES[n % 3]},
                    key=f"pv-{lead}-{n}",
                )
            )
    return out


def engine_on(storage: Storage, leads: int) -> tuple[Engine, ManualClock]:
    clock = ManualClock(START)
    engine = Engine(
        b2b_program(),
        storage,
        OutboxMailer(),
        links=Links("https://example.co.jp/nk", TokenSigner(secret=b"h" * 32)),
        clock=clock,
    )
    for n in range(leads):
        engine.upsert_lead(
            Lead(
                id=f"lead-{n}",
                email=f"lead-{n}@example.co.jp",
                name="田中",
                attributes={"job_level": "staff", "industry": "it", "employees": 60},
                created_at=START,
                consent=OPTED_IN,
            )
        )
    return engine, clock


def record(engine: Engine, clock: ManualClock, activities: list[Activity]) -> float:
    """Record ``activities`` in batches; return the seconds it took."""
    started = time.perf_counter()
    for i in range(0, len(activities), BATCH):
        batch = activities[i : i + BATCH]
        clock.set(batch[-1].at)
        engine.record_many(batch)
    return time.perf_counter() - started


def rate(make: Callable[[int], Storage], leads: int, prior: int, timed: int) -> tuple[float, str]:
    """Activities per second, and a note on the store (its cache) at the end."""
    per_lead = max(1, timed // leads)
    storage = make(leads * (prior + per_lead))
    engine, clock = engine_on(storage, leads)
    record(engine, clock, page_views(leads, 0, prior))
    elapsed = record(engine, clock, page_views(leads, prior, per_lead))
    note = ""
    if isinstance(storage, SQLiteStorage):
        cache = storage._cache
        note = f" (cache_size={cache.budget:,}: {len(cache)} leads cached, weight {cache.weight:,})"
        storage.close()
    return leads * per_lead / elapsed, note


def memory_per_activity(leads: int, prior: int) -> tuple[float, float]:
    """Bytes the in-memory store and engine hold per recorded activity, and bytes the
    activities themselves take (the list of Activity objects before recording)."""
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    activities = page_views(leads, 0, prior)
    own = (tracemalloc.get_traced_memory()[0] - base) / len(activities)
    storage = InMemoryStorage()
    engine, clock = engine_on(storage, leads)
    before = tracemalloc.get_traced_memory()[0]
    record(engine, clock, activities)
    held = (tracemalloc.get_traced_memory()[0] - before) / len(activities)
    tracemalloc.stop()
    return held, own


def sqlite_bytes_per_activity(leads: int, prior: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "history.db"
        storage = open_storage(f"sqlite:///{path}")
        engine, clock = engine_on(storage, leads)
        record(engine, clock, page_views(leads, 0, prior))
        storage.close()
        return path.stat().st_size / (leads * prior)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prior", default="10,10000", help="prior activities per lead")
    parser.add_argument("--leads", type=int, default=20)
    parser.add_argument("--timed", type=int, default=1000)
    parser.add_argument("--stores", default="memory,sqlite")
    parser.add_argument(
        "--cache-size",
        type=int,
        default=None,
        help="SQLiteStorage(cache_size=); default: twice the activities recorded, so that "
        "every lead stays cached",
    )
    parser.add_argument("--memory", action="store_true", help="also measure memory (slow)")
    args = parser.parse_args()
    priors = [int(p) for p in args.prior.split(",")]
    folder = tempfile.TemporaryDirectory()
    count = iter(range(1_000_000))

    def sqlite(activities: int) -> Storage:
        size = 2 * activities + 1000 if args.cache_size is None else args.cache_size
        return SQLiteStorage(f"{folder.name}/h{next(count)}.db", cache_size=size)

    stores: dict[str, Callable[[int], Storage]] = {
        "memory": lambda _: InMemoryStorage(),
        "sqlite": sqlite,
    }
    for name in args.stores.split(","):
        rates = {}
        for prior in priors:
            rates[prior], note = rate(stores[name], args.leads, prior, args.timed)
            print(f"{name}: {prior:>6,} prior a lead: {rates[prior]:>9,.0f} activities/s{note}")
            sys.stdout.flush()
        low, high = min(priors), max(priors)
        print(f"{name}: {high:,} prior is {rates[low] / rates[high]:.2f}× slower than {low:,}")
    if args.memory:
        for prior in priors:
            held, own = memory_per_activity(args.leads, prior)
            print(
                f"memory store at {prior:,} prior a lead: {held:,.0f} bytes held per activity "
                f"(the Activity objects themselves: {own:,.0f})"
            )
            size = sqlite_bytes_per_activity(args.leads, prior)
            print(f"SQLite file at {prior:,} prior a lead: {size:,.0f} bytes per activity")
    folder.cleanup()


if __name__ == "__main__":
    main()
