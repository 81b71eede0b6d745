"""The step interpreter (running a scenario's steps for an enrolment) and the unit of work
that runs a batch of due steps in one transaction (:class:`_Batch`, :class:`_Pending`,
:class:`_StepWrites`); also how an enrolment moves on or ends (:func:`_go`, :func:`_end`)."""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from datetime import datetime, timedelta

import attrs

from nurturekit.activity import HANDED_OFF, SCORE_ADJUSTED, Activity
from nurturekit.engine.base import _Base
from nurturekit.engine.report import _Run, _Tally
from nurturekit.errors import TransitionNotAllowed
from nurturekit.lead import Lead
from nurturekit.messages import OutgoingMail
from nurturekit.ports import LeadState, Storage
from nurturekit.scenario import (
    AdjustScore,
    Branch,
    CallHook,
    End,
    Enrollment,
    EnrollmentStatus,
    HandOff,
    Scenario,
    SendMail,
    SetStage,
    Wait,
    WaitFor,
)
from nurturekit.templates import compose

log = logging.getLogger("nurturekit.engine")

_RUNNING = (EnrollmentStatus.ACTIVE, EnrollmentStatus.WAITING)
_ACTIVE, _WAITING = _RUNNING


class _Steps(_Base):
    """Running due steps: claims, batches and the step interpreter."""

    def _run_steps(self, run: _Run, limit: int, report: _Tally) -> None:
        """Claim due enrolments and run them in batches, each fenced in its transaction; renew
        the claims not yet started when a third of their lease has gone by."""
        storage = self.storage
        claim = self._claim()
        claimed = storage.claim_due(run.now, limit, claim, run.lease(self.lease))
        renewed = time.monotonic()
        report.claimed = len(claimed)
        index = 0
        while index < len(claimed):
            rest = claimed[index:]
            if self._stop.is_set():
                # Asked to stop: give the claims not started back at once (their leases end
                # now), so another worker can take them without waiting.
                storage.renew_leases([e.id for e in rest], claim, run.now)
                return
            if time.monotonic() - renewed > self.lease.total_seconds() / 3:
                held = storage.renew_leases([e.id for e in rest], claim, run.until(self.lease))
                renewed = time.monotonic()
                claimed = claimed[:index] + [e for e in rest if e.id in held]
                continue
            chunk = claimed[index : index + _STEPS_PER_TRANSACTION]
            index += self._run_batch(chunk, run, report, claim)

    def _run_alone(self, enrollment: Enrollment, run: _Run, report: _Tally, claim: str) -> None:
        """Run one claimed enrolment in a transaction of its own, fenced like a batch."""
        try:
            with self.storage.transaction():
                if not self.storage.renew_leases([enrollment.id], claim, run.until(self.lease)):
                    return  # another worker took it over: it is that worker's now
                self._run_enrollment(enrollment, run.now, report)
        except Exception as error:  # a hook or a template failed: retry later, go on
            with self.storage.transaction():
                if self.storage.renew_leases([enrollment.id], claim, run.until(self.lease)):
                    self._step_failed(enrollment, error, run.now, report)

    def _step_failed(
        self, enrollment: Enrollment, error: Exception, now: datetime, report: _Tally
    ) -> None:
        """Log a failed step and put its enrolment back, to be tried again later; give it up
        (``EnrollmentStatus.FAILED``) when that was its last attempt."""
        what = f"{type(error).__name__}: {error}"
        log.exception("step %s of %s failed", enrollment.step, enrollment.id, exc_info=error)
        report.failures.append((enrollment.id, what))
        if enrollment.attempt >= self.max_attempts:
            reason = f"step {enrollment.step} failed {enrollment.attempt} times; last: {what}"
            self.storage.put_enrollment(
                _end(enrollment, EnrollmentStatus.FAILED, now, reason[:1000])
            )
            report.abandoned.append((enrollment.id, what))
            return
        retry = min(timedelta(minutes=2**enrollment.attempt), timedelta(days=1))
        self.storage.put_enrollment(
            attrs.evolve(enrollment, attempt=enrollment.attempt + 1, due_at=now + retry)
        )

    def _run_batch(self, chunk: list[Enrollment], run: _Run, report: _Tally, claim: str) -> int:
        """Run claimed enrolments in one transaction, reading the leads and states they need
        at once; returns how many it started.

        The transaction begins with the fence (:meth:`Storage.renew_leases`): only the
        enrolments this run still holds are run, and none of them can be claimed by another
        worker until the transaction ends. A step that fails undoes only its own writes, and
        its enrolment is put back for a retry: the sends and advances of plain steps (sends,
        waits, branches, hooks, ends) are kept back and written together
        (:meth:`Storage.write_steps`), so a failed run's are simply dropped; a run that
        reaches a step writing more (a score adjustment, a stage, a hand-off) goes on in a
        savepoint of its own. Stops early, before a step, when asked to stop or once
        ``_SAVEPOINTS_PER_TRANSACTION`` runs went on in savepoints.

        If the transaction fails as a whole (the connection, the commit), the steps it
        started run again, each in a transaction of its own: a step runs at least once, and
        no mail of them was handed over yet.
        """
        storage = self.storage
        now = run.now
        steps, failures, abandoned = report.steps, len(report.failures), len(report.abandoned)
        started = 0
        try:
            with storage.transaction():
                # The fence only reads: the leases need no renewal, since every step run
                # here is written with its claim ended, and the rest are given back or
                # renewed by _run_steps. Locking the rows costs a third less than rewriting them.
                held = storage.renew_leases([e.id for e in chunk], claim)
                mine = [e for e in chunk if e.id in held]
                ids = list(dict.fromkeys(e.lead_id for e in mine))
                batch = _Batch(
                    leads=storage.get_leads(ids), states=storage.get_states(ids), fresh=set(ids)
                )
                pending = _Pending()
                seen: set[str] = set()
                for enrollment in chunk:
                    if started and (
                        self._stop.is_set() or pending.savepoints >= _SAVEPOINTS_PER_TRANSACTION
                    ):
                        break
                    started += 1
                    if enrollment.id not in held:
                        continue  # another worker took it over: it is that worker's now
                    if enrollment.lead_id in seen:
                        # The lead's earlier step in this batch is written before this one reads.
                        pending.write(storage)
                    seen.add(enrollment.lead_id)
                    try:
                        with ExitStack() as stack:
                            out = _StepWrites(storage, pending, stack)
                            self._run_enrollment(enrollment, now, report, batch, out)
                    except _BatchFailed:
                        raise
                    except Exception as error:  # a hook or a template failed: retry later
                        self._step_failed(enrollment, error, now, report)
                pending.write(storage)
        except Exception as error:
            log.warning(
                "a batch of %d steps failed as a whole (%s: %s); running them one by one",
                started,
                type(error).__name__,
                error,
            )
            report.steps = steps
            del report.failures[failures:]
            del report.abandoned[abandoned:]
            # Failed before its first step (reading the batch): all of them, one by one.
            started = started or len(chunk)
            for enrollment in chunk[:started]:
                self._run_alone(enrollment, run, report, claim)
        return started

    def _run_enrollment(
        self,
        enrollment: Enrollment,
        now: datetime,
        report: _Tally,
        batch: _Batch | None = None,
        out: _StepWrites | None = None,
    ) -> None:
        """Run the enrolment's due steps up to its next wait. In a batch, ``batch`` has its
        lead and state, and its sends and advance go to ``out``."""
        storage = self.storage
        scenario = self.program.scenario(enrollment.scenario)
        known = None if batch is None else batch.take(enrollment.lead_id)
        lead = storage.get_lead(enrollment.lead_id) if known is None else known[0]
        if lead is None:
            ended = _end(enrollment, EnrollmentStatus.EXITED, now, "lead removed")
            if out is None:
                storage.put_enrollment(ended)
            else:
                out.done(ended)
            return
        state = (storage.get_state(lead.id) if known is None else known[1]) or self._new_state(
            lead, now
        )
        current = enrollment
        if current.status is EnrollmentStatus.WAITING and current.step is not None:
            waited = scenario.step(current.step)
            target = waited.timeout if isinstance(waited, WaitFor) else None
            current = _go(current, target, now, EnrollmentStatus.ACTIVE)
        for _ in range(self.max_steps):
            if current.step is None:
                current = _end(current, EnrollmentStatus.COMPLETED, now, "end of steps")
                break
            step = scenario.step(current.step)
            report.steps += 1
            if out is not None and isinstance(step, (AdjustScore, SetStage, HandOff)):
                out.settle()  # these write more than a send: go on in a savepoint
            if isinstance(step, SendMail):
                held = self._hold_send(lead, state, now, out, step.template)
                if isinstance(held, str):
                    current = _end(current, EnrollmentStatus.EXITED, now, held)
                    break
                if held is not None:
                    current = attrs.evolve(current, due_at=held)
                    break
                self._write_send(scenario, step, current, lead, now, out)
                current = _go(current, step.next, now, EnrollmentStatus.ACTIVE)
            elif isinstance(step, Wait):
                due = step.due(now, self.program.policies.zone_of(lead))
                current = _go(current, step.next, due, EnrollmentStatus.ACTIVE)
                if step.next is not None:
                    break
            elif isinstance(step, WaitFor):
                current = attrs.evolve(
                    current, status=EnrollmentStatus.WAITING, due_at=now + step.within, attempt=1
                )
                break
            elif isinstance(step, Branch):
                view = self._view(lead, state, now)
                current = _go(current, step.yes if step.when.predicate()(view) else step.no, now)
            elif isinstance(step, AdjustScore):
                adjusted: dict[str, str | int] = {"points": step.points, "reason": step.reason}
                state = self._step_activity(lead, current, SCORE_ADJUSTED, adjusted, now) or state
                current = _go(current, step.next, now)
            elif isinstance(step, SetStage):
                self._set_stage(lead, state, step, now)
                current = _go(current, step.next, now)
            elif isinstance(step, HandOff):
                handed: dict[str, str | int] = {"scenario": scenario.name}
                state = self._step_activity(lead, current, HANDED_OFF, handed, now) or state
                current = _go(current, step.next, now)
            elif isinstance(step, CallHook):
                self.program.hooks[step.hook](lead, current)
                current = _go(current, step.next, now)
            elif isinstance(step, End):
                current = _end(current, EnrollmentStatus.COMPLETED, now, f"end step {step.id}")
                break
        else:
            current = attrs.evolve(current, due_at=now)  # a long chain: go on in the next run
        if out is None:
            storage.put_enrollment(current)
        else:
            out.done(current)

    def _step_activity(
        self,
        lead: Lead,
        enrollment: Enrollment,
        kind: str,
        properties: dict[str, str | int],
        now: datetime,
    ) -> LeadState | None:
        """Record what a step did as an activity of the lead (keyed by enrolment and step, so a
        step run twice records it once); return the lead's state after it."""
        self._record(
            Activity(
                lead_id=lead.id,
                kind=kind,
                at=now,
                properties=properties,
                key=f"{enrollment.id}/{enrollment.step}",
            ),
            now,
        )
        return self.storage.get_state(lead.id)

    def _hold_send(
        self,
        lead: Lead,
        state: LeadState,
        now: datetime,
        out: _StepWrites | None = None,
        template: str | None = None,
    ) -> str | datetime | None:
        """Why a marketing send may not go now: a reason to exit (str), a time to wait until,
        or ``None`` when it may go. ``out`` holds the sends of this run not written yet."""
        if not lead.contactability.can_receive_marketing:
            return f"suppressed: {lead.contactability.status.value}"
        if state.with_sales:
            return "suppressed: owned by sales"
        if state.disqualified:
            return "suppressed: disqualified by sales"
        policies = self.program.policies
        if (
            policies.require_consent
            and lead.consent is None
            and (template is None or self.program.templates[template].marketing)
        ):
            return "suppressed: no consent"
        later = now
        if policies.frequency_cap is not None:
            cap = policies.frequency_cap
            sends = self.storage.marketing_sends_since(lead.id, now - cap.per)
            if out is not None and out.mails:
                kept = [m.created_at for m in out.mails if m.marketing and m.lead_id == lead.id]
                sends = sorted(sends + [at for at in kept if at >= now - cap.per])
            later = max(later, cap.next_allowed(sends, now))
        if policies.send_window is not None:
            later = policies.send_window.next_open(later, policies.zone_of(lead))
        return None if later == now else later

    def _write_send(
        self,
        scenario: Scenario,
        step: SendMail,
        enrollment: Enrollment,
        lead: Lead,
        now: datetime,
        out: _StepWrites | None = None,
    ) -> None:
        key = enrollment.send_key()
        template = self.program.templates[step.template]
        mail = compose(
            template,
            lead,
            self.program.sender,
            key=key,
            created_at=now,
            unsubscribe_url=self.links.unsubscribe_url(lead.id, key, now=now),
            scenario=scenario.name,
            step=step.id,
            enrollment_id=enrollment.id,
            tracking=self.links.tracking(lead.id, key, now=now) if template.track else None,
        )
        if out is None:
            self.storage.add_to_outbox(mail)
        else:
            out.mail(mail)

    def _set_stage(self, lead: Lead, state: LeadState, step: SetStage, now: datetime) -> None:
        stages = self._stages(state)
        if stages is None or stages.current == step.stage:
            return
        try:
            stages.move(step.stage, now, step.reason)
        except TransitionNotAllowed as refused:
            log.warning("scenario step %s: %s", step.id, refused)
            return
        self.storage.put_state(state)


