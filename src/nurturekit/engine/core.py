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

from nurturekit._fast import maker
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


#: How many leads of a failed batch :meth:`Engine.upsert_leads` tries alone, all failing, before
#: it takes the store (not the leads) to be failing.
_GIVE_UP = 3


@attrs.frozen
class UpsertSummary:
    """What :meth:`Engine.upsert_leads` did: how many leads it ``stored``, and the ones the
    store refused, each as ``(position, error)``: its position among the leads given (from
    0) and the :class:`~nurturekit.errors.StorageError` it failed with alone."""

    stored: int
    refused: tuple[tuple[int, StorageError], ...] = ()


def _merged(lead: Lead, old: Lead | None, now: datetime) -> Lead:
    """``lead`` as :meth:`Engine.upsert_lead` stores it over ``old`` (the stored lead, if
    any): the stored contactability and opt-in record kept where ``lead`` has none of its
    own, and ``created_at`` the stored one, or ``now`` for a new lead."""
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
        at = old.created_at if old and old.created_at else aware_utc(now, "Lead.created_at")
        lead = _stamped(lead, at)
    return lead


#: Builds a :class:`Lead` from all its fields, in order, without its ``__init__`` (see
#: :func:`nurturekit._fast.maker`).
_make_lead = maker(Lead)


def _stamped(lead: Lead, at: datetime) -> Lead:
    """``lead`` with ``created_at`` ``at`` (aware UTC), as ``attrs.evolve`` would give it,
    from its own fields, checked when it was made: its checks are not run again. Kept
    because it pays: ``import_leads`` of benchmarks/bulk.py's 100,000 leads into SQLite, 3
    alternating runs on 2026-12-06: median +10.8% leads/s against ``attrs.evolve``."""
    return _make_lead(
        lead.id,
        lead.email,
        lead.name,
        lead.company,
        lead.attributes,
        lead.source,
        lead.consent,
        lead.contactability,
        lead.owner,
        at,
        lead.email_ascii,
    )


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
            lead = _merged(lead, old, now)
            self.storage.put_lead(lead)
            state = self._fitted(lead, self.storage.get_state(lead.id), now)
            self.storage.put_state(state)
        return lead

    def upsert_leads(self, leads: Iterable[Lead], *, batch_size: int = 1000) -> UpsertSummary:
        """Store many leads as :meth:`upsert_lead` stores each (the same rules: stored
        contactability and opt-in kept, ``created_at`` stamped, the fit re-scored), in one
        transaction per ``batch_size`` leads, in the order given.

        ``leads`` is read a batch at a time, so an iterator of any length takes the memory of
        one batch. Each batch reads its stored leads and states in one query each
        (:meth:`Storage.get_leads <nurturekit.ports.Storage.get_leads>`, ``get_states``) and
        writes them back together (``put_leads`` / ``put_states`` where the store has them,
        else one ``put_lead`` / ``put_state`` each). A lead given twice is upserted twice, the
        second time over the first.

        Returns an :class:`UpsertSummary`: how many leads were stored, and which the store
        refused. If a batch fails with :class:`~nurturekit.errors.StorageError`, nothing of it
        is kept and its leads are upserted again one by one, each in a transaction of its own
        (as :meth:`upsert_lead`): a lead the store refuses alone is left out and reported in
        the summary's ``refused`` (its position among the leads given, from 0, and the
        error), and the others are stored. When the first three leads tried alone all fail,
        the store itself is failing, not those leads: that error is raised, and the batches
        before are kept. Any other exception is raised at once (its batch is not kept).

            >>> summary = engine.upsert_leads(leads_from_crm())  # doctest: +SKIP
            >>> summary.stored, [(at, str(e)) for at, e in summary.refused]  # doctest: +SKIP
            (99999, [(4711, "the store refused lead 'x-4711'")])
        """
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise InvalidInput(
                "upsert_leads(batch_size)",
                f"expected a whole number of 1 or more, got {batch_size!r}",
            )
        stored = 0
        refused: list[tuple[int, StorageError]] = []
        batch: list[Lead] = []
        first = 0
        for lead in leads:
            batch.append(lead)
            if len(batch) >= batch_size:
                stored += self._upsert_batch(batch, first, refused)
                first += len(batch)
                batch = []
        if batch:
            stored += self._upsert_batch(batch, first, refused)
        return UpsertSummary(stored=stored, refused=tuple(refused))

    def _upsert_batch(
        self, batch: list[Lead], first: int, refused: list[tuple[int, StorageError]]
    ) -> int:
        """Upsert ``batch`` (the leads from position ``first``) in one transaction, or one by
        one if that fails (see :meth:`upsert_leads`); how many were stored."""
        try:
            self._upsert_together(batch)
            return len(batch)
        except StorageError as error:
            log.warning(
                "a batch of %d leads failed as a whole (%s); upserting them one by one",
                len(batch),
                error,
            )
        stored = 0
        for offset, lead in enumerate(batch):
            try:
                self.upsert_lead(lead)
            except StorageError as error:
                if not stored and offset + 1 >= _GIVE_UP:
                    raise
                refused.append((first + offset, error))
            else:
                stored += 1
        return stored

    def _upsert_together(self, batch: list[Lead]) -> None:
        storage = self.storage
        now = self.clock.now()
        ids = list(dict.fromkeys(lead.id for lead in batch))
        with storage.transaction():
            olds: dict[str, Lead] = storage.get_leads(ids)
            states = storage.get_states(ids)
            for lead in batch:
                lead = olds[lead.id] = _merged(lead, olds.get(lead.id), now)
                states[lead.id] = self._fitted(lead, states.get(lead.id), now)
            # The last of each id: a lead given twice was merged over its first.
            written = [olds[i] for i in ids]
            put_leads = getattr(storage, "put_leads", None)
            if put_leads is not None:
                put_leads(written)
            else:
                for lead in written:
                    storage.put_lead(lead)
            put_states = getattr(storage, "put_states", None)
            if put_states is not None:
                put_states([states[i] for i in ids])
            else:
                for lead_id in ids:
                    storage.put_state(states[lead_id])

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
        given; ``history=True`` as in :meth:`record`.

        On a database store (one with the batch reads of
        :class:`~nurturekit.ports.ReadAhead`) the leads, states, histories and enrolments of
        the batch's leads are read first, a few queries for them all, and each lead's first
        activity is recorded from them (a later activity of the same lead reads the store, and
        so sees what the first one wrote); on PostgreSQL a batch of one activity per lead is
        also stored with one statement. The results are those of recording the activities one
        after the other, read as :meth:`record` reads them.
        """
        now = aware_utc(self.clock.now(), "clock.now()")
        batch = list(activities)
        with self.storage.transaction():
            ahead = self._ahead(batch)
            results = [self._record(activity, now, history, ahead) for activity in batch]
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
