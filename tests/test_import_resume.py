"""Resumable imports, with real processes: ``nurturekit import`` killed with SIGKILL part-way
through a leads CSV and through an activities JSONL, then run again to completion, gives what
an uninterrupted import gives (the exports of leads, activities and scores are equal), on
SQLite and PostgreSQL; the second run says how many rows it skipped as already present.
Ctrl-C (SIGINT) says how far the import got, without a traceback, and exits with 130.

The files are written as ``benchmarks/bulk.py`` writes them (its ``write_leads`` and
``write_activities``). The PostgreSQL cases need ``NURTUREKIT_TEST_POSTGRES_DSN`` (see
``conftest.py``).
"""

from __future__ import annotations

import importlib.util
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import attrs
import pytest

from nurturekit import export
from nurturekit.programs import b2b_program
from nurturekit.storage import open_storage

#: Rows of each file: 3 batches of leads, 30 of activities (with ``--history-batch 500``).
#: The kill comes once up to half the rows are in: before the last batch of leads.
ROWS = 15_000
#: The time the scores are computed at (after every activity of the files).
NOW = datetime(2026, 12, 2, tzinfo=timezone.utc)
SUMMARY = re.compile(
    r"(?P<kind>leads|activities): (?P<read>[\d,]+) read, (?P<imported>[\d,]+) imported"
    r"(?: \([\d,]+ as history\))?, (?P<skipped>[\d,]+) skipped as already present, "
    r"(?P<errors>[\d,]+) errors?"
)


