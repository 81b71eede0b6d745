"""The send path under faults, in one process: suppression read right before each hand-over,
mailer outages while results are read, poison mail, give-up after the last attempt, and the
worker loop that outlives what passes. The multi-process races are in test_delivery_races.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import attrs
import pytest
from aiosmtpd.controller import Controller
from engine_fixtures import World, program
from test_engine_batches import _pricing, _world
from test_smtp import LOCALHOST, Recorder, StartServer, case_study_mail, free_port

from nurturekit.conditions import did
from nurturekit.errors import (
    ClockError,
    InvalidInput,
    MailerUnavailable,
    NurtureError,
    StorageError,
)
from nurturekit.handoff import HandoffPolicy, MqlDefinition
from nurturekit.lead import Contactability, ContactStatus
from nurturekit.mail import OutboxMailer, SmtpMailer
from nurturekit.messages import OutgoingMail, SendResult, SendStatus
from nurturekit.ports import Storage
from nurturekit.scenario import EnrollmentStatus
from nurturekit.storage.memory import InMemoryStorage
from nurturekit.storage.sqlite import SQLiteStorage


@pytest.fixture(params=["memory", "sqlite"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    store: Storage = (
        InMemoryStorage() if request.param == "memory" else SQLiteStorage(tmp_path / "nk.db")
    )
    yield store
    store.close()


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    """Start an aiosmtpd server with ``handler`` on 127.0.0.1; give its port."""
    controllers: list[Controller] = []

    def start(handler: Recorder) -> int:
        controller = Controller(handler, hostname=LOCALHOST, port=free_port())
        controller.start()
        controllers.append(controller)
        return int(controller.port)

    yield start
    for controller in controllers:
        controller.stop()


def downloaded(world: World, *lead_ids: str) -> None:
    """Each lead downloads the whitepaper: its thank-you mail is due at once."""
    for lead_id in lead_ids:
        world.lead(lead_id)
        world.did("download", lead_id=lead_id, type="whitepaper")


def entry(storage: Storage, lead_id: str) -> tuple[SendStatus | None, str, int]:
    (found,) = [e for e in storage.outbox() if e.mail.lead_id == lead_id]
    return found.status, found.detail, found.attempts


class Down:
    """A mailer that cannot connect: it raises before handing anything over."""

    def send(self, mails: Sequence[OutgoingMail]) -> list[SendResult]:
        raise MailerUnavailable("no route to the mail server")


class DownWhileYielding:
    """The style the docs recommend (a generator), down before its first result: the
    exception comes out while the engine reads the results, not from ``send()``."""

    def __init__(self) -> None:
        self.calls = 0

    def send(self, mails: Sequence[OutgoingMail]) -> Iterator[SendResult]:
        self.calls += 1
        raise MailerUnavailable("connection refused")
        yield  # pragma: no cover - makes this a generator


# --------------------------------------------------------------------------- suppression


def test_a_mail_queued_while_the_mailer_was_down_is_not_sent_after_the_hand_off(
    storage: Storage, start_server: StartServer
) -> None:
    """Regression test: a mail written to the outbox while the mailer was down was delivered
    after the lead's hand-off to sales (the last check read only the subscription status)."""
    world = World(storage)
    world.engine.mailer = Down()
    downloaded(world, "l1", "l2")
    assert world.engine.run_due().sent == 0
    assert len(storage.pending_mail(10)) == 2
    # While the mailer is down, l1 goes to sales (a hand-off step, an MQL, a rep's call …)
    # and sales says l2 is not a fit.
    state = storage.get_state("l1")
    assert state is not None
    state.with_sales = True
    storage.put_state(state)
    state = storage.get_state("l2")
    assert state is not None
    state.disqualified = True
    storage.put_state(state)
    handler = Recorder()
    port = start_server(handler)
    world.engine.mailer = SmtpMailer(LOCALHOST, port, security="none")
    world.clock.advance(world.engine.lease + timedelta(seconds=1))  # the claims run out
    report = world.engine.run_due()
    assert (report.sent, report.suppressed) == (0, 2)
    assert handler.deliveries == []
    assert entry(storage, "l1")[:2] == (SendStatus.SUPPRESSED, "suppressed: owned by sales")
    assert entry(storage, "l2")[:2] == (
        SendStatus.SUPPRESSED,
        "suppressed: disqualified by sales",
    )


