"""What the engine reports: :class:`RecordResult` (one recorded activity), :class:`RunReport`
(one :meth:`~nurturekit.engine.Engine.run_due`) and the tally it is counted in (:class:`_Tally`),
and the time of a run (:class:`_Run`)."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import attrs

from nurturekit._fast import maker
from nurturekit._repr import counted, moment, quoted, summary, yes_no
from nurturekit.activity import Activity
from nurturekit.handoff import Handoff
from nurturekit.scenario import Enrollment
from nurturekit.scoring import Score
from nurturekit.stages import StageMove


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

    def __repr__(self) -> str:
        """The activity (lead, kind, time), whether it was stored, the score after it, whether
        it caused a hand-off, and how many moves, enrolments and endings followed."""
        activity = self.activity
        return summary(
            "RecordResult",
            [
                ("lead", quoted(activity.lead_id)),
                ("kind", quoted(activity.kind)),
                ("at", moment(activity.at)),
                ("stored", self.stored),
                ("score", None if self.score is None else self.score.total),
                ("handoff", yes_no(self.handoff)),
            ],
            [
                counted(len(self.moves), "move"),
                f"{len(self.enrolled)} enrolled",
                f"{len(self.ended)} ended",
            ],
        )


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

    def __repr__(self) -> str:
        """The run's time and what it claimed, ran and sent; the other counts when not zero.

        >>> from datetime import datetime, timezone
        >>> RunReport(now=datetime(2026, 4, 6, 1, 0, tzinfo=timezone.utc), claimed=3, steps=5,
        ...           sent=2, deferred=1)
        <RunReport now=2026-04-06T01:00Z claimed=3 steps=5 sent=2 deferred=1>
        """
        fields: list[tuple[str, object]] = [
            ("now", moment(self.now)),
            ("claimed", self.claimed),
            ("steps", self.steps),
            ("sent", self.sent),
        ]
        for name in ("bounced", "deferred", "rejected", "suppressed", "escalated"):
            number = getattr(self, name)
            if number:
                fields.append((name, number))
        counts = []
        if self.failures:
            counts.append(counted(len(self.failures), "failure"))
        if self.failed:
            counts.append(f"{len(self.failed)} failed")
        if self.abandoned:
            counts.append(f"{len(self.abandoned)} abandoned")
        return summary("RunReport", fields, counts)


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
