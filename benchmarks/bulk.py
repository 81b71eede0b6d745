"""Benchmark: bulk imports, as ``nurturekit import`` runs them.

    python benchmarks/bulk.py [--leads 1000000] [--pg URL] [--stores sqlite,pg] [--folder DIR]

Writes N leads (CSV: id, email, name, company, job_level, industry, employees and the consent
columns, four leads in five with an opt-in record) and N activities (JSONL, one per lead: page
views of the product, blog and pricing pages, mail opens and whitepaper downloads, at random
times over the 60 days before the run's clock, so the file is in time order and its leads in
no order) into a temporary folder, then imports them with
:func:`nurturekit.importer.import_file`, leads first, into a fresh store of each kind: a SQLite
file and a fresh PostgreSQL schema (``--pg``, by default ``NURTUREKIT_TEST_POSTGRES_DSN``;
skipped without one). Each store is imported into by a process of its own, with the bundled
program and the command line's cutoff (activities more than a day before the clock are
history), on a :class:`~nurturekit.clock.ManualClock`.

Prints, per store: leads per second, activities per second, the importing process's peak
RSS (after the leads, and at the end) and the bytes on disk per lead and per activity (SQLite:
the file's size after the leads, and what the activities added; PostgreSQL:
``pg_total_relation_size`` of the schema's tables). ``--leads 100000`` for a quick run. Not a
test: run it by hand, and note the calibration it prints (``python -m timeit
"sum(range(1000))"``, before and after).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import timeit
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
JOB_LEVELS = ("executive", "director", "department_head", "section_manager", "staff")
INDUSTRIES = ("manufacturing", "it", "retail", "logistics", "finance")
#: (weight, kind, properties) of the activities.
ACTIVITIES: tuple[tuple[int, str, dict[str, str]], ...] = (
    (3, "page_view", {"page": "product"}),
    (2, "page_view", {"page": "blog"}),
    (1, "page_view", {"page": "pricing"}),
    (3, "email_open", {}),
    (1, "download", {"type": "whitepaper", "asset": "DX guide"}),
)


def write_leads(path: Path, count: int, rng: random.Random) -> None:
    columns = [
        "id",
        "email",
        "name",
        "company",
        "job_level",
        "industry",
        "employees",
        "consent_at",
        "consent_method",
        "consent_wording",
        "consent_source",
    ]
    with path.open("w", newline="", encoding="utf-8") as file:
        out = csv.writer(file)
        out.writerow(columns)
        for n in range(count):
            consent = (
                ["2026-04-01T09:00:00+09:00", "web form", "配信に同意する", "https://example.jp/f"]
                if n % 5
                else ["", "", "", ""]
            )
            out.writerow(
                [
                    f"L{n:07d}",
                    f"lead{n}@example.co.jp",
                    f"田中 {n}",
                    f"株式会社サンプル{n % 5000}",
                    JOB_LEVELS[rng.randrange(len(JOB_LEVELS))],
                    INDUSTRIES[rng.randrange(len(INDUSTRIES))],
                    str(rng.randrange(1, 5000)),
                    *consent,
                ]
            )


def write_activities(path: Path, count: int, rng: random.Random) -> None:
    """One activity per lead, in time order (the leads in no order)."""
    kinds = [(kind, properties) for weight, kind, properties in ACTIVITIES for _ in range(weight)]
    span = int(timedelta(days=60).total_seconds())
    times = sorted((rng.randrange(span), n) for n in range(count))
    with path.open("w", encoding="utf-8") as file:
        for seconds, n in times:
            kind, properties = kinds[rng.randrange(len(kinds))]
            at = NOW - timedelta(seconds=span - seconds)
            row: dict[str, Any] = {"lead_id": f"L{n:07d}", "kind": kind, "at": at.isoformat()}
            if properties:
                row["properties"] = properties
            file.write(json.dumps(row, ensure_ascii=False) + "\n")


def peak_rss() -> float:
    """This process's peak resident set in bytes (``VmHWM``, as benchmarks/send.py reads it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) * 1024
    except OSError:
        pass
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)


def importer(url: str, folder: Path) -> None:
    """In a child process: import the leads, then the activities, into the store at ``url``;
    print the timings, the peaks and the summaries as JSON."""
    from nurturekit import ManualClock
    from nurturekit.engine import Engine
    from nurturekit.importer import import_file
    from nurturekit.mail import OutboxMailer
    from nurturekit.programs import b2b_program
    from nurturekit.storage import open_storage
    from nurturekit.tokens import Links, TokenSigner

    def engine() -> Engine:
        return Engine(
            b2b_program(),
            open_storage(url),
            OutboxMailer(),
            links=Links("https://example.com/nurturekit", TokenSigner(secret=b"-" * 32)),
            clock=ManualClock(NOW),
        )

    # Two engines, as two runs of `nurturekit import` would have: the activities find no lead
    # in memory.
    first = engine()
    started = time.perf_counter()
    leads = import_file(first, folder / "leads.csv")
    lead_seconds = time.perf_counter() - started
    lead_peak = peak_rss()
    first.storage.close()
    size_after_leads = _size(url)
    second = engine()
    started = time.perf_counter()
    activities = import_file(
        second, folder / "activities.jsonl", history_before=NOW - timedelta(days=1)
    )
    activity_seconds = time.perf_counter() - started
    second.storage.close()
    result = {
        "leads": leads.imported,
        "lead_errors": len(leads.errors),
        "lead_seconds": lead_seconds,
        "lead_peak": lead_peak,
        "activities": activities.imported,
        "history": activities.history,
        "activity_errors": len(activities.errors),
        "activity_seconds": activity_seconds,
        "peak": peak_rss(),
        "size_after_leads": size_after_leads,
    }
    print(json.dumps(result))


