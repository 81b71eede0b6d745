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
import uuid
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
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
from nurturekit.errors import (
    ClockError,
    InvalidInput,
    MailerUnavailable,
    NoOpenHandoff,
    StorageError,
    TransitionNotAllowed,
    UnknownLead,
)
from nurturekit.handoff import (
    Handoff,
    HandoffEvent,
    HandoffPolicy,
    HandoffStatus,
    MqlDefinition,
    Outcome,
)
from nurturekit.lead import Contactability, ContactStatus, Lead
from nurturekit.messages import OutgoingMail, SendResult, SendStatus
from nurturekit.ports import Clock, HandoffSink, LeadState, Mailer, SendCheck, Storage
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
    #: Enrolments whose step failed (a hook raised …), with the error; they are retried later,
    #: up to ``Engine(max_attempts=...)`` tries of the step in all.
    failures: tuple[tuple[str, str], ...] = ()
    #: Sends refused for good for what they are (``SendStatus.REJECTED``): never retried.
    rejected: int = 0
    #: Sends not handed over because their lead may no longer get marketing mail (read
    #: right before the hand-over): unsubscribed, bounced, complained, with sales, disqualified.
    suppressed: int = 0
    #: Sends given up after their last attempt (``SendStatus.FAILED``), with their last error.
    failed: tuple[tuple[str, str], ...] = ()
    #: Enrolments given up after their step failed on its last attempt
    #: (``EnrollmentStatus.FAILED``), with the last error.
    abandoned: tuple[tuple[str, str], ...] = ()


