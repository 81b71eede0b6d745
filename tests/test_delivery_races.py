"""Delivery races with real worker processes: a lease that runs out mid-batch, an unsubscribe
committed while a batch is being handed over, two workers telling the sink of one hand-off, and
many workers with a slow mailer and a kill -9.

The workers are ``tests/delivery_worker.py`` processes on one SQLite file or one PostgreSQL
schema. Their mailer logs ``start`` and ``end`` of every hand-over, with the time, to a file
shared by all of them (see that script); the tests count and time those lines.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple

import pytest
from delivery_worker import FIRST_STEP, SCENARIO, SEND_STEPS, three_mails_program
from engine_fixtures import OPTED_IN

from nurturekit.activity import Activity
from nurturekit.engine import Engine
from nurturekit.lead import Lead
from nurturekit.mail import OutboxMailer
from nurturekit.scenario import Enrollment, EnrollmentStatus
from nurturekit.storage import open_storage
from nurturekit.testing import make_handoff
from nurturekit.tokens import Links, TokenSigner

WORKER = Path(__file__).resolve().parent / "delivery_worker.py"


# ---------------------------------------------------------------------------------- the store


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'nurture.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def postgres_url(postgres_dsn: str, pg_schema: str) -> str:
    separator = "&" if "?" in postgres_dsn else "?"
    return f"{postgres_dsn}{separator}schema={pg_schema}"


def _close(storage: object) -> None:
    close = getattr(storage, "close", None)
    if close is not None:
        close()


def seed_due(
    url: str, count: int, first_steps: tuple[str, ...] = (FIRST_STEP,)
) -> dict[str, set[str]]:
    """Store ``count`` leads, each enrolled in the three-mail scenario with a send already due:
    lead ``n`` at step ``first_steps[n % len(first_steps)]`` (by default the first, so it
    owes all three mails). Return each lead's id with the keys of the sends it is owed."""
    storage = open_storage(url)
    due = datetime.now(timezone.utc) - timedelta(minutes=1)
    owed: dict[str, set[str]] = {}
    enrollments = []
    for n in range(count):
        lead_id = f"lead-{n}"
        step = first_steps[n % len(first_steps)]
        enrollment = Enrollment(
            id=f"{SCENARIO}/{lead_id}/1",
            scenario=SCENARIO,
            lead_id=lead_id,
            number=1,
            status=EnrollmentStatus.ACTIVE,
            step=step,
            due_at=due,
            entered_at=due,
        )
        enrollments.append(enrollment)
        later = SEND_STEPS[SEND_STEPS.index(step) :]
        owed[lead_id] = {f"{enrollment.id}/{s}/1" for s in later}  # enrolment/step/attempt
    lead_ids = list(owed)
    with storage.transaction():
        for lead_id in lead_ids:
            storage.put_lead(
                Lead(
                    id=lead_id,
                    email=f"{lead_id}@example.co.jp",
                    name="田中",
                    created_at=due,
                    consent=OPTED_IN,
                )
            )
        write_steps = getattr(storage, "write_steps", None)
        if write_steps is not None:
            write_steps([], enrollments)
        else:
            for enrollment in enrollments:
                storage.put_enrollment(enrollment)
    _close(storage)
    return owed


def all_keys(owed: dict[str, set[str]]) -> set[str]:
    return set().union(*owed.values())


# ---------------------------------------------------------------------------------- workers


class Event(NamedTuple):
    """One line of the shared log: a hand-over's ``start`` or ``end``, or (with
    ``log_checks``) the ``check`` of a send's claim and suppression, timed before the read."""

    kind: str
    key: str
    lead_id: str
    at: float
    worker: str


def parse_events(text: str) -> list[Event]:
    events = []
    for line in text.splitlines():
        kind, key, lead_id, at, worker = line.split("\t")
        events.append(Event(kind, key, lead_id, float(at), worker))
    return events