def _bulk() -> ModuleType:
    path = Path(__file__).parent.parent / "benchmarks" / "bulk.py"
    spec = importlib.util.spec_from_file_location("nurturekit_bulk_benchmark", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A leads CSV and an activities JSONL (one activity per lead, in time order)."""
    bulk = _bulk()
    folder = tmp_path_factory.mktemp("bulk")
    leads, activities = folder / "leads.csv", folder / "activities.jsonl"
    bulk.write_leads(leads, ROWS, random.Random(19))
    bulk.write_activities(activities, ROWS, random.Random(20))
    return leads, activities


@attrs.define
class Store:
    """A database of one kind, by URL, and how many rows a table of it holds (0 until the
    table is made), read as another process would."""

    url: str
    count: Callable[[str], int]


@pytest.fixture(params=["sqlite", "postgresql"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """Makes fresh stores of one kind; PostgreSQL schemas are dropped afterwards."""
    schemas: list[str] = []
    dsn = request.getfixturevalue("postgres_dsn") if request.param == "postgresql" else ""

    def sqlite_store() -> Store:
        path = tmp_path / f"{uuid.uuid4().hex}.db"
        return Store(f"sqlite:///{path}", lambda table: _sqlite_count(path, table))

    def postgres_store() -> Store:
        import psycopg

        schema = f"nk_test_{uuid.uuid4().hex}"
        schemas.append(schema)

        def count(table: str) -> int:
            with psycopg.connect(dsn, autocommit=True) as conn:
                try:
                    row = conn.execute(f"SELECT count(*) FROM {schema}.{table}").fetchone()
                except psycopg.errors.UndefinedTable:
                    return 0
                except psycopg.errors.InvalidSchemaName:
                    return 0
            return int(row[0]) if row else 0

        return Store(f"{dsn}{'&' if '?' in dsn else '?'}schema={schema}", count)

    yield sqlite_store if request.param == "sqlite" else postgres_store
    if schemas:
        import psycopg
        from psycopg import sql

        with psycopg.connect(dsn, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
                )


def _command(path: Path, store: Store) -> list[str]:
    # --backfill: every activity is history, so the import is the same whenever it runs;
    # --history-batch 500: 12 transactions, so that a kill can fall between two.
    return [
        sys.executable,
        "-m",
        "nurturekit",
        "import",
        str(path),
        "--db",
        store.url,
        "--backfill",
        "--history-batch",
        "500",
    ]


def _import(path: Path, store: Store) -> dict[str, int]:
    """Run the import to its end; its summary's counts."""
    done = subprocess.run(_command(path, store), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return _counts(done.stdout)


def _counts(text: str) -> dict[str, int]:
    found = SUMMARY.search(text)
    assert found is not None, text
    return {
        name: int(value.replace(",", ""))
        for name, value in found.groupdict().items()
        if name != "kind"
    }


def _started(path: Path, store: Store, table: str, rng: random.Random) -> subprocess.Popen[str]:
    """The import in a process of its own, once it has committed some rows: a batch or more,
    up to half the file, drawn at random."""
    least = rng.randint(1, ROWS // 2)
    process = subprocess.Popen(
        _command(path, store), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while store.count(table) < least:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"the import committed {least} rows in 60 s"
        time.sleep(0.005)
    return process


def _killed(path: Path, store: Store, table: str, rng: random.Random) -> int:
    """Start the import, SIGKILL it part-way; the rows it had committed."""
    process = _started(path, store, table, rng)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    committed = store.count(table)
    assert 0 < committed < ROWS, committed
    return committed


def _exports(url: str) -> dict[str, list[dict[str, Any]]]:
    """What the store holds, as the exports give it: the leads (but when they were stored,
    which is the time of each import), the activities and the scores."""
    storage = open_storage(url)
    try:
        leads = [
            {k: v for k, v in row.items() if k != "created_at"} for row in export.leads(storage)
        ]
        return {
            "leads": leads,
            "activities": list(export.activities(storage)),
            "scores": list(export.scores(storage, b2b_program(), now=NOW)),
        }
    finally:
        storage.close()


def _created(url: str) -> dict[str, datetime | None]:
    storage = open_storage(url)
    try:
        return {lead.id: lead.created_at for lead in storage.leads()}
    finally:
        storage.close()


def test_an_import_killed_part_way_and_run_again_equals_one_never_stopped(
    files: tuple[Path, Path], new_store: Callable[[], Store]
) -> None:
    leads, activities = files
    rng = random.Random(7)
    resumed = new_store()

    # Killed in the middle of the leads, then run again: the leads stored before the kill
    # are skipped as already present (and keep the time they were first stored).
    committed = _killed(leads, resumed, "leads", rng)
    first_stored = _created(resumed.url)
    summary = _import(leads, resumed)
    assert summary == {
        "read": ROWS,
        "imported": ROWS - committed,
        "skipped": committed,
        "errors": 0,
    }
    stored = _created(resumed.url)
    assert {i: stored[i] for i in first_stored} == first_stored

    # Killed in the middle of the activities, then run again.
    committed = _killed(activities, resumed, "activities", rng)
    summary = _import(activities, resumed)
    assert summary == {
        "read": ROWS,
        "imported": ROWS - committed,
        "skipped": committed,
        "errors": 0,
    }
    assert resumed.count("activities") == ROWS

    # The same as an import never stopped, into a fresh store.
    straight = new_store()
    assert _import(leads, straight)["imported"] == ROWS
    assert _import(activities, straight)["imported"] == ROWS
    expected, got = _exports(straight.url), _exports(resumed.url)
    assert len(got["leads"]) == len(got["activities"]) == len(got["scores"]) == ROWS
    for name in ("leads", "activities", "scores"):
        assert got[name] == expected[name], name

    # And once more: every row is there already.
    for path in (leads, activities):
        assert _import(path, resumed) == {
            "read": ROWS,
            "imported": 0,
            "skipped": ROWS,
            "errors": 0,
        }


def test_ctrl_c_says_how_far_the_import_got_and_that_running_it_again_resumes(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    leads, activities = files
    path = tmp_path / "ctrl-c.db"
    store = Store(f"sqlite:///{path}", lambda table: _sqlite_count(path, table))
    _import(leads, store)

    process = _started(activities, store, "activities", random.Random(3))
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err and out == ""
    # Every activity is history, recorded sorted by lead: what is in is a number of rows of
    # the history, not the lines up to one.
    found = re.search(
        r"interrupted after ([\d,]+) rows of the history of (\S+) \(recorded sorted by "
        r"lead\): (.*)\n",
        err,
    )
    assert found is not None, err
    rows, name, said = int(found[1].replace(",", "")), found[2], found[3]
    assert name == str(activities)
    # Those rows are in the store (none refused); the batch cut short may have been
    # committed just before the interrupt, or rolled back.
    counts = _counts(said)
    assert counts["read"] == counts["imported"] == rows and counts["errors"] == 0
    assert rows % 500 == 0
    committed = store.count("activities")
    assert rows <= committed < ROWS
    assert err.rstrip().endswith(
        "run the same command again to resume: the rows already in are skipped as already present"
    )

    summary = _import(activities, store)
    assert (summary["skipped"], summary["imported"]) == (committed, ROWS - committed)
    assert store.count("activities") == ROWS


def _sqlite_count(path: Path, table: str) -> int:
    if not path.exists():
        return 0
    with closing(sqlite3.connect(path, timeout=30)) as conn:
        try:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        except sqlite3.OperationalError:  # no such table yet
            return 0