#: Claimed enrolments run in one transaction (see :meth:`Engine._run_batch`): one durable
#: commit per batch, two for the 500 ``run_due`` claims by default.
_STEPS_PER_TRANSACTION = 250
#: A batch ends early once this many of its runs went on in savepoints: at most 64 keep
#: PostgreSQL's per-transaction cache of subtransactions from overflowing.
_SAVEPOINTS_PER_TRANSACTION = 50


@attrs.define
class _Batch:
    """The leads and states of a batch of claimed enrolments, read at once. Each lead's are
    handed out once: a second step of the same lead in the batch reads the store again, and
    so sees what the first one wrote."""

    leads: dict[str, Lead]
    states: dict[str, LeadState]
    fresh: set[str]

    def take(self, lead_id: str) -> tuple[Lead | None, LeadState | None] | None:
        """The lead and its state as read for the batch, or ``None``: read the store."""
        if lead_id not in self.fresh:
            return None
        self.fresh.discard(lead_id)
        return self.leads.get(lead_id), self.states.get(lead_id)


@attrs.define
class _Pending:
    """The sends and advances of a batch's plain step runs, kept back to be written together,
    in order (before anything that may read them)."""

    mails: list[OutgoingMail] = attrs.Factory(list)
    enrollments: list[Enrollment] = attrs.Factory(list)
    #: How many runs of the batch went on in a savepoint of their own.
    savepoints: int = 0

    def write(self, storage: Storage) -> None:
        if not (self.mails or self.enrollments):
            return
        mails, enrollments = self.mails, self.enrollments
        self.mails, self.enrollments = [], []
        storage.write_steps(mails, enrollments)