class Engine:
    """Runs a program over a storage, a mailer and a clock.

    >>> from nurturekit.storage.memory import InMemoryStorage
    >>> from nurturekit.mail import OutboxMailer

    ``links`` builds the signed unsubscribe links that every marketing mail carries; the host
    app serves them (see :mod:`nurturekit.tokens`). ``sink`` hears of hand-offs to sales and
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
            self._notify(_Run(now))
        return result

    def record_many(self, activities: Iterable[Activity]) -> list[RecordResult]:
        """Record several activities in one transaction (all of them or none), in the order
        given."""
        now = aware_utc(self.clock.now(), "clock.now()")
        with self.storage.transaction():
            results = [self._record(activity, now) for activity in activities]
        if any(r.handoff is not None for r in results):
            self._notify(_Run(now))
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
        try:
            outcome = Outcome(outcome)
        except ValueError:
            allowed = ", ".join(repr(o.value) for o in Outcome)
            raise InvalidInput(
                "feedback(outcome)",
                f"{outcome!r} is not an outcome sales can report; use one of {allowed}",
            ) from None
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
        savepoint of its own. Stops early, before a step, when asked to stop.

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
                    if started and self._stop.is_set():
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
                    self._change_handoff(handoff, lambda h: attrs.evolve(h, escalated_at=now))
                    report.escalated += 1

    def _notify(self, run: _Run) -> None:
        """Give the sink the notices it is owed, each claimed first, so that one worker posts
        it; a failing sink leaves the notice owed, to be tried again once its claim runs out.

        A notice is claimed alone, right before it is posted, for the engine's lease: a sink
        that takes longer than that over one notice may see it once more, from another worker,
        with the same event id."""
        if self.sink is None:
            return
        now = run.now
        for _ in range(_NOTICES_PER_RUN):
            claimed = self.storage.claim_notices(now, 1, self._claim(), run.lease(self.lease))
            if not claimed:
                return
            (handoff,) = claimed
            kind = handoff.awaiting_notice
            assert kind is not None
            try:
                self.sink.notify(HandoffEvent(kind=kind, handoff=handoff, at=now))
            except Exception as error:
                log.warning("hand-off sink failed for %s (%s): %s", handoff.id, kind, error)
                self._change_handoff(handoff, _tried_notice)
                return
            self._change_handoff(handoff, _told(kind, now))

    def _change_handoff(self, handoff: Handoff, change: Callable[[Handoff], Handoff]) -> None:
        """Put ``change`` of the hand-off as stored now (it may have changed since ``handoff``
        was read: sales feedback, an escalation), in a transaction."""
        with self.storage.transaction():
            stored = next(
                (h for h in self.storage.handoffs_of(handoff.lead_id) if h.id == handoff.id),
                handoff,
            )
            self.storage.put_handoff(change(stored))

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

    def _deliver(self, run: _Run, report: _Tally) -> None:
        """Claim the outbox's sends, hand them to the mailer, and record what it did."""
        storage = self.storage
        while True:
            claim = self._claim()
            claimed = storage.claim_mail(run.now, _SENDS_PER_CLAIM, claim, run.lease(self.lease))
            fresh = [m for m in claimed if m.key not in report.tried]
            if len(fresh) < len(claimed):
                # Tried in this run already (deferred with no wait, say): give them back.
                tried = [m.key for m in claimed if m.key in report.tried]
                storage.hold_mail(tried, claim, run.now)
            if not fresh:
                return
            report.tried.update(m.key for m in fresh)
            if not self._hand_over(fresh, claim, run, report):
                return  # the mailer cannot be reached: the rest stay in the outbox
            if len(claimed) < _SENDS_PER_CLAIM:
                return  # that was all there was; sends written since wait for the next run

    def _hand_over(self, mails: list[OutgoingMail], claim: str, run: _Run, report: _Tally) -> bool:
        """Hand claimed sends to the mailer, each one fenced and its lead's suppression read
        fresh right before it goes; False when the mailer could not be reached.

        A mailer that answers with a list hands its batch over in one step: the whole batch
        is checked once, right before. One that yields results one by one (SMTP) is checked
        again before each next mail: if that mail may no longer go (its lead unsubscribed,
        or its claim was lost), the iterator is closed and the mailer is called again with
        the mails that still may.
        """
        storage = self.storage
        fence = _Fence(storage, claim, run, self.lease)
        queue = mails
        one_by_one = False
        while queue:
            if one_by_one:
                batch, queue = queue[:1], queue[1:]
            else:
                batch, queue = queue, []
            checks = fence.check(batch)
            group: list[tuple[OutgoingMail, SendCheck]] = []
            for mail in batch:
                check = checks.get(mail.key)
                if check is None:
                    continue  # another worker holds it now, or it was marked meanwhile
                why = _suppressed(mail, check)
                if why is not None:
                    storage.mark_sent(mail.key, SendStatus.SUPPRESSED, why, run.now)
                    report.suppressed += 1
                    continue
                group.append((mail, check))
            if not group:
                continue
            try:
                left = self._send_group(group, fence, run, report)
            except MailerUnavailable as down:
                log.warning("mailer unavailable, its sends stay in the outbox: %s", down)
                return False
            except _MailerBroke as broke:
                if len(broke.left) > 1:
                    # Which mail broke it is not known: try the rest one at a time, so that
                    # a mail that always breaks the mailer holds up only itself.
                    one_by_one = True
                    queue = [m for m, _ in broke.left] + queue
                    continue
                mail, check = broke.left[0]
                log.error("the mailer failed on %s", mail.key, exc_info=broke.error)
                what = f"the mailer raised {type(broke.error).__name__}: {broke.error}"
                failed = SendResult(key=mail.key, status=SendStatus.DEFERRED, detail=what)
                self._record_result(mail, check, failed, run, report)
                continue
            queue = [m for m, _ in left] + queue
        return True

    def _send_group(
        self,
        group: list[tuple[OutgoingMail, SendCheck]],
        fence: _Fence,
        run: _Run,
        report: _Tally,
    ) -> list[tuple[OutgoingMail, SendCheck]]:
        """Hand ``group`` to the mailer and record each result as it comes; return the mails
        not handed over because the one-by-one check stopped before them."""
        try:
            results = self.mailer.send([mail for mail, _ in group])
        except MailerUnavailable:
            raise
        except Exception as error:
            raise _MailerBroke(group, error) from error
        stepwise = not isinstance(results, (list, tuple))
        iterator = iter(results)
        #: The check of the next mail, read with the record of the last result.
        ahead: dict[str, SendCheck] | None = None
        try:
            for index, (mail, check) in enumerate(group):
                if index and stepwise:
                    # The mailer hands this mail over when asked for its result: check it
                    # (and renew the claims of the rest when due) right before asking.
                    if ahead is None:
                        ahead = fence.check([m for m, _ in group[index:]], only_first=True)
                    fresh = ahead.get(mail.key)
                    ahead = None
                    if fresh is None or _suppressed(mail, fresh) is not None:
                        return group[index:]
                    check = fresh
                try:
                    result = next(iterator)
                except StopIteration:
                    missing = RuntimeError(f"the mailer gave no result for {mail.key}")
                    raise _MailerBroke([(mail, check), *group[index + 1 :]], missing) from None
                except MailerUnavailable:
                    raise
                except Exception as error:
                    raise _MailerBroke([(mail, check), *group[index + 1 :]], error) from error
                following = group[index + 1][0] if stepwise and index + 1 < len(group) else None
                ahead = self._record_result(mail, check, result, run, report, fence, following)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()
        return []

    def _record_result(
        self,
        mail: OutgoingMail,
        check: SendCheck,
        result: SendResult,
        run: _Run,
        report: _Tally,
        fence: _Fence | None = None,
        following: OutgoingMail | None = None,
    ) -> dict[str, SendCheck] | None:
        """Record what became of a send (committed before the next mail is handed over, so a
        worker killed mid-batch repeats at most the mail in flight, with its key).

        With ``following`` (the next mail of a mailer that yields), that mail is checked in
        the same call and its check returned, unless the fence is due a renewal or this mail
        bounced (the bounce is recorded first: the next mail may be to the same lead)."""
        now = run.now
        status = SendStatus(result.status)
        detail = result.detail
        attempts = check.attempts + 1
        retry_at = None
        if status is SendStatus.DEFERRED:
            if attempts >= self.max_attempts:
                status = SendStatus.FAILED
                detail = f"gave up after {attempts} attempts; last: {detail}"[:2000]
            else:
                wait = result.retry_after
                if wait is None:
                    wait = self.retry_deferred * 2 ** min(attempts - 1, 16)
                retry_at = now + wait
        ahead = None
        if (
            fence is not None
            and following is not None
            and status is not SendStatus.BOUNCED
            and not fence.renewal_due()
        ):
            ahead = self.storage.mark_and_hold(
                mail.key, status, detail, now, retry_at, following.key, fence.claim
            )
        else:
            self.storage.mark_sent(mail.key, status, detail, now, retry_at)
        if status is SendStatus.SENT:
            report.sent += 1
        elif status is SendStatus.DEFERRED:
            report.deferred += 1
        elif status is SendStatus.BOUNCED:
            report.bounced += 1
            self.record_bounce(mail, detail, now)
        elif status is SendStatus.REJECTED:
            report.rejected += 1
            log.warning("send %s rejected: %s", mail.key, detail)
        elif status is SendStatus.FAILED:
            report.failed.append((mail.key, detail))
            log.error("send %s failed: %s", mail.key, detail)
        else:
            report.suppressed += 1
        return ahead

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
#: Hand-off notices given to the sink per run, at most.
_NOTICES_PER_RUN = 200
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