def _size(url: str) -> int:
    """The bytes the store at ``url`` takes on disk: a SQLite file with its write-ahead log,
    or a PostgreSQL schema's tables with their indexes and TOAST."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    schema = next(v for k, v in query if k == "schema")
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return _pg_size(urlunsplit(parts._replace(query=rest)), schema)


def _pg_size(dsn: str, schema: str) -> int:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind = 'r'",
            (schema,),
        ).fetchone()
    return int(row[0]) if row else 0


def _pg_table_sizes(dsn: str, schema: str) -> dict[str, int]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind = 'r'",
            (schema,),
        ).fetchall()
    return {name: int(size) for name, size in rows}


def _drop_schema(dsn: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def run_child(url: str, folder: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", url, str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"the import into {url.split('?')[0]} failed")
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def calibration() -> float:
    """``python -m timeit "sum(range(1000))"``'s figure, in µs per loop (best of 5)."""
    timer = timeit.Timer("sum(range(1000))")
    number, _ = timer.autorange()
    return min(timer.repeat(5, number)) / number * 1e6


def report(store: str, count: int, result: dict[str, float], sizes: tuple[int, int]) -> None:
    lead_bytes, activity_bytes = sizes
    mb = 2**20
    print(
        f"{store}: leads {result['leads']:,.0f} in {result['lead_seconds']:,.1f} s = "
        f"{result['leads'] / result['lead_seconds']:,.0f}/s (peak RSS "
        f"{result['lead_peak'] / mb:,.0f} MB); activities {result['activities']:,.0f} "
        f"({result['history']:,.0f} as history) in {result['activity_seconds']:,.1f} s = "
        f"{result['activities'] / result['activity_seconds']:,.0f}/s; peak RSS "
        f"{result['peak'] / mb:,.0f} MB; on disk {lead_bytes / count:,.0f} B a lead, "
        f"{activity_bytes / count:,.0f} B an activity "
        f"({(lead_bytes + activity_bytes) / count:,.0f} B a lead with its activity)"
    )
    if result["lead_errors"] or result["activity_errors"]:
        print(f"  errors: {result['lead_errors']:.0f} leads, {result['activity_errors']:.0f}")


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        importer(sys.argv[2], Path(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--pg", default=os.environ.get("NURTUREKIT_TEST_POSTGRES_DSN"))
    parser.add_argument("--stores", default="sqlite,pg")
    parser.add_argument("--folder", help="where to write the files (default: a temporary one)")
    args = parser.parse_args()
    stores = args.stores.split(",")
    print(f"calibration: timeit sum(range(1000)) {calibration():.1f} µs")
    with tempfile.TemporaryDirectory(dir=args.folder) as name:
        folder = Path(name)
        rng = random.Random(19)
        started = time.perf_counter()
        write_leads(folder / "leads.csv", args.leads, rng)
        write_activities(folder / "activities.jsonl", args.leads, rng)
        print(
            f"{args.leads:,} leads and activities written in "
            f"{time.perf_counter() - started:,.1f} s "
            f"({(folder / 'leads.csv').stat().st_size / 2**20:,.0f} MB of CSV, "
            f"{(folder / 'activities.jsonl').stat().st_size / 2**20:,.0f} MB of JSONL)"
        )
        if "sqlite" in stores:
            path = folder / "bulk.db"
            result = run_child(f"sqlite:///{path}", folder)
            after_leads = int(result["size_after_leads"])
            total = _size(f"sqlite:///{path}")
            report("SQLite", args.leads, result, (after_leads, total - after_leads))
            path.unlink()
        if "pg" in stores:
            if not args.pg:
                print("PostgreSQL: skipped (no --pg and no NURTUREKIT_TEST_POSTGRES_DSN)")
            else:
                schema = f"nk_bulk_{uuid.uuid4().hex[:12]}"
                url = f"{args.pg}{'&' if '?' in args.pg else '?'}schema={schema}"
                try:
                    result = run_child(url, folder)
                    tables = _pg_table_sizes(args.pg, schema)
                    after_leads = int(result["size_after_leads"])
                    total = _pg_size(args.pg, schema)
                    report("PostgreSQL", args.leads, result, (after_leads, total - after_leads))
                    shown = ", ".join(
                        f"{t} {s / 2**20:,.0f} MB" for t, s in sorted(tables.items()) if s > 8192
                    )
                    print(f"  tables: {shown}")
                finally:
                    _drop_schema(args.pg, schema)
    print(f"calibration: timeit sum(range(1000)) {calibration():.1f} µs")


if __name__ == "__main__":
    main()
