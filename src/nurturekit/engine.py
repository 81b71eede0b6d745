"""The engine: the imperative shell that runs a :class:`~nurturekit.program.Program`.

It talks only to ports — a :class:`~nurturekit.ports.Storage`, a
:class:`~nurturekit.ports.Mailer` and a :class:`~nurturekit.ports.Clock` — and passes "now" down
to the pure domain.

``record(activity)``, in one storage transaction: store it (a duplicate key changes nothing) →
score → stage → scenario goals, exits and waits → triggers and enrolments.

``run_due()``: claim the enrolments whose next step is due, run each until its next wait
(writing every send to the outbox in the same transaction as the step's advance), then hand the
outbox to the mailer. A step runs at least once; a mail is handed over at most once per
idempotency key as far as the mailer can tell (the outbox records what was handed over).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterable
from contextlib import ExitStack
from datetime import datetime, timedelta
from typing import Any

import attrs

from nurturekit._fast import maker
from nurturekit._time import aware_utc
from nurturekit.activity import (
    BOUNCED,
    COMPLAINED,
    HANDED_OFF,
    SCORE_ADJUSTED,
    SLA_BREACHED,
    UNSUBSCRIBED,
    Activity,
)
from nurturekit.clock import SystemClock
from nurturekit.conditions import Explanation, View, _trusted_view
from nurturekit.errors import MailerUnavailable, NoOpenHandoff, TransitionNotAllowed, UnknownLead
from nurturekit.handoff import (
    Handoff,
    HandoffEvent,
    HandoffPolicy,
    HandoffStatus,
    MqlDefinition,
    Outcome,
)
from nurturekit.lead import Contactability, ContactStatus, Lead
from nurturekit.messages import OutgoingMail, SendStatus
from nurturekit.ports import Clock, HandoffSink, LeadState, Mailer, Storage
from nurturekit.program import Program
from nurturekit.scenario import (
    AdjustScore,
    Branch,
    CallHook,
    End,
    Enrollment,
    EnrollmentStatus,
    HandOff,
    OnActivity,
    OnLevelCrossed,
    OnStageEntered,
    Scenario,
    SendMail,
    SetStage,
    Wait,
    WaitFor,
    _make_enrollment,
)
from nurturekit.scoring import Score
from nurturekit.stages import StageHistory, StageMove, _advance_moves
from nurturekit.templates import compose
from nurturekit.tokens import Links

__all__ = ["Engine", "RecordResult", "RunReport"]

log = logging.getLogger("nurturekit.engine")

#: Contactability an activity of this kind sets.
_CONTACT_EFFECT = {
    UNSUBSCRIBED: ContactStatus.UNSUBSCRIBED,
    BOUNCED: ContactStatus.BOUNCED,
    COMPLAINED: ContactStatus.DO_NOT_CONTACT,
}
_RUNNING = (EnrollmentStatus.ACTIVE, EnrollmentStatus.WAITING)
_ACTIVE, _WAITING = _RUNNING
#: The lifecycle stage that sales feedback moves a lead to, where the stage machine has it.
_LIFECYCLE_STAGE = {
    Outcome.ACCEPTED: "sql",
    Outcome.NOT_NOW: "recycled",
    Outcome.NOT_A_FIT: "disqualified",
}


@attrs.frozen(kw_only=True)
class RecordResult:
    """What recording one activity did."""

    activity: Activity
    #: False when an activity with the same key was already stored (nothing else happened).
    stored: bool
    score: Score | None = None
    moves: tuple[StageMove, ...] = ()
    enrolled: tuple[Enrollment, ...] = ()
    ended: tuple[Enrollment, ...] = ()
    #: The hand-off to sales this activity caused, if it did.
    handoff: Handoff | None = None


#: Builds a :class:`RecordResult` from all its fields in order (one per recorded activity).
_make_result = maker(RecordResult)


@attrs.frozen(kw_only=True)
class RunReport:
    """What one :meth:`Engine.run_due` did."""

    now: datetime
    claimed: int = 0
    steps: int = 0
    sent: int = 0
    bounced: int = 0
    deferred: int = 0
    #: SLA breaches escalated.
    escalated: int = 0
    #: Enrolments whose step failed (a hook raised …), with the error; they are retried later.
    failures: tuple[tuple[str, str], ...] = ()


class Engine:
    """Runs a program over a storage, a mailer and a clock.

    >>> from nurturekit.storage.memory import InMemoryStorage
    >>> from nurturekit.mail import OutboxMailer

    ``links`` builds the signed unsubscribe links that every marketing mail carries; the host
    app serves them (see :mod:`nurturekit.tokens`). ``sink`` hears of hand-offs to sales and
    SLA breaches (see :mod:`nurturekit.sinks`). ``worker`` names this process in claims,
    which last ``lease``; a deferred send is tried again ``retry_deferred`` after its last try.
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
    ) -> None:
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
        self._stop = threading.Event()

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

    def _new_state(self, lead: Lead, now: datetime) -> LeadState:
        machine = self.program.stages
        return LeadState(
            lead_id=lead.id,
            card=self.program.scoring.new_card(lead),
            moves=[] if machine is None else StageHistory.start(machine, lead.id, now).moves,
        )

    def _stages(self, state: LeadState) -> StageHistory | None:
        """The lead's stage history over ``state.moves`` (moves it makes land there)."""
        machine = self.program.stages
        if machine is None or not state.moves:
            return None
        return StageHistory.adopt(machine, state.lead_id, state.moves)

    # ------------------------------------------------------------------ activities

    def record(self, activity: Activity) -> RecordResult:
        """Record one activity and everything that follows from it, in one transaction.

        A hand-off it causes is told to the sink right after the transaction; if the sink
        fails, the notice stays pending and :meth:`run_due` retries it.
        """
        now = aware_utc(self.clock.now(), "clock.now()")
        with self.storage.transaction():
            result = self._record(activity, now)
        if result.handoff is not None:
            self._notify(now)
        return result

    def record_many(self, activities: Iterable[Activity]) -> list[RecordResult]:
        """Record several activities in one transaction (all of them or none), in the order
        given."""
        now = aware_utc(self.clock.now(), "clock.now()")
        with self.storage.transaction():
            results = [self._record(activity, now) for activity in activities]
        if any(r.handoff is not None for r in results):
            self._notify(now)
        return results

    def _record(self, activity: Activity, clock_now: datetime) -> RecordResult:
        storage = self.storage
        lead = storage.get_lead(activity.lead_id)
        if lead is None:
            raise UnknownLead(activity.lead_id)
        if not storage.add_activity(activity):
            return RecordResult(activity=activity, stored=False)
        now = max(clock_now, activity.at)
        effect = _CONTACT_EFFECT.get(activity.kind)
        if effect is not None and lead.contactability.status is not effect:
            lead = attrs.evolve(
                lead,
                contactability=Contactability(
                    status=effect, since=activity.at, reason=activity.kind
                ),
            )
            storage.put_lead(lead)
        state = storage.get_state(lead.id) or self._new_state(lead, now)
        program = self.program
        history = storage.activities(lead.id)
        program.scoring.apply(state.card, lead, activity, history)
        score = program.scoring.score(state.card, now)
        moves: list[StageMove] = []
        machine = program.stages
        last = state.moves[-1] if machine is not None and state.moves else None
        view = _trusted_view(
            lead,
            now,
            history,
            activity,
            score,
            None if last is None else last.target,
            None if last is None else last.at,
            True,
        )
        if last is not None:
            assert machine is not None
            moves, view = _advance_moves(machine, lead.id, state.moves, view)
        levels = score.levels
        crossed = [name for name in levels if name not in state.levels] if levels else []
        if crossed:
            state.levels = state.levels | frozenset(crossed)
        if activity.kind == HANDED_OFF:
            state.with_sales = True
        handoff = None
        policy = program.handoff
        if policy is not None:
            qualified = policy.qualifies(view)
            # Hand off on a new qualification only: a definition that starts to hold.
            if qualified is not None and not state.qualified and not state.with_sales:
                handoff = self._hand_off(lead, state, view, qualified, now)
            state.qualified = qualified is not None
        ended = self._goals_and_waits(view, now)
        triggered = program.triggered_by(activity.kind)
        if not state.with_sales and (
            triggered or ((moves or crossed) and program.triggered_on_entry())
        ):
            enrolled = self._triggers(view, triggered, moves, crossed, now)
        else:
            enrolled = []
        storage.put_state(state)
        return _make_result(
            activity,
            True,
            score,
            tuple(moves) if moves else (),
            tuple(enrolled) if enrolled else (),
            tuple(ended) if ended else (),
            handoff,
        )

    # ------------------------------------------------------------------ hand-off to sales

    def _hand_off(
        self,
        lead: Lead,
        state: LeadState,
        view: View,
        qualified: tuple[MqlDefinition, Explanation],
        now: datetime,
    ) -> Handoff:
        """Hand the lead to sales for this qualification: assign an owner, set the SLA
        deadline, take the lead out of marketing, and leave a notice for the sink."""
        policy = self.program.handoff
        assert policy is not None
        storage = self.storage
        definition, explanation = qualified
        choice = policy.assignment.pick(view)
        key = choice.team_key
        position = None if key is None else storage.next_in_rotation(key, len(choice.team))
        owner = choice.resolve(position)
        score = view.score
        assert isinstance(score, Score)
        recent = tuple(
            " ".join(
                [a.at.isoformat(), a.kind] + [f"{k}={v}" for k, v in sorted(a.properties.items())]
            )
            for a in list(view.activities)[-5:]
        )
        number = len(storage.handoffs_of(lead.id)) + 1
        handoff = Handoff(
            id=f"{lead.id}/{number}",
            lead_id=lead.id,
            at=now,
            definition=definition.name,
            explanation=str(explanation),
            score=score.total,
            score_explanation=score.explain(),
            recent=recent,
            owner=owner,
            deadline=policy.deadline_for(owner, now),
        )
        storage.put_handoff(handoff)
        state.with_sales = True
        state.disqualified = False
        storage.add_activity(
            Activity(
                lead_id=lead.id,
                kind=HANDED_OFF,
                at=now,
                properties={"definition": definition.name, "owner": owner, "ref": handoff.id},
                key=f"handoff/{handoff.id}",
            )
        )
        if policy.leave_scenarios:
            for enrollment in storage.enrollments_of(lead.id):
                if enrollment.status in _RUNNING:
                    storage.put_enrollment(
                        _end(enrollment, EnrollmentStatus.EXITED, now, "handed to sales")
                    )
        return handoff

    def feedback(
        self, lead_id: str, outcome: Outcome | str, *, note: str = "", at: datetime | None = None
    ) -> Handoff:
        """Record what sales says about the lead's current hand-off.

        ``contacted`` stops the SLA clock; ``accepted`` makes it an SQL / opportunity;
        ``not_now`` recycles the lead into marketing (into the policy's ``recycle_into``
        scenario, optionally resetting its engagement) so it can qualify again later;
        ``not_a_fit`` disqualifies it (no marketing mail unless it qualifies again). Each
        outcome is also recorded as an activity (``sales_contacted``, ``sales_accepted``,
        ``sales_not_now``, ``sales_not_a_fit``), so scoring and stages can react to it.
        """
        outcome = Outcome(outcome)
        now = aware_utc(at, "at") if at is not None else self.clock.now()
        policy = self.program.handoff
        with self.storage.transaction():
            current = next(
                (h for h in reversed(self.storage.handoffs_of(lead_id)) if not h.status.closed),
                None,
            )
            if current is None:
                if self.storage.get_lead(lead_id) is None:
                    raise UnknownLead(lead_id)
                raise NoOpenHandoff(lead_id)
            contacted_at = current.contacted_at or now
            if outcome is Outcome.CONTACTED:
                changed = attrs.evolve(
                    current, status=HandoffStatus.CONTACTED, contacted_at=contacted_at
                )
            else:
                status = {
                    Outcome.ACCEPTED: HandoffStatus.ACCEPTED,
                    Outcome.NOT_NOW: HandoffStatus.RECYCLED,
                    Outcome.NOT_A_FIT: HandoffStatus.DISQUALIFIED,
                }[outcome]
                changed = attrs.evolve(
                    current,
                    status=status,
                    contacted_at=contacted_at,
                    closed_at=now,
                    outcome_note=note,
                )
            self.storage.put_handoff(changed)
            properties: dict[str, str | int] = {"ref": current.id}
            if note:
                properties["note"] = note[:500]
            self._record(
                Activity(
                    lead_id=lead_id,
                    kind=f"sales_{outcome.value}",
                    at=now,
                    properties=properties,
                    key=f"feedback/{current.id}/{outcome.value}",
                ),
                now,
            )
            state = self.storage.get_state(lead_id)
            assert state is not None
            if outcome in (Outcome.NOT_NOW, Outcome.NOT_A_FIT):
                state.with_sales = False
                state.disqualified = outcome is Outcome.NOT_A_FIT
            self._follow_lifecycle(state, outcome, now, note)
            self.storage.put_state(state)
            if outcome is Outcome.NOT_NOW and policy is not None:
                self._recycle(lead_id, policy, current, now)
        return changed

    def _follow_lifecycle(
        self, state: LeadState, outcome: Outcome, now: datetime, note: str
    ) -> None:
        """With a lifecycle stage machine (``lead → mql → sql …``), sales' word moves the
        stage: accepted → ``sql``, not now → ``recycled``, not a fit → ``disqualified`` —
        when the machine has that stage and allows the move from where the lead is."""
        target = _LIFECYCLE_STAGE.get(outcome)
        stages = self._stages(state)
        if target is None or stages is None:
            return
        if target in stages.machine.allowed_targets(stages.current):
            reason = f"sales: {outcome.value.replace('_', ' ')}" + (f" ({note})" if note else "")
            stages.move(target, now, reason)

    def _recycle(
        self, lead_id: str, policy: HandoffPolicy, handoff: Handoff, now: datetime
    ) -> None:
        """Back to nurture: reset engagement if the policy says so, and enrol the lead in the
        policy's recycle scenario."""
        if policy.reset_engagement_on_recycle:
            state = self.storage.get_state(lead_id)
            assert state is not None
            engagement = self.program.scoring.score(state.card, now).engagement
            if engagement:
                self._record(
                    Activity(
                        lead_id=lead_id,
                        kind=SCORE_ADJUSTED,
                        at=now,
                        properties={"points": -engagement, "reason": "recycled by sales"},
                        key=f"recycle/{handoff.id}",
                    ),
                    now,
                )
        if policy.recycle_into is not None:
            lead = self.storage.get_lead(lead_id)
            state = self.storage.get_state(lead_id)
            assert lead is not None and state is not None
            scenario = self.program.scenario(policy.recycle_into)
            mine = self.storage.enrollments_of(lead_id)
            previous = [e for e in mine if e.scenario == scenario.name]
            if not any(e.status in _RUNNING for e in previous):
                enrollment = Enrollment.start(scenario, lead_id, len(previous) + 1, now)
                self.storage.put_enrollment(enrollment)

    def _goals_and_waits(self, view: View, now: datetime) -> list[Enrollment]:
        """End enrolments whose goal or an exit now holds; wake the ones waiting for this."""
        ended: list[Enrollment] = []
        storage = self.storage
        for enrollment in storage.enrollments_of(view.lead.id):
            status = enrollment.status
            if status is not _ACTIVE and status is not _WAITING:
                continue
            scenario = self.program.scenario(enrollment.scenario)
            goal = scenario.goal
            if goal is not None and goal.predicate()(view):
                done = _end(enrollment, EnrollmentStatus.CONVERTED, now, "reached the goal")
                storage.put_enrollment(done)
                ended.append(done)
                continue
            left = None
            for exit_ in scenario.exits:
                if exit_.when.predicate()(view):
                    left = exit_
                    break
            if left is not None:
                done = _end(enrollment, EnrollmentStatus.EXITED, now, left.name)
                storage.put_enrollment(done)
                ended.append(done)
                continue
            if status is _WAITING and enrollment.step is not None:
                step = scenario.step(enrollment.step)
                if isinstance(step, WaitFor) and step.condition.predicate()(view):
                    storage.put_enrollment(_go(enrollment, step.next, now, _ACTIVE))
        return ended

    def _triggers(
        self,
        view: View,
        triggered: tuple[Scenario, ...],
        moves: list[StageMove],
        crossed: list[str],
        now: datetime,
    ) -> list[Enrollment]:
        """Enrol the lead in the scenarios this activity triggers: ``triggered`` (those whose
        activity trigger can match its kind) and those entered by its stage moves or level
        crossings."""
        program = self.program
        candidates: list[Scenario] = []
        for scenario in triggered:
            trigger = scenario.trigger
            if isinstance(trigger, OnActivity) and trigger.when.predicate()(view):
                candidates.append(scenario)
        on_entry = program.triggered_on_entry()
        if on_entry and (moves or crossed):
            entered = {m.target for m in moves}
            for scenario in on_entry:
                trigger = scenario.trigger
                if (isinstance(trigger, OnStageEntered) and trigger.stage in entered) or (
                    isinstance(trigger, OnLevelCrossed) and trigger.level in crossed
                ):
                    candidates.append(scenario)
            # Scenarios are deep frozen values: dedupe by name, not by (deep) hash.
            candidates = list({s.name: s for s in candidates}.values())
        if not candidates:
            return []
        mine = self.storage.enrollments_of(view.lead.id)
        enrolled = []
        for scenario in candidates:
            enrollment = self._enrol(scenario, view, mine, now)
            if enrollment is not None:
                enrolled.append(enrollment)
        return enrolled

    def _enrol(
        self, scenario: Scenario, view: View, mine: list[Enrollment], now: datetime
    ) -> Enrollment | None:
        """Enrol the lead of ``view`` in ``scenario`` if it is not in it, may re-enter and is
        in the target."""
        name = scenario.name
        entries = 0
        last = None
        for e in mine:
            if e.scenario == name:
                if e.status is _ACTIVE or e.status is _WAITING:
                    return None
                entries += 1
                last = e.entered_at
        if not scenario.reentry.allows(last, now) or not scenario.target.predicate()(view):
            return None
        enrollment = Enrollment.start(scenario, view.lead.id, entries + 1, now)
        self.storage.put_enrollment(enrollment)
        return enrollment

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
        """
        now = aware_utc(now, "now") if now is not None else self.clock.now()
        report = _Tally()
        self._escalate(now, report)
        self._notify(now)
        self._deliver(now, report)
        claimed = self.storage.claim_due(now, limit, self.worker, self.lease)
        claimed_at = time.monotonic()
        report.claimed = len(claimed)
        batched = getattr(self.storage, "savepoint", None) is not None
        index = 0
        while index < len(claimed):
            if self._stop.is_set():
                # Asked to stop: give the claims not started back at once, so another worker
                # can take them without waiting for the lease to run out.
                for untouched in claimed[index:]:
                    self.storage.put_enrollment(untouched)
                break
            if batched and not self._ran_long(claimed_at):
                chunk = claimed[index : index + _STEPS_PER_TRANSACTION]
                index += self._run_batch(chunk, now, report, claimed_at)
                continue
            enrollment = claimed[index]
            index += 1
            elapsed = timedelta(seconds=time.monotonic() - claimed_at)
            if elapsed > self.lease / 3 and not self.storage.renew_lease(
                enrollment.id, self.worker, now + elapsed + self.lease
            ):
                continue  # the batch ran long and another worker took this one over
            self._run_alone(enrollment, now, report)
        self._deliver(now, report)
        return report.freeze(now)

    def _ran_long(self, claimed_at: float) -> bool:
        """Whether the claims taken at ``claimed_at`` (``time.monotonic()``) are due a renewal
        of their leases before their next step runs."""
        return timedelta(seconds=time.monotonic() - claimed_at) > self.lease / 3

    def _run_alone(self, enrollment: Enrollment, now: datetime, report: _Tally) -> None:
        """Run one claimed enrolment in a transaction of its own."""
        try:
            with self.storage.transaction():
                self._run_enrollment(enrollment, now, report)
        except Exception as error:  # a hook or a template failed: retry later, go on
            self._step_failed(enrollment, error, now, report)

    def _step_failed(
        self, enrollment: Enrollment, error: Exception, now: datetime, report: _Tally
    ) -> None:
        """Log a failed step and put its enrolment back, to be tried again later."""
        log.exception("step %s of %s failed", enrollment.step, enrollment.id, exc_info=error)
        report.failures.append((enrollment.id, f"{type(error).__name__}: {error}"))
        retry = min(timedelta(minutes=2**enrollment.attempt), timedelta(days=1))
        self.storage.put_enrollment(
            attrs.evolve(enrollment, attempt=enrollment.attempt + 1, due_at=now + retry)
        )

    def _run_batch(
        self, chunk: list[Enrollment], now: datetime, report: _Tally, claimed_at: float
    ) -> int:
        """Run claimed enrolments in one transaction, reading the leads and states they need
        at once. A step that fails undoes only its own writes, and its enrolment is put back
        for a retry: the sends and advances of plain steps (sends, waits, branches, hooks,
        ends) are kept back and written together (:meth:`Storage.write_steps`), so a failed
        run's are simply dropped; a run that reaches a step writing more (a score adjustment,
        a stage, a hand-off) goes on in a savepoint of its own. Stops early, before a step,
        when asked to stop or when the leases are due a renewal; returns how many it started.

        If the transaction fails as a whole (the connection, the commit), the steps it
        started run again, each in a transaction of its own: a step runs at least once, and
        no mail of them was handed over yet.
        """
        storage = self.storage
        steps, failures = report.steps, len(report.failures)
        started = 0
        try:
            with storage.transaction():
                batch = self._prefetch(chunk)
                pending = _Pending()
                seen: set[str] = set()
                for enrollment in chunk:
                    if started and (self._stop.is_set() or self._ran_long(claimed_at)):
                        break
                    started += 1
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
            for enrollment in chunk[:started]:
                self._run_alone(enrollment, now, report)
        return started

    def _prefetch(self, chunk: list[Enrollment]) -> _Batch | None:
        """The leads and states of ``chunk``'s enrolments, read at once (``None`` when the
        store cannot read a batch)."""
        storage = self.storage
        get_leads = getattr(storage, "get_leads", None)
        get_states = getattr(storage, "get_states", None)
        if get_leads is None or get_states is None:
            return None
        ids = list(dict.fromkeys(e.lead_id for e in chunk))
        return _Batch(leads=get_leads(ids), states=get_states(ids), fresh=set(ids))

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
    ) -> None:
        """The worker loop: :meth:`run_due` again and again, sleeping ``idle_sleep`` seconds
        when nothing was due, until :meth:`stop` is called or, with ``handle_signals``, the
        process gets SIGTERM or SIGINT. It then finishes the step it is running, hands the
        claims it has not started back to the storage and returns (a CLI exits 0).

        Run as many workers as you like against one PostgreSQL database: claims are exclusive
        and a dead worker's claims are taken over when their lease runs out.
        """
        previous: dict[int, Any] = {}
        if handle_signals and threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                previous[signum] = signal.signal(signum, lambda *_: self.stop())
        try:
            while not self._stop.is_set():
                report = self.run_due(limit=limit)
                if report.claimed == 0 and report.sent == 0:
                    self._stop.wait(idle_sleep)
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
            log.info("worker %s stopped", self.worker)

    def _escalate(self, now: datetime, report: _Tally) -> None:
        """Escalate every hand-off whose first-contact deadline passed with no contact: once
        per breach, as an ``sla_breached`` activity and a notice to the sink."""
        if self.program.handoff is None:
            return
        for handoff in self.storage.due_breaches(now, 500):
            with self.storage.transaction():
                result = self._record(
                    Activity(
                        lead_id=handoff.lead_id,
                        kind=SLA_BREACHED,
                        at=now,
                        properties={"ref": handoff.id, "owner": handoff.owner},
                        key=f"sla_breach/{handoff.id}",
                    ),
                    now,
                )
                if result.stored:  # another worker may have escalated it a moment ago
                    self.storage.put_handoff(attrs.evolve(handoff, escalated_at=now))
                    report.escalated += 1

    def _notify(self, now: datetime) -> None:
        """Give the sink every notice it is owed; a failing sink leaves them for next time."""
        if self.sink is None:
            return
        for handoff in self.storage.awaiting_notice(200):
            kind = handoff.awaiting_notice
            assert kind is not None
            try:
                self.sink.notify(HandoffEvent(kind=kind, handoff=handoff, at=now))
            except Exception as error:
                log.warning("hand-off sink failed for %s (%s): %s", handoff.id, kind, error)
                self.storage.put_handoff(
                    attrs.evolve(handoff, notify_attempts=handoff.notify_attempts + 1)
                )
                return
            if kind == "handoff":
                told = attrs.evolve(handoff, notified_at=now)
            else:
                told = attrs.evolve(handoff, escalation_notified_at=now)
            self.storage.put_handoff(told)

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
                held = self._hold_send(lead, state, now, out)
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
        self, lead: Lead, state: LeadState, now: datetime, out: _StepWrites | None = None
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

    def _view(self, lead: Lead, state: LeadState, now: datetime) -> View:
        stages = self._stages(state)
        return View(
            lead=lead,
            now=now,
            activities=self.storage.activities(lead.id),
            activities_sorted=True,
            score=self.program.scoring.score(state.card, now),
            stage=None if stages is None else stages.current,
            stage_entered_at=None if stages is None else stages.entered_at,
        )

    def _deliver(self, now: datetime, report: _Tally) -> None:
        """Claim the outbox's sends, hand them to the mailer, and record what it did."""
        storage = self.storage
        retry_before = now - self.retry_deferred
        while True:
            claimed = storage.claim_mail(
                now, _SENDS_PER_CLAIM, self.worker, self.lease, retry_before
            )
            fresh = [m for m in claimed if m.key not in report.tried]
            if not fresh:
                return
            # Suppression is checked again right before the hand-over: an unsubscribe that
            # arrived after the send was written still stops it.
            leads = self._leads({m.lead_id for m in fresh if m.marketing})
            allowed: list[OutgoingMail] = []
            suppressed: list[OutgoingMail] = []
            for mail in fresh:
                report.tried.add(mail.key)
                if mail.marketing:
                    lead = leads.get(mail.lead_id)
                    if lead is None or not lead.contactability.can_receive_marketing:
                        suppressed.append(mail)
                        continue
                allowed.append(mail)
            if suppressed:
                with storage.transaction():
                    for mail in suppressed:
                        storage.mark_sent(
                            mail.key, SendStatus.SUPPRESSED, "unsubscribed before hand-over", now
                        )
            if allowed:
                try:
                    results = self.mailer.send(allowed)
                except MailerUnavailable as down:
                    log.warning(
                        "mailer unavailable, %d sends stay in the outbox: %s", len(allowed), down
                    )
                    return
                # Each result is recorded (and committed) before the next mail is handed over,
                # so a worker killed mid-batch repeats at most the mail in flight, with its key.
                for mail, result in zip(allowed, results, strict=True):
                    storage.mark_sent(mail.key, result.status, result.detail, now)
                    if result.status is SendStatus.SENT:
                        report.sent += 1
                    elif result.status is SendStatus.DEFERRED:
                        report.deferred += 1
                    else:
                        report.bounced += 1
                        self.record_bounce(mail, result.detail, now)
            if len(claimed) < _SENDS_PER_CLAIM:
                return  # that was all there was; sends written since wait for the next run

    def _leads(self, lead_ids: set[str]) -> dict[str, Lead]:
        """The stored leads among ``lead_ids``, in one read when the store can."""
        if not lead_ids:
            return {}
        get_leads = getattr(self.storage, "get_leads", None)
        if get_leads is not None:
            found: dict[str, Lead] = get_leads(lead_ids)
            return found
        leads = {lead_id: self.storage.get_lead(lead_id) for lead_id in lead_ids}
        return {lead_id: lead for lead_id, lead in leads.items() if lead is not None}

    def record_bounce(self, mail: OutgoingMail, detail: str, at: datetime) -> None:
        """Record a hard bounce of ``mail`` as a ``bounced`` activity of its lead."""
        if self.storage.get_lead(mail.lead_id) is None:
            return
        with self.storage.transaction():
            self._record(
                Activity(
                    lead_id=mail.lead_id,
                    kind=BOUNCED,
                    at=at,
                    properties={"ref": mail.key, "detail": detail[:500]},
                    key=f"bounce/{mail.key}",
                ),
                at,
            )