class Fleet:
    """Worker processes on one store, sharing one log; :meth:`stop` kills any still running."""

    def __init__(self, url: str, directory: Path) -> None:
        self.url = url
        self.dir = directory
        self.log = directory / "handed-over.log"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.killed: set[str] = set()

    def start(
        self,
        name: str,
        *,
        lease: float,
        delay: float,
        idle: float,
        limit: int,
        go: Path | None = None,
        sink_url: str | None = None,
        log_checks: bool = False,
    ) -> subprocess.Popen[bytes]:
        """Start a worker; with ``go`` it waits for that file before its first ``run_due``."""
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        env["no_proxy"] = env["NO_PROXY"] = "*"  # the sink's urllib talks to 127.0.0.1 only
        env.pop("NURTUREKIT_WORKER_GO", None)
        if go is not None:
            env["NURTUREKIT_WORKER_GO"] = str(go)
        argv = [sys.executable, str(WORKER), self.url, str(self.log), name]
        argv += ["--lease", str(lease), "--delay", str(delay), "--idle", str(idle)]
        argv += ["--limit", str(limit)]
        if sink_url is not None:
            argv += ["--sink-url", sink_url]
        if log_checks:
            argv.append("--log-checks")
        with open(self.dir / f"{name}.err", "wb") as err:
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env=env)
        self.procs[name] = proc
        return proc

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait until every worker has touched its ``.started`` file."""
        deadline = time.monotonic() + timeout
        for name, proc in self.procs.items():
            started = Path(f"{self.log}.{name}.started")
            while not started.exists():
                assert proc.poll() is None, f"worker {name} exited early: {self.stderr(name)}"
                assert time.monotonic() < deadline, f"worker {name} did not start"
                time.sleep(0.01)

    def kill(self, name: str) -> None:
        os.kill(self.procs[name].pid, signal.SIGKILL)
        self.procs[name].wait(timeout=30)
        self.killed.add(name)

    def finish(self, timeout: float) -> None:
        """Wait for every worker to end by itself (within ``timeout`` seconds in all) and check
        that each exited cleanly (or was killed by :meth:`kill`)."""
        deadline = time.monotonic() + timeout
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pytest.fail(f"worker {name} still running after {timeout:.0f} s")
            if name in self.killed:
                assert proc.returncode == -signal.SIGKILL, self.stderr(name)
            else:
                assert proc.returncode == 0, f"worker {name} failed: {self.stderr(name)}"

    def stderr(self, name: str) -> str:
        path = self.dir / f"{name}.err"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def events(self) -> list[Event]:
        return parse_events(self.log.read_text()) if self.log.exists() else []

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)


@pytest.fixture
def fleet(store_url: str, tmp_path: Path) -> Iterator[Fleet]:
    workers = Fleet(store_url, tmp_path)
    try:
        yield workers
    finally:
        workers.stop()


def hand_overs(events: list[Event]) -> Counter[str]:
    """How many times each key was handed to a mailer (``start`` lines)."""
    return Counter(e.key for e in events if e.kind == "start")


def tally(keys: set[str], events: list[Event]) -> tuple[int, set[str], dict[str, int]]:
    """The hand-overs in all, the keys never handed over, and the keys handed over more than
    once with their counts."""
    counts = hand_overs(events)
    missing = keys - set(counts)
    repeated = {key: n for key, n in counts.items() if n > 1}
    return sum(counts.values()), missing, repeated


def per_worker(events: list[Event]) -> dict[str, int]:
    return dict(sorted(Counter(e.worker for e in events if e.kind == "start").items()))


def store_kind(url: str) -> str:
    return url.split(":", 1)[0]


# ---------------------------------------------------------------------------------- 1. leases


@pytest.mark.parametrize(
    ("workers", "every"),
    [(1, 0.0), (2, 1.5), (6, 0.4)],
    ids=["1 worker", "2 workers", "6 workers"],
)
def test_a_lease_that_runs_out_mid_batch_never_hands_the_same_send_over_twice(
    store_url: str, fleet: Fleet, tmp_path: Path, workers: int, every: float
) -> None:
    """Regression test: a lease that ran out mid-batch let a second worker hand the same sends
    over again.

    A worker claims a batch of up to 200 sends with a 1 s lease and hands them over at 10 ms
    each (2 s): the lease runs out while it is still handing the batch over. Workers started
    later (every ``every`` seconds) must not take over and hand over the sends it still holds.
    """
    keys = all_keys(seed_due(store_url, 200))
    names = [f"w{n}" for n in range(workers)]
    for name in names:
        fleet.start(name, lease=1.0, delay=0.01, idle=1.5, limit=200, go=tmp_path / f"{name}.go")
    fleet.wait_ready()
    began = time.monotonic()
    for n, name in enumerate(names):
        time.sleep(max(0.0, began + n * every - time.monotonic()))
        (tmp_path / f"{name}.go").touch()
    fleet.finish(timeout=120)
    seconds = time.monotonic() - began

    events = fleet.events()
    total, missing, repeated = tally(keys, events)
    figures = (
        f"{store_kind(store_url)}, {workers} worker(s): {total} hand-overs of {len(keys)} keys, "
        f"{len(missing)} missing, {len(repeated)} keys handed over more than once "
        f"({total - len(keys) + len(missing)} repeats), {seconds:.1f} s, "
        f"per worker {per_worker(events)}"
    )
    print(figures)
    assert not missing, f"sends never handed over: {figures}"
    assert not repeated, f"sends handed over more than once: {figures}"


# ---------------------------------------------------------------------------------- 2. unsubscribes


def test_an_unsubscribe_committed_during_a_batch_stops_that_leads_mail(
    store_url: str, fleet: Fleet, tmp_path: Path
) -> None:
    """Regression test: suppression was checked once per claimed batch of sends, so a lead who
    unsubscribed while the batch was being handed over still got the rest of its mail.

    Two workers hand over 400 leads' due mails (one, two or three each) at 20 ms each;
    meanwhile the test, as an application would, records ``unsubscribed`` for 30% of the leads
    at random moments spread over the run. Each mail's claim and suppression must be read after
    the worker's previous mail ended (right before its hand-over), no mail whose read came after
    the lead's unsubscribe was committed may start, and at most the one mail already on the wire
    may end after it. (A read that came just before the commit may still let its mail start
    microseconds after it: the window between the read and the mailer's call is counted and
    printed, not forbidden.)
    """
    owed = seed_due(store_url, 400, first_steps=SEND_STEPS)
    lead_ids = list(owed)
    rng = random.Random(20260406)
    leaving = rng.sample(lead_ids, 120)
    # The workers hand over 800 mails at 20 ms each, two at a time: about 8 s.
    offsets = sorted(rng.uniform(0.3, 6.5) for _ in leaving)
    go = tmp_path / "go"
    for name in ("w0", "w1"):
        fleet.start(name, lease=60.0, delay=0.02, idle=2.0, limit=50, go=go, log_checks=True)
    fleet.wait_ready()

    storage = open_storage(store_url)
    app = Engine(
        three_mails_program(),
        storage,
        OutboxMailer(),
        links=Links("https://example.co.jp/nk", TokenSigner(secret=b"r" * 32)),
        worker="app",
    )
    committed: dict[str, float] = {}
    try:
        go.touch()
        began = time.monotonic()
        for lead_id, offset in zip(leaving, offsets, strict=True):
            time.sleep(max(0.0, began + offset - time.monotonic()))
            app.record(
                Activity(lead_id=lead_id, kind="unsubscribed", at=datetime.now(timezone.utc))
            )
            committed[lead_id] = time.time()  # record() returned: the unsubscribe is committed
    finally:
        _close(storage)
    fleet.finish(timeout=120)
    seconds = time.monotonic() - began

    events = fleet.events()
    by_lead: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        by_lead[event.lead_id].append(event)
    # Each start with the worker's latest check of that send; a check older than the worker's
    # previous end was not made right before the hand-over.
    unchecked: list[str] = []
    checked_late: list[str] = []
    window: list[float] = []
    latest_check: dict[tuple[str, str], float] = {}
    last_end: dict[str, float] = {}
    for e in events:
        if e.kind == "check":
            latest_check[e.worker, e.key] = e.at
        elif e.kind == "end":
            last_end[e.worker] = e.at
        else:
            check = latest_check.get((e.worker, e.key))
            if check is None or check < last_end.get(e.worker, 0.0):
                unchecked.append(e.key)
            elif e.lead_id in committed and check > committed[e.lead_id]:
                checked_late.append(e.key)
            elif e.lead_id in committed and e.at > committed[e.lead_id]:
                window.append(e.at - committed[e.lead_id])
    ends_after = {
        lead_id: sum(e.kind == "end" and e.at > committed[lead_id] for e in by_lead[lead_id])
        for lead_id in leaving
    }
    ending_late = {lead_id: n for lead_id, n in ends_after.items() if n > 1}
    # The harness: the unsubscribes fell while mail was going out, and every lead who stayed
    # subscribed got all its mail.
    last_start = max(e.at for e in events if e.kind == "start")
    staying = set(lead_ids) - set(leaving)
    missing = all_keys({k: owed[k] for k in staying}) - set(hand_overs(events))
    figures = (
        f"{store_kind(store_url)}: of {len(leaving)} unsubscribed leads, {len(checked_late)} "
        f"mails started though checked after the unsubscribe was committed, {len(window)} were "
        f"checked before it and started after it (at most {max(window, default=0.0) * 1e6:.0f} "
        f"µs after it); {len(unchecked)} mails not checked right before their hand-over; "
        f"{len(ending_late)} leads had more than "
        f"one mail end after it; {sum(hand_overs(events).values())} hand-overs in {seconds:.1f} s, "
        f"per worker {per_worker(events)}"
    )
    print(figures)
    assert last_start > statistics.median(committed.values()), f"harness: run too short; {figures}"
    assert not missing, f"harness: {len(missing)} sends to subscribed leads missing; {figures}"
    assert not unchecked, f"mail handed over without a check right before it: {figures}"
    assert not checked_late, f"mail started after a committed unsubscribe: {figures}"
    assert not ending_late, f"more than the one mail on the wire ended after it: {figures}"


# ---------------------------------------------------------------------------------- 3. notices


class _Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Hook)
        self.lock = threading.Lock()
        self.event_ids: list[str] = []


class _Hook(BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(0.02)
        with self.server.lock:
            self.server.event_ids.append(self.headers.get("X-Nurturekit-Event-Id", ""))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_each_hand_off_notice_is_posted_by_one_worker(
    store_url: str, fleet: Fleet, tmp_path: Path, receiver: _Receiver
) -> None:
    """Regression test: every worker read the hand-offs owing the sink a notice and posted
    them all, so two workers starting together posted each notice twice.

    60 hand-offs owe a notice; two workers with a webhook sink start at the same moment. The
    receiver (200 after 20 ms) must get 60 POSTs with 60 distinct event ids.
    """
    storage = open_storage(store_url)
    with storage.transaction():
        for n in range(60):
            lead_id = f"lead-{n}"
            storage.put_lead(Lead(id=lead_id, email=f"{lead_id}@example.co.jp", name="田中"))
            storage.put_handoff(make_handoff(f"h{n}", lead_id, minutes=n, notified_at=None))
    _close(storage)
    expected = {f"h{n}:handoff" for n in range(60)}
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    go = tmp_path / "go"
    for name in ("w0", "w1"):
        fleet.start(name, lease=60.0, delay=0.0, idle=1.5, limit=50, go=go, sink_url=url)
    fleet.wait_ready()
    go.touch()
    began = time.monotonic()
    fleet.finish(timeout=60)
    seconds = time.monotonic() - began

    with receiver.lock:
        posted = list(receiver.event_ids)
    twice = {event_id: n for event_id, n in Counter(posted).items() if n > 1}
    figures = (
        f"{store_kind(store_url)}: {len(posted)} POSTs for {len(expected)} notices, "
        f"{len(set(posted))} distinct event ids, {len(twice)} posted more than once, "
        f"{seconds:.1f} s"
    )
    print(figures)
    assert set(posted) == expected, f"notices missing or unknown: {figures}"
    assert len(posted) == len(expected), f"notices posted more than once: {figures}"


# ---------------------------------------------------------------------------------- 4. many workers


@pytest.mark.parametrize("kill", [False, True], ids=["without a kill", "with a kill -9"])
def test_many_workers_with_a_slow_mailer_hand_every_send_over_once(
    postgres_url: str, tmp_path: Path, kill: bool
) -> None:
    """Regression test: with claimed batches that outlive their lease, workers took over each
    other's sends and handed them over again; a worker killed with SIGKILL may repeat only the
    one mail it had on the wire.

    Four workers on one PostgreSQL database hand over 4,000 leads × 3 mails at 6 ms each, with
    a 1 s lease (a claimed batch of 200 sends takes 1.2 s). With the kill, one worker is
    killed with SIGKILL while a mail of it is on the wire, after it has handed over 300, and
    a new worker is started in its place.
    """
    keys = all_keys(seed_due(postgres_url, 4_000))
    workers = Fleet(postgres_url, tmp_path)
    go = tmp_path / "go"
    victim = "w1"
    in_flight = None
    try:
        for n in range(4):
            workers.start(f"w{n}", lease=1.0, delay=0.006, idle=2.0, limit=200, go=go)
        workers.wait_ready()
        go.touch()
        began = time.monotonic()
        if kill:
            in_flight = _kill_on_the_wire(workers, victim, after=300, timeout=90)
            # As a supervisor would, start another in its place: four workers run again.
            workers.start("w4", lease=1.0, delay=0.006, idle=2.0, limit=200)
        workers.finish(timeout=240)
        seconds = time.monotonic() - began
    finally:
        workers.stop()

    events = workers.events()
    total, missing, repeated = tally(keys, events)
    started = {e.key for e in events if e.worker == victim and e.kind == "start"}
    ended = {e.key for e in events if e.worker == victim and e.kind == "end"}
    on_the_wire = started - ended if kill else set()
    beyond = {key: n for key, n in repeated.items() if key not in on_the_wire or n > 2}
    figures = (
        f"postgresql, 4 workers{', one killed with SIGKILL' if kill else ''}: {total} "
        f"hand-overs of {len(keys)} sends, {len(missing)} missing, {len(repeated)} keys handed "
        f"over more than once ({total - len(keys) + len(missing)} repeats), {len(beyond)} of "
        f"them not the killed worker's mail on the wire {sorted(on_the_wire)}, "
        f"{seconds:.1f} s, per worker {per_worker(events)}"
        + (f"; killed while handing over {in_flight}" if kill else "")
    )
    print(figures)
    assert not missing, f"sends never handed over: {figures}"
    assert not beyond, f"sends handed over more than once: {figures}"
    assert len(repeated) <= (1 if kill else 0), f"more repeats than kills: {figures}"


def _kill_on_the_wire(fleet: Fleet, name: str, after: int, timeout: float) -> str:
    """Follow the log until worker ``name`` has handed over ``after`` mails and its latest
    line is the ``start`` of a mail (it is on the wire), then SIGKILL it; return that key."""
    deadline = time.monotonic() + timeout
    handed = 0
    last: Event | None = None
    offset = 0
    buffer = b""
    while time.monotonic() < deadline:
        assert fleet.procs[name].poll() is None, f"{name} ended before the kill"
        with open(fleet.log, "rb") as log:
            log.seek(offset)
            chunk = log.read()
        offset += len(chunk)
        buffer += chunk
        complete, _, buffer = buffer.rpartition(b"\n")
        if complete:
            for event in parse_events(complete.decode()):
                if event.worker == name:
                    last = event
                    handed += event.kind == "end"
        if handed >= after and last is not None and last.kind == "start":
            fleet.kill(name)
            return last.key
        time.sleep(0.0005)
    pytest.fail(f"{name} did not hand over {after} mails in {timeout:.0f} s")
