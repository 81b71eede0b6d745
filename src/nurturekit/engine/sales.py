"""Sales: their feedback on a hand-off, SLA escalations and the notices owed to the sink."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

import attrs

from nurturekit._time import aware_utc
from nurturekit.activity import SCORE_ADJUSTED, SLA_BREACHED, Activity
from nurturekit.engine.base import _Base
from nurturekit.engine.report import _Run, _Tally
from nurturekit.engine.steps import _RUNNING
from nurturekit.errors import NoOpenHandoff, UnknownLead
from nurturekit.handoff import (
    LIFECYCLE_STAGES,
    Handoff,
    HandoffEvent,
    HandoffPolicy,
    HandoffStatus,
    Outcome,
    outcome_of,
)
from nurturekit.ports import LeadState
from nurturekit.scenario import Enrollment

log = logging.getLogger("nurturekit.engine")

#: Hand-off notices given to the sink per run, at most.
_NOTICES_PER_RUN = 200


class _Sales(_Base):
    """Sales feedback, escalations and notices."""

    # ------------------------------------------------------------------ hand-off to sales

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
        outcome = outcome_of(outcome, "feedback(outcome)")
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
        """With a stage machine, sales' word moves the stage to the policy's
        :attr:`~nurturekit.handoff.HandoffPolicy.stage_on_outcome` (by default accepted →
        ``sql``, not now → ``recycled``, not a fit → ``disqualified``) — when the machine has
        that stage and allows the move from where the lead is."""
        policy = self.program.handoff
        stages_of = LIFECYCLE_STAGES if policy is None else policy.stage_on_outcome
        target = stages_of.get(outcome)
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


def _tried_notice(handoff: Handoff) -> Handoff:
    return attrs.evolve(handoff, notify_attempts=handoff.notify_attempts + 1)


def _told(kind: str, at: datetime) -> Callable[[Handoff], Handoff]:
    """The change that records a notice of ``kind`` given to the sink at ``at``."""
    if kind == "handoff":
        return lambda handoff: attrs.evolve(handoff, notified_at=at)
    return lambda handoff: attrs.evolve(handoff, escalation_notified_at=at)