def test_a_real_hand_off_stops_the_mail_queued_before_it(storage: Storage) -> None:
    """The same through the engine: the lead crosses the MQL line while its mail waits."""
    policy = HandoffPolicy(definitions=[MqlDefinition(name="asked", when=did("inquiry"))])
    world = World(storage, attrs.evolve(program(), handoff=policy))
    world.engine.mailer = Down()
    downloaded(world, "l1")
    world.engine.run_due()
    world.did("inquiry", lead_id="l1")
    assert storage.handoffs_of("l1")
    world.engine.mailer = world.mailer
    world.clock.advance(world.engine.lease + timedelta(seconds=1))
    assert world.engine.run_due().suppressed == 1
    assert world.mailer.outbox == []


class UnsubscribesTheNext:
    """Hands mails over one by one; while the first is on the wire, the next mail's lead
    unsubscribes (through the engine, committed at once, as a web request would)."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.handed: list[str] = []
        self.closed = 0

    def send(self, mails: Sequence[OutgoingMail]) -> Iterator[SendResult]:
        try:
            for index, mail in enumerate(mails):
                self.handed.append(mail.lead_id)
                if index + 1 < len(mails):
                    self.world.did("unsubscribed", lead_id=mails[index + 1].lead_id)
                yield SendResult(key=mail.key, status=SendStatus.SENT)
        finally:
            self.closed += 1


def test_an_unsubscribe_committed_while_the_previous_mail_is_on_the_wire_stops_the_next(
    storage: Storage,
) -> None:
    """Regression test: suppression was read once per claim, so a lead who unsubscribed while
    an earlier mail of the batch was on the wire still got theirs."""
    world = World(storage)
    downloaded(world, "l1", "l2", "l3")
    mailer = UnsubscribesTheNext(world)
    world.engine.mailer = mailer
    report = world.engine.run_due()
    # l1 goes; l2 unsubscribes meanwhile and is stopped; l3 goes in a new call, and l4 …
    assert mailer.handed == ["l1", "l3"]
    assert (report.sent, report.suppressed) == (2, 1)
    assert mailer.closed == 2  # the first iterator was closed, not left hanging
    assert entry(storage, "l2")[:2] == (SendStatus.SUPPRESSED, "suppressed: unsubscribed")


# --------------------------------------------------------------------------- outages


def test_a_generator_mailer_that_is_down_before_its_first_result_does_not_kill_run_due(
    storage: Storage,
) -> None:
    """Regression test: MailerUnavailable raised while the results were read escaped
    run_due, and run_forever stopped."""
    world = World(storage)
    downloaded(world, "l1", "l2")
    mailer = DownWhileYielding()
    world.engine.mailer = mailer
    report = world.engine.run_due()
    assert report.sent == 0 and mailer.calls >= 1
    assert len(storage.pending_mail(10)) == 2
    assert all(e.attempts == 0 for e in storage.outbox())  # the mailer never tried
    # Once the claims have run out and the mailer is back, both go, with their keys.
    world.engine.mailer = world.mailer
    world.clock.advance(world.engine.lease + timedelta(seconds=1))
    assert world.engine.run_due().sent == 2


def test_the_worker_loop_outlives_a_mail_server_that_is_down_then_back(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "nk.db")
    world = World(storage)
    downloaded(world, "l1", "l2")
    port = free_port()  # nothing listens there yet
    handler = Recorder()
    world.engine.mailer = SmtpMailer(LOCALHOST, port, security="none", timeout=2)
    world.engine.lease = timedelta(seconds=1)
    world.engine.clock = _SystemClockFrom()
    worker = threading.Thread(
        target=world.engine.run_forever, kwargs={"idle_sleep": 0.05, "handle_signals": False}
    )
    worker.start()
    try:
        time.sleep(0.5)
        assert worker.is_alive()
        controller = Controller(handler, hostname=LOCALHOST, port=port)
        controller.start()
        try:
            deadline = time.monotonic() + 30
            while len(handler.deliveries) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            controller.stop()
    finally:
        world.engine.stop()
        worker.join(timeout=30)
    assert len(handler.deliveries) == 2
    assert not worker.is_alive()
    storage.close()


class _SystemClockFrom:
    """The wall clock: the loop's claims must run out in real time."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FlakyStore(InMemoryStorage):
    """Loses its database connection for the first few claims."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def claim_due(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.failures:
            self.failures -= 1
            raise StorageError("server closed the connection unexpectedly")
        return super().claim_due(*args, **kwargs)


def test_the_worker_loop_waits_out_a_storage_error_and_stops_on_a_bug() -> None:
    store = FlakyStore(failures=2)
    world = World(store)
    downloaded(world, "l1")
    done = threading.Event()

    class Stopper:
        def send(self, mails: Sequence[OutgoingMail]) -> list[SendResult]:
            done.set()
            world.engine.stop()
            return [SendResult(key=m.key, status=SendStatus.SENT) for m in mails]

    world.engine.mailer = Stopper()
    world.engine.run_forever(idle_sleep=0.01, handle_signals=False, max_backoff=0.05)
    assert done.is_set() and store.failures == 0

    class Broken:
        def send(self, mails: Sequence[OutgoingMail]) -> list[SendResult]:
            return [SendResult(key=m.key, status=SendStatus.SENT) for m in mails]

    bug = World(_BuggyStore())
    downloaded(bug, "l1")
    bug.engine.mailer = Broken()
    with pytest.raises(AttributeError):
        bug.engine.run_forever(idle_sleep=0.01, handle_signals=False)


class _BuggyStore(InMemoryStorage):
    def claim_due(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise AttributeError("a bug in an adapter")


# --------------------------------------------------------------------------- poison mail


def test_a_mail_the_server_refuses_as_too_large_is_rejected_once_and_the_lead_kept(
    storage: Storage, start_server: StartServer
) -> None:
    handler = Recorder(data_replies={"l1@example.co.jp": "552 5.3.4 Message too big"})
    port = start_server(handler)
    world = World(storage)
    world.engine.mailer = SmtpMailer(LOCALHOST, port, security="none")
    downloaded(world, "l1", "l2")
    report = world.engine.run_due()
    assert (report.sent, report.rejected, report.bounced) == (1, 1, 0)
    assert entry(storage, "l1")[0] is SendStatus.REJECTED
    lead = storage.get_lead("l1")
    assert lead is not None and lead.contactability.status is ContactStatus.SUBSCRIBED
    world.clock.advance(timedelta(days=1))
    assert world.engine.run_due().rejected == 0  # never tried again
    assert entry(storage, "l1")[2] == 1


def test_a_mail_with_an_unsafe_header_is_rejected_by_smtp_without_holding_up_the_rest(
    start_server: StartServer,
) -> None:
    handler = Recorder()
    port = start_server(handler)
    good = case_study_mail("a@example.co.jp", key="good")
    bad = attrs.evolve(good, key="bad", subject="Hi\r\nBcc: everyone@example.com")
    results = list(SmtpMailer(LOCALHOST, port, security="none").send([bad, good]))
    assert [r.status for r in results] == [SendStatus.REJECTED, SendStatus.SENT]
    assert "cannot be built" in results[0].detail
    assert len(handler.deliveries) == 1


def test_a_step_that_always_fails_is_given_up_after_its_last_attempt(storage: Storage) -> None:
    """Regression test: a step that could never succeed (a mail that cannot be composed, a
    hook that always fails) was retried forever, with a traceback each time."""
    world = _world(storage, failing={"l3"})
    world.engine.max_attempts = 3
    reports = []
    for _ in range(5):
        reports.append(world.engine.run_due())
        world.clock.advance(timedelta(hours=1))  # past the backoff of 2, then 4 minutes
    assert sum(len(r.failures) for r in reports) == 3
    abandoned = [a for r in reports for a in r.abandoned]
    assert abandoned == [("pricing material/l3/1", "RuntimeError: CRM refused l3")]
    enrollment = _pricing(storage, "l3")
    assert enrollment.status is EnrollmentStatus.FAILED
    assert enrollment.reason == ("step pricing failed 3 times; last: RuntimeError: CRM refused l3")
    assert _pricing(storage, "l1").status is EnrollmentStatus.COMPLETED


def test_a_send_deferred_on_every_attempt_fails_with_its_last_error(storage: Storage) -> None:
    world = World(storage)
    world.engine.max_attempts = 3
    world.engine.mailer = OutboxMailer(refuse={"l1@example.co.jp": SendStatus.DEFERRED})
    downloaded(world, "l1")
    first = world.engine.run_due()
    assert first.deferred == 1
    (pending,) = storage.outbox()
    # Backing off: 5 minutes, then 10.
    assert pending.retry_at == world.clock.now() + timedelta(minutes=5)
    world.clock.advance(timedelta(minutes=4))
    assert world.engine.run_due().deferred == 0
    world.clock.advance(timedelta(minutes=1))
    assert world.engine.run_due().deferred == 1
    (pending,) = storage.outbox()
    assert pending.retry_at == world.clock.now() + timedelta(minutes=10)
    world.clock.advance(timedelta(minutes=10))
    last = world.engine.run_due()
    assert [key for key, _ in last.failed] == [pending.mail.key]
    status, detail, attempts = entry(storage, "l1")
    assert (status, attempts) == (SendStatus.FAILED, 3)
    assert detail.startswith("gave up after 3 attempts; last: ")
    world.clock.advance(timedelta(days=30))
    world.engine.run_due()
    (given_up,) = [e for e in storage.outbox() if e.mail.key == pending.mail.key]
    assert (given_up.status, given_up.attempts) == (SendStatus.FAILED, 3)


class SlowDown:
    """Defers every mail, asking for a retry after 90 seconds (a provider's Retry-After)."""

    def send(self, mails: Sequence[OutgoingMail]) -> list[SendResult]:
        return [
            SendResult(
                key=m.key,
                status=SendStatus.DEFERRED,
                detail="429 Too Many Requests",
                retry_after=timedelta(seconds=90),
            )
            for m in mails
        ]


def test_a_mailers_retry_after_is_when_the_send_is_tried_again(storage: Storage) -> None:
    world = World(storage)
    world.engine.mailer = SlowDown()
    downloaded(world, "l1")
    world.engine.run_due()
    (pending,) = storage.outbox()
    assert pending.retry_at == world.clock.now() + timedelta(seconds=90)


def test_a_mailer_that_breaks_on_one_mail_holds_up_only_that_mail(storage: Storage) -> None:
    class BreaksOnL2:
        def send(self, mails: Sequence[OutgoingMail]) -> Iterator[SendResult]:
            for mail in mails:
                if mail.lead_id == "l2":
                    raise ValueError("cannot encode this one")
                yield SendResult(key=mail.key, status=SendStatus.SENT)

    world = World(storage)
    world.engine.mailer = BreaksOnL2()
    downloaded(world, "l1", "l2", "l3")
    report = world.engine.run_due()
    assert report.sent == 2
    assert entry(storage, "l2")[0] is SendStatus.DEFERRED
    assert "ValueError: cannot encode this one" in entry(storage, "l2")[1]


def test_a_send_result_refuses_a_negative_retry_after() -> None:
    with pytest.raises(InvalidInput, match="retry_after"):
        SendResult(key="k", status=SendStatus.DEFERRED, retry_after=timedelta(seconds=-1))


# --------------------------------------------------------------------------- bad arguments


def test_feedback_with_an_unknown_outcome_lists_the_allowed_ones() -> None:
    world = World()
    world.lead("l1")
    with pytest.raises(NurtureError) as raised:
        world.engine.feedback("l1", "rejected")
    message = str(raised.value)
    for outcome in ("contacted", "accepted", "not_now", "not_a_fit"):
        assert outcome in message


@pytest.mark.parametrize(
    "now",
    [datetime.max.replace(tzinfo=timezone.utc), datetime(1, 1, 2, tzinfo=timezone.utc)],
)
def test_run_due_at_an_extreme_time_is_refused_by_name(now: datetime) -> None:
    world = World()
    with pytest.raises(ClockError, match="run_due"):
        world.engine.run_due(now=now)


class GoneForGood(InMemoryStorage):
    """Claims work, then cannot fence it: the database went away."""

    def renew_leases(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise StorageError("the database went away")


def test_a_store_that_fails_for_good_makes_run_due_raise_instead_of_spinning() -> None:
    world = World(GoneForGood())
    downloaded(world, "l1")
    with pytest.raises(StorageError):
        world.engine.run_due()


def test_engine_settings_are_checked() -> None:
    world = World()
    for bad in ({"max_attempts": 0}, {"lease": timedelta(0)}):
        with pytest.raises(InvalidInput):
            type(world.engine)(
                world.engine.program,
                InMemoryStorage(),
                OutboxMailer(),
                links=world.links,
                **bad,  # type: ignore[arg-type]
            )


def test_an_unsubscribed_lead_still_gets_a_transactional_mail_queued_for_it() -> None:
    """Suppression is about marketing mail: a send marked non-marketing goes."""
    world = World()
    world.lead("l1")
    receipt = attrs.evolve(case_study_mail(), key="receipt", lead_id="l1", marketing=False)
    world.storage.add_to_outbox(receipt)
    world.storage.add_to_outbox(attrs.evolve(receipt, key="news", marketing=True))
    world.did("unsubscribed", lead_id="l1")
    report = world.engine.run_due()
    assert [m.key for m in world.mailer.outbox] == ["receipt"]
    assert report.suppressed == 1
    lead = world.storage.get_lead("l1")
    assert lead is not None
    assert lead.contactability == Contactability(
        status=ContactStatus.UNSUBSCRIBED, since=lead.contactability.since, reason="unsubscribed"
    )


@pytest.mark.parametrize("kind", ["outbox", "console", "eml"])
def test_every_mailer_rejects_a_mail_it_cannot_build_and_hands_over_the_rest(
    kind: str, tmp_path: Path
) -> None:
    import io

    from nurturekit.mail import ConsoleMailer, EmlDirectoryMailer

    good = case_study_mail("a@example.co.jp", key="good")
    bad = attrs.evolve(good, key="bad", subject="Hi\r\nBcc: everyone@example.com")
    mailer: OutboxMailer | ConsoleMailer | EmlDirectoryMailer
    if kind == "outbox":
        mailer = OutboxMailer()
    elif kind == "console":
        mailer = ConsoleMailer(io.StringIO())
    else:
        mailer = EmlDirectoryMailer(tmp_path / "mail")
    results = list(mailer.send([bad, good]))
    assert [(r.key, r.status) for r in results] == [
        ("bad", SendStatus.REJECTED),
        ("good", SendStatus.SENT),
    ]


def test_a_list_mailers_results_are_committed_together(storage: Storage) -> None:
    """A mailer that answers with a list had its whole batch on the wire in that call: its
    results are recorded in one transaction, so a failure while recording them leaves every
    send of the batch to be handed over again (docs/engine.md, what remains, 2)."""
    world = World(storage)
    downloaded(world, "l1", "l2", "l3")
    mark = storage.mark_sent
    calls: list[str] = []

    def fails_on_the_second(key: str, *args: object, **kwargs: object) -> None:
        calls.append(key)
        if len(calls) == 2:
            raise StorageError("disk full")
        mark(key, *args, **kwargs)  # type: ignore[arg-type]

    storage.mark_sent = fails_on_the_second  # type: ignore[method-assign]
    with pytest.raises(StorageError, match="disk full"):
        world.engine.run_due()
    assert len(calls) == 2
    assert [entry(storage, lead)[0] for lead in ("l1", "l2", "l3")] == [None, None, None]
    storage.mark_sent = mark  # type: ignore[method-assign]
    world.clock.advance(timedelta(minutes=10))  # past the lease of the claim
    report = world.engine.run_due()
    assert report.sent == 3
    assert len(world.mailer.outbox) == 6  # each handed over twice, with its own key
    assert len({mail.key for mail in world.mailer.outbox}) == 3
