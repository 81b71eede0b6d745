"""Reliability with real worker processes: several workers on one SQLite file or one PostgreSQL
database run every due send exactly once, and a worker killed with SIGKILL loses nothing.

The workers are `tests/reliability_worker.py` processes; they hand mails to a log file shared
by all of them (see that script).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from engine_fixtures import OPTED_IN

from nurturekit.lead import Lead
from nurturekit.scenario import Enrollment, EnrollmentStatus
from nurturekit.storage import open_storage

WORKER = Path(__file__).resolve().parent / "reliability_worker.py"


def seed(url: str, count: int) -> set[str]:
    """Store ``count`` leads, each with an enrolment whose send step is already due."""
    storage = open_storage(url)
    due = datetime.now(timezone.utc) - timedelta(minutes=1)
    ids = set()
    with storage.transaction():
        for n in range(count):
            lead_id = f"lead-{n}"
            storage.put_lead(
                Lead(
                    id=lead_id,
                    email=f"{lead_id}@example.co.jp",
                    name="田中",
                    created_at=due,
                    consent=OPTED_IN,
                )
            )
            enrollment = Enrollment(
                id=f"whitepaper follow-up/{lead_id}/1",
                scenario="whitepaper follow-up",
                lead_id=lead_id,
                number=1,
                status=EnrollmentStatus.ACTIVE,
                step="case",
                due_at=due,
                entered_at=due,
            )
            storage.put_enrollment(enrollment)
            ids.add(enrollment.id)
    close = getattr(storage, "close", None)
    if close is not None:
        close()
    return ids


def start(
    url: str,
    log: Path,
    name: str,
    idle: float = 3.0,
    forever: bool = False,
    go: Path | None = None,
) -> subprocess.Popen[bytes]:
    """A worker process; with ``go``, it waits for that file to exist before it starts."""
    env = dict(os.environ)
    if go is not None:
        env["NURTUREKIT_WORKER_GO"] = str(go)
    return subprocess.Popen(
        [sys.executable, str(WORKER), url, str(log), name, str(idle)]
        + (["forever"] if forever else []),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )


def finish(workers: list[subprocess.Popen[bytes]], timeout: float = 300) -> None:
    for worker in workers:
        _, err = worker.communicate(timeout=timeout)
        assert worker.returncode in (0, -signal.SIGKILL), err.decode()


def read_log(log: Path) -> list[tuple[str, str, str]]:
    if not log.exists():
        return []
    rows = []
    # A line another process is writing right now may be read half written: only whole
    # lines (ending in a newline) count.
    for line in log.read_text().split("\n")[:-1]:
        key, enrollment, step = line.split("\t")
        rows.append((key, enrollment, step))
    return rows


def check_every_send_once(rows: list[tuple[str, str, str]], ids: set[str], kills: int) -> None:
    keys_by_pair: dict[tuple[str, str], set[str]] = defaultdict(set)
    for key, enrollment, step in rows:
        keys_by_pair[(enrollment, step)].add(key)
    assert {enrollment for enrollment, _ in keys_by_pair} == ids, "a due send is missing"
    assert all(len(keys) == 1 for keys in keys_by_pair.values()), "a send had two keys"
    repeats = sum(count - 1 for count in Counter(key for key, _, _ in rows).values())
    assert repeats <= kills, f"{repeats} repeated hand-overs for {kills} kills"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'nurture.db'}"
    dsn = request.getfixturevalue("postgres_dsn")
    schema = request.getfixturevalue("pg_schema")
    separator = "&" if "?" in dsn else "?"
    return f"{dsn}{separator}schema={schema}"


def test_two_workers_send_every_due_step_exactly_once(store_url: str, tmp_path: Path) -> None:
    ids = seed(store_url, 10_000)
    log = tmp_path / "sent.log"
    workers = [start(store_url, log, f"w{n}") for n in range(2)]
    finish(workers)
    rows = read_log(log)
    check_every_send_once(rows, ids, kills=0)
    assert len(rows) == 10_000


def test_a_worker_killed_mid_batch_loses_nothing(store_url: str, tmp_path: Path) -> None:
    ids = seed(store_url, 2_000)
    log = tmp_path / "sent.log"
    rng = random.Random(7)
    workers = [start(store_url, log, f"steady{n}", idle=6.0) for n in range(2)]
    kills = 0
    for round_ in range(3):
        victim = start(store_url, log, f"victim{round_}", idle=6.0)
        started = Path(f"{log}.victim{round_}.started")
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.2, 1.0))
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        kills += 1
    finish(workers)
    check_every_send_once(read_log(log), ids, kills=kills)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_worker_loop_stops_cleanly_on_a_signal(
    store_url: str, tmp_path: Path, signum: signal.Signals
) -> None:
    ids = seed(store_url, 300)
    log = tmp_path / "sent.log"
    worker = start(store_url, log, "loop", forever=True)
    deadline = time.monotonic() + 60
    while len(read_log(log)) < 20 and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.send_signal(signum)
    _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err.decode()
    sent = read_log(log)
    assert 20 <= len(sent) < 300  # it stopped mid-way …
    # … with every claim it had not started handed back: all the rest is claimable at once.
    storage = open_storage(store_url)
    rest = storage.claim_due(datetime.now(timezone.utc), 1000, "after", timedelta(minutes=1))
    done = {enrollment for _, enrollment, _ in sent}
    assert {e.id for e in rest} == ids - done
    assert all(entry.status is not None for entry in storage.outbox())  # nothing half-sent
    getattr(storage, "close", lambda: None)()
