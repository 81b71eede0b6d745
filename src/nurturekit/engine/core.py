"""The :class:`Engine` class: its settings, leads, recording, broadcasts, :meth:`Engine.run_due`
and the worker loop. Its other methods come from its parts: :mod:`.recording`, :mod:`.steps`,
:mod:`.delivery` and :mod:`.sales`."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs

from nurturekit._repr import counted, quoted, summary
from nurturekit._time import aware_utc
from nurturekit.activity import Activity
from nurturekit.clock import SystemClock
from nurturekit.engine.delivery import _Delivery
from nurturekit.engine.recording import _Recording
from nurturekit.engine.report import RecordResult, RunReport, _Run, _Tally
from nurturekit.engine.sales import _Sales
from nurturekit.engine.steps import _Steps
from nurturekit.errors import ClockError, InvalidInput, MailerUnavailable, StorageError
from nurturekit.lead import Contactability, ContactStatus, Lead
from nurturekit.ports import Clock, HandoffSink, Mailer, Storage
from nurturekit.program import Program
from nurturekit.scenario import Enrollment
from nurturekit.tokens import Links

log = logging.getLogger("nurturekit.engine")

#: What :meth:`Engine.run_forever` waits out: a database or a network that is away for now.
_TRANSIENT = (StorageError, MailerUnavailable, OSError)
#: The times a run may be given: far enough from the ends of :class:`datetime` that waits,
#: leases and retries added to them stay representable.
_EARLIEST = datetime(1900, 1, 1, tzinfo=timezone.utc)
_LATEST = datetime(9000, 1, 1, tzinfo=timezone.utc)


def _run_time(value: datetime, where: str) -> datetime:
    """``value`` in aware UTC, refused with :class:`ClockError` outside 1900–9000."""
    now = aware_utc(value, where)
    if not _EARLIEST <= now < _LATEST:
        raise ClockError(
            where,
            f"{now.isoformat()} is outside the times nurturekit runs at (from 1900 to 9000); "
            "give the current time, or a simulated time within that span",
        )
    return now


class Engine(_Recording, _Steps, _Delivery, _Sales):
    """Runs a program over a storage, a mailer and a clock.

    >>> from nurturekit.storage.memory import InMemoryStorage
    >>> from nurturekit.mail import OutboxMailer

    ``links`` builds the signed unsubscribe links that every marketing mail carries, and the
    click URLs and open pixel of every mail whose template tracks (see
    :mod:`nurturekit.templates.tracking`); the host app serves them (see :mod:`nurturekit.web`
    and :mod:`nurturekit.tokens`). ``sink`` hears of hand-offs to sales and
    SLA breaches (see :mod:`nurturekit.sinks`).

    ``worker`` names this process in claims, which last ``lease`` from the moment they are
    taken and are renewed while their work goes on. A deferred send is tried again
    ``retry_deferred`` after its first try, then after twice that, and so on (or when the
    mailer's ``SendResult.retry_after`` says). A send, or a failing step, is tried at most
    ``max_attempts`` times: then it is given up (``SendStatus.FAILED`` /
    ``EnrollmentStatus.FAILED``) and kept with its last error.
    """

    def __init__(
        self,
        program: Program,
        storage: Storage,
        mailer: Mailer,
        *,
        links: Links,
        clock: Clock | None = None,
        worker: str | None = None,
        sink: HandoffSink | None = None,
        lease: timedelta = timedelta(minutes=5),
        retry_deferred: timedelta = timedelta(minutes=5),
        max_steps: int = 100,
        max_attempts: int = 8,
    ) -> None:
        if not isinstance(lease, timedelta) or lease <= timedelta(0):
            raise InvalidInput("Engine(lease)", f"expected a positive timedelta, got {lease!r}")
        if not isinstance(retry_deferred, timedelta) or retry_deferred < timedelta(0):
            raise InvalidInput(
                "Engine(retry_deferred)",
                f"expected a timedelta of 0 or more, got {retry_deferred!r}",
            )
        if not isinstance(max_attempts, int) or isinstance(max_attempts, bool) or max_attempts < 1:
            raise InvalidInput(
                "Engine(max_attempts)",
                f"expected a whole number of 1 or more, got {max_attempts!r}",
            )
        self.program = program
        self.storage = storage
        self.mailer = mailer
        self.links = links
        self.sink = sink
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"
        self.lease = lease
        self.retry_deferred = retry_deferred
        self.max_steps = max_steps
        self.max_attempts = max_attempts
        self._stop = threading.Event()

    def __repr__(self) -> str:
        """The worker's name, the adapters by their type (never their own repr, which might
        hold a password or a key), and the size of the program."""
        return summary(
            "Engine",
            [
                ("worker", quoted(self.worker)),
                ("storage", type(self.storage).__name__),
                ("mailer", type(self.mailer).__name__),
                ("clock", type(self.clock).__name__),
                ("sink", "None" if self.sink is None else type(self.sink).__name__),
            ],
            [counted(len(self.program.scenarios), "scenario")],
        )

    # ------------------------------------------------------------------ leads
    def upsert_lead(self, lead: Lead) -> Lead:
        """Store ``lead`` (new or changed); a new lead is stamped ``created_at`` now.

        Changed attributes re-score the lead's fit at once. What the lead said about mail is
        never lost to an import: when the stored lead is unsubscribed, bounced or blocked and
        the new record carries only the default "subscribed" (no ``since``), the stored
        contactability is kept; a stored opt-in record is kept when the new one has none.
        """
        now = self.clock.now()
        with self.storage.transaction():
            old = self.storage.get_lead(lead.id)
            if old is not None:
                kept: dict[str, Any] = {}
                if (
                    lead.contactability == Contactability()
                    and old.contactability.status is not ContactStatus.SUBSCRIBED
                ):
                    kept["contactability"] = old.contactability
                if lead.consent is None and old.consent is not None:
                    kept["consent"] = old.consent
                if kept:
                    lead = attrs.evolve(lead, **kept)
            if lead.created_at is None:
                lead = attrs.evolve(
                    lead, created_at=old.created_at if old and old.created_at else now
                )
            self.storage.put_lead(lead)
            state = self.storage.get_state(lead.id)
            if state is None:
                state = self._new_state(lead, now)
            else:
                self.program.scoring.refit(state.card, lead)
            self.storage.put_state(state)
        return lead

    # ------------------------------------------------------------------ activities
    def record(self, activity: Activity, *, history: bool = False) -> RecordResult:
        """Record one activity and everything that follows from it, in one transaction.

        A hand-off it causes is told to the sink right after the transaction; if the sink
        fails, the notice stays pending and :meth:`run_due` retries it.

        ``history=True`` records an activity of the past (an import from a CRM or another
        tool): it is stored, scored and moves the lead through the stages, and it ends
        enrolments whose goal it meets, but it starts no scenario and hands nobody off, so it
        sends nothing. A lead that history qualifies for sales is handed off by its first live
        activity while an MQL definition still holds; record a ``handed_off`` activity in the
        history for a lead that sales already has.
        """
        now = aware_utc(self.clock.now(), "clock.now()")
        with self.storage.transaction():
            result = self._record(activity, now, history)
        if result.handoff is not None:
            self._notify(_Run(now))
        return result

    def record_many(
        self, activities: Iterable[Activity], *, history: bool = False
    ) -> list[RecordResult]:
        """Record several activities in one transaction (all of them or none), in the order
        given; ``history=True`` as in :meth:`record`."""
        now = aware_utc(self.clock.now(), "clock.now()")
        with self.storage.transaction():
            results = [self._record(activity, now, history) for activity in activities]
        if any(r.handoff is not None for r in results):
            self._notify(_Run(now))
        return results

    def broadcast(self, scenario: str, now: datetime | None = None) -> list[Enrollment]:
        """Enrol every stored lead that meets ``scenario``'s target (a segment mail, a
        newsletter issue, a campaign to dormant leads); the mails go out with :meth:`run_due`.

        It reads every lead, so it costs what the segment's universe costs; each lead is
        enrolled in its own transaction.
        """
        chosen = self.program.scenario(scenario)
        now = aware_utc(now, "now") if now is not None else self.clock.now()
        enrolled = []
        for lead in self.storage.leads():
            with self.storage.transaction():
                state = self.storage.get_state(lead.id) or self._new_state(lead, now)
                view = self._view(lead, state, now)
                mine = self.storage.enrollments_of(lead.id)
                enrollment = self._enrol(chosen, view, mine, now)
                if enrollment is not None:
                    enrolled.append(enrollment)
        return enrolled

    # ------------------------------------------------------------------ due work
    def run_due(self, now: datetime | None = None, limit: int = 500) -> RunReport:
        """Run every step that is due (up to ``limit`` enrolments), then deliver the outbox.

        Sends left in the outbox by an earlier run (a crash after the outbox write, a deferred
        delivery, an unreachable mail server) are handed over first, with their original keys.
        Every claim it takes (steps, sends, notices) is fenced: work whose claim another worker
        took over meanwhile is left to that worker (see docs/engine.md, the delivery guarantee).
        """
        now = _run_time(now if now is not None else self.clock.now(), "run_due(now)")
        run = _Run(now)
        report = _Tally()
        self._escalate(now, report)
        self._notify(run)
        self._deliver(run, report)
        self._run_steps(run, limit, report)
        self._deliver(run, report)
        return report.freeze(now)

    def _claim(self) -> str:
        """A token for one claim: this worker's name and a random part, so that two claims
        (of two runs, two threads or two engines with one name) are never mistaken for
        each other by the fence."""
        return f"{self.worker}/{uuid.uuid4().hex[:16]}"

    def stop(self) -> None:
        """Ask :meth:`run_forever` (and a :meth:`run_due` in progress) to stop after the step
        it is running; safe to call from a signal handler or another thread."""
        self._stop.set()

    def run_forever(
        self,
        *,
        idle_sleep: float = 1.0,
        limit: int = 500,
        handle_signals: bool = True,
        max_backoff: float = 60.0,
    ) -> None:
        """The worker loop: :meth:`run_due` again and again, sleeping ``idle_sleep`` seconds
        when nothing was due, until :meth:`stop` is called or, with ``handle_signals``, the
        process gets SIGTERM or SIGINT. It then finishes the step it is running, hands the
        claims it has not started back to the storage and returns (a CLI exits 0).

        It survives what passes: a mailer that cannot be reached leaves its sends in the
        outbox, a failing sink leaves its notices owed, and a storage error (a dropped
        database connection, a locked SQLite file) or a network error is logged and
        :meth:`run_due` is tried again after a pause that doubles each time, up to
        ``max_backoff`` seconds, while the error lasts. Any other exception is a bug (in
        nurturekit, a hook or an adapter): it is logged and raised, and the loop stops.

        Run as many workers as you like against one PostgreSQL database: claims are exclusive
        and a dead worker's claims are taken over when their lease runs out.
        """
        previous: dict[int, Any] = {}
        if handle_signals and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, lambda *_: self.stop())
        pause = 0.0
        try:
            while not self._stop.is_set():
                try:
                    report = self.run_due(limit=limit)
                except _TRANSIENT as error:
                    pause = min(max_backoff, max(pause * 2, idle_sleep, 0.1))
                    log.warning(
                        "run_due failed (%s: %s); trying again in %.1f s",
                        type(error).__name__,
                        error,
                        pause,
                    )
                    self._stop.wait(pause)
                    continue
                except Exception:
                    log.exception("run_due failed with an error it cannot recover from")
                    raise
                pause = 0.0
                if report.claimed == 0 and report.sent == 0:
                    self._stop.wait(idle_sleep)
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
            log.info("worker %s stopped", self.worker)