class _BatchFailed(Exception):
    """Writing a batch's kept-back writes failed: the batch fails as a whole."""


class _StepWrites:
    """Where one enrolment's run in a batch writes its sends and its advance.

    They are kept back and, when the run ends, join the batch's :class:`_Pending` writes; a run
    that fails leaves nothing behind. A run that reaches a step writing more (:meth:`settle`)
    has the batch's kept-back writes written, enters a savepoint (on ``stack``, which the
    caller leaves with the run's outcome) and writes straight to the store from then on.
    """

    def __init__(self, storage: Storage, pending: _Pending, stack: ExitStack) -> None:
        self.storage = storage
        self.pending = pending
        self.stack = stack
        self.mails: list[OutgoingMail] = []
        self.direct = False

    def mail(self, mail: OutgoingMail) -> None:
        if self.direct:
            self.storage.add_to_outbox(mail)
        else:
            self.mails.append(mail)

    def settle(self) -> None:
        if self.direct:
            return
        try:
            self.pending.write(self.storage)
        except Exception as error:
            raise _BatchFailed(f"{type(error).__name__}: {error}") from error
        self.stack.enter_context(self.storage.savepoint())
        self.pending.savepoints += 1
        self.direct = True
        mails, self.mails = self.mails, []
        for mail in mails:
            self.storage.add_to_outbox(mail)

    def done(self, enrollment: Enrollment) -> None:
        """The run ended with ``enrollment``: write it, or keep it back with the sends."""
        if self.direct:
            self.storage.put_enrollment(enrollment)
        else:
            self.pending.mails += self.mails
            self.pending.enrollments.append(enrollment)
            self.mails = []


#: An enrolment moved on (:meth:`Enrollment.moved_to`) or ended (:meth:`Enrollment.ended`).
_go = Enrollment.moved_to
_end = Enrollment.ended