class _Run:
    """The time of one run (``now``) and how long it has been going: a lease is counted from
    when its claim is taken, the run's time plus the time the run has taken so far."""

    __slots__ = ("now", "started")

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.started = time.monotonic()

    def lease(self, lease: timedelta) -> timedelta:
        """``lease`` counted from now instead of from the start of the run."""
        return lease + timedelta(seconds=time.monotonic() - self.started)

    def until(self, lease: timedelta) -> datetime:
        """When a lease of ``lease`` taken (or renewed) now ends."""
        return self.now + self.lease(lease)


class _Fence:
    """A claim on a batch of sends, checked right before each hand-over.

    Each check reads, in one call, which of the sends the claim still holds and what may
    suppress their leads' mail; once a third of the lease has gone by since the claim was
    taken or last renewed, the check also renews the leases of the sends it reads.
    """

    def __init__(self, storage: Storage, claim: str, run: _Run, lease: timedelta) -> None:
        self.storage = storage
        self.claim = claim
        self.run = run
        self.lease = lease
        self.renewed = time.monotonic()

    def renewal_due(self) -> bool:
        """Whether a third of the lease has gone by since the claim was taken or renewed."""
        return time.monotonic() - self.renewed > self.lease.total_seconds() / 3

    def check(self, mails: list[OutgoingMail], only_first: bool = False) -> dict[str, SendCheck]:
        """The checks of ``mails`` (of the first one only with ``only_first``, unless the
        leases are due a renewal: then all of them, renewed)."""
        if self.renewal_due():
            until = self.run.until(self.lease)
            found = self.storage.hold_mail([m.key for m in mails], self.claim, until)
            self.renewed = time.monotonic()
            return found
        keys = [mails[0].key] if only_first else [m.key for m in mails]
        return self.storage.hold_mail(keys, self.claim)


def _tried_notice(handoff: Handoff) -> Handoff:
    return attrs.evolve(handoff, notify_attempts=handoff.notify_attempts + 1)


def _told(kind: str, at: datetime) -> Callable[[Handoff], Handoff]:
    """The change that records a notice of ``kind`` given to the sink at ``at``."""
    if kind == "handoff":
        return lambda handoff: attrs.evolve(handoff, notified_at=at)
    return lambda handoff: attrs.evolve(handoff, escalation_notified_at=at)


def _suppressed(mail: OutgoingMail, check: SendCheck) -> str | None:
    """Why ``mail`` may not go now, from its lead as the store holds it, or ``None``."""
    if not mail.marketing:
        return None
    contact = check.contact
    if contact is None:
        return "suppressed: the lead was removed"
    if contact is not ContactStatus.SUBSCRIBED:
        return f"suppressed: {contact.value}"
    if check.with_sales:
        return "suppressed: owned by sales"
    if check.disqualified:
        return "suppressed: disqualified by sales"
    return None


class _MailerBroke(Exception):
    """The mailer raised something other than :class:`MailerUnavailable` while handing over
    ``left`` (the first of them, or one of them, is at fault)."""

    def __init__(self, left: list[tuple[OutgoingMail, SendCheck]], error: BaseException) -> None:
        super().__init__(str(error))
        self.left = left
        self.error = error


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
    rejected: int = 0
    suppressed: int = 0
    failures: list[tuple[str, str]] = attrs.Factory(list)
    failed: list[tuple[str, str]] = attrs.Factory(list)
    abandoned: list[tuple[str, str]] = attrs.Factory(list)
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
            rejected=self.rejected,
            suppressed=self.suppressed,
            failed=tuple(self.failed),
            abandoned=tuple(self.abandoned),
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
