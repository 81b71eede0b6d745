"""Enrolments: one lead in one scenario (:class:`Enrollment`), which step is next and when, and
where it stands (:class:`EnrollmentStatus`)."""

from __future__ import annotations

import enum
from datetime import datetime

import attrs

from nurturekit._fast import maker
from nurturekit._repr import moment, quoted, summary
from nurturekit._time import aware_utc
from nurturekit.scenario.core import Scenario

__all__ = ["Enrollment", "EnrollmentStatus"]


class EnrollmentStatus(str, enum.Enum):
    """Where an enrolment is: running, or ended and how."""

    #: Its next step runs at ``due_at``.
    ACTIVE = "active"
    #: A WaitFor step waits for an activity until ``due_at`` (then the timeout path).
    WAITING = "waiting"
    #: Reached the goal.
    CONVERTED = "converted"
    #: Left by an exit (unsubscribed, handed to sales …) or suppression.
    EXITED = "exited"
    #: Walked to the end of its steps.
    COMPLETED = "completed"
    #: Its step failed on every one of its attempts (``Engine(max_attempts=...)``): given up,
    #: with the last error in ``reason``.
    FAILED = "failed"

    @property
    def ended(self) -> bool:
        return self in (
            EnrollmentStatus.CONVERTED,
            EnrollmentStatus.EXITED,
            EnrollmentStatus.COMPLETED,
            EnrollmentStatus.FAILED,
        )


def _utc(value: datetime) -> datetime:
    return aware_utc(value, "Enrollment")


def _optional_utc(value: datetime | None) -> datetime | None:
    return None if value is None else aware_utc(value, "Enrollment")


def _id_part(text: str) -> str:
    # Scenario "a/b" with lead "c" and scenario "a" with lead "b/c" would both give "a/b/c/1";
    # the send idempotency key is built on this id, so a clash would drop a mail.
    return text.replace("%", "%25").replace("/", "%2F")


@attrs.frozen(kw_only=True)
class Enrollment:
    """One lead in one scenario: which step is next and when.

    ``id`` is ``"{scenario}/{lead_id}/{n}"`` for the lead's ``n``-th entry into the scenario, so
    the same entry always has the same id (a ``%`` or ``/`` inside the scenario name or the lead
    id is written ``%25`` or ``%2F``, so that two different entries never share an id).
    ``attempt`` counts how many times the current step was started (a worker that died mid-step
    makes it 2); a send's idempotency key is ``"{id}/{step}/{attempt}"``. Enrolments are values:
    the engine stores a new one at each move.
    """

    id: str
    scenario: str
    lead_id: str
    number: int
    status: EnrollmentStatus = attrs.field(converter=EnrollmentStatus)
    step: str | None
    due_at: datetime | None = attrs.field(converter=_optional_utc)
    entered_at: datetime = attrs.field(converter=_utc)
    ended_at: datetime | None = attrs.field(default=None, converter=_optional_utc)
    reason: str = ""
    attempt: int = 1

    def __repr__(self) -> str:
        """The id (scenario, lead, entry number), where it stands, its step and when that is
        due; an ended enrolment's end time and reason."""
        fields: list[tuple[str, object]] = [
            ("id", quoted(self.id, 80)),
            ("status", self.status.value),
            ("step", quoted(self.step)),
            ("due_at", moment(self.due_at)),
            ("attempt", self.attempt),
        ]
        if self.ended_at is not None:
            fields.append(("ended_at", moment(self.ended_at)))
        if self.reason:
            fields.append(("reason", quoted(self.reason)))
        return summary("Enrollment", fields)

    @classmethod
    def start(cls, scenario: Scenario, lead_id: str, number: int, now: datetime) -> Enrollment:
        """A new enrolment at the scenario's first step, due at once."""
        at = aware_utc(now, "Enrollment")
        name = scenario.name
        return _make_enrollment(
            f"{_id_part(name)}/{_id_part(lead_id)}/{number}",
            name,
            lead_id,
            number,
            EnrollmentStatus.ACTIVE,
            scenario.start,
            at,
            at,
            None,
            "",
            1,
        )

    def moved_to(
        self,
        step: str | None,
        due: datetime,
        status: EnrollmentStatus = EnrollmentStatus.ACTIVE,
    ) -> Enrollment:
        """This enrolment at ``step``, due at ``due``, in its first attempt there, with
        ``status``; the rest as it is. What the engine makes at every step it runs.

            >>> from datetime import datetime, timedelta, timezone
            >>> from nurturekit.conditions import activity
            >>> from nurturekit.scenario import OnActivity, Scenario, SendMail, Wait
            >>> welcome = Scenario(
            ...     name="welcome",
            ...     trigger=OnActivity(when=activity("signup")),
            ...     steps=[
            ...         Wait(id="wait", duration=timedelta(days=1), next="hello"),
            ...         SendMail(id="hello", template="welcome"),
            ...     ],
            ... )
            >>> now = datetime(2026, 4, 1, tzinfo=timezone.utc)
            >>> started = Enrollment.start(welcome, "l1", 1, now)
            >>> e = started.moved_to("hello", now + timedelta(days=1))
            >>> (e.step, e.due_at.isoformat(), e.status.value, e.attempt)
            ('hello', '2026-04-02T00:00:00+00:00', 'active', 1)
        """
        return _changed(self, status, step, due, self.ended_at, self.reason, 1)

    def ended(self, status: EnrollmentStatus, now: datetime, reason: str) -> Enrollment:
        """This enrolment ended at ``now`` with ``status`` (completed, converted, exited,
        failed) for ``reason``: no step left, nothing due."""
        return _changed(self, status, None, None, now, reason, self.attempt)

    def send_key(self) -> str:
        """The idempotency key of a send at the current step and attempt."""
        return f"{self.id}/{self.step}/{self.attempt}"


#: Builds an :class:`Enrollment` from all its fields in order, already checked (an
#: :class:`EnrollmentStatus`, aware UTC times): the engine makes one at every move.
_make_enrollment = maker(Enrollment)


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