#: Sends claimed from the outbox at a time.
_SENDS_PER_CLAIM = 200

#: Claimed enrolments run in one transaction (see :meth:`Engine._run_batch`). At most 64 keep
#: PostgreSQL's per-transaction cache of subtransactions from overflowing when every run of
#: a batch needs a savepoint.
_STEPS_PER_TRANSACTION = 50


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

    def write(self, storage: Storage) -> None:
        if not (self.mails or self.enrollments):
            return
        mails, enrollments = self.mails, self.enrollments
        self.mails, self.enrollments = [], []
        write_steps = getattr(storage, "write_steps", None)
        if write_steps is not None:
            write_steps(mails, enrollments)
            return
        for mail in mails:
            storage.add_to_outbox(mail)
        for enrollment in enrollments:
            storage.put_enrollment(enrollment)


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


@attrs.define
class _Tally:
    claimed: int = 0
    steps: int = 0
    sent: int = 0
    bounced: int = 0
    deferred: int = 0
    escalated: int = 0
    failures: list[tuple[str, str]] = attrs.Factory(list)
    tried: set[str] = attrs.Factory(set)

    def freeze(self, now: datetime) -> RunReport:
        return RunReport(
            now=now,
            claimed=self.claimed,
            steps=self.steps,
            sent=self.sent,
            bounced=self.bounced,
            deferred=self.deferred,
            escalated=self.escalated,
            failures=tuple(self.failures),
        )


def _go(
    enrollment: Enrollment,
    step: str | None,
    due: datetime,
    status: EnrollmentStatus = EnrollmentStatus.ACTIVE,
) -> Enrollment:
    return _changed(enrollment, status, step, due, enrollment.ended_at, enrollment.reason, 1)


def _end(
    enrollment: Enrollment, status: EnrollmentStatus, now: datetime, reason: str
) -> Enrollment:
    return _changed(enrollment, status, None, None, now, reason, enrollment.attempt)


def _changed(
    e: Enrollment,
    status: EnrollmentStatus,
    step: str | None,
    due_at: datetime | None,
    ended_at: datetime | None,
    reason: str,
    attempt: int,
) -> Enrollment:
    """``e`` with these fields changed, built from checked parts: ``e``'s own, an
    :class:`EnrollmentStatus`, and times put in aware UTC here (``attrs.evolve`` would read the
    fields anew and run every converter on every call)."""
    return _make_enrollment(
        e.id,
        e.scenario,
        e.lead_id,
        e.number,
        status,
        step,
        None if due_at is None else aware_utc(due_at, "Enrollment.due_at"),
        e.entered_at,
        None if ended_at is None else aware_utc(ended_at, "Enrollment.ended_at"),
        reason,
        attempt,
    )
