"""The steps of a scenario — send a mail, wait, wait for an activity (with a timeout path),
branch on a condition, adjust the score, set the stage, hand off to sales, call a hook, end — and
the field checks they share with the scenario's frame."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime, time, timedelta, tzinfo
from typing import Any

import attrs
from dateutil.relativedelta import relativedelta
from dateutil.tz import resolve_imaginary

from nurturekit._time import UTC, aware_utc, describe_duration
from nurturekit.conditions import Condition
from nurturekit.errors import InvalidScenario

__all__ = [
    "AdjustScore",
    "Branch",
    "CallHook",
    "End",
    "HandOff",
    "NextWeekdayAt",
    "SendMail",
    "SetStage",
    "Step",
    "Wait",
    "WaitFor",
]

_ID = re.compile(r"[a-z0-9][a-z0-9_\-]{0,63}")


def _step_id(value: str) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidScenario(
            "step.id",
            f"{value!r} is not a step id; write lower-case letters, digits, '_' or '-', "
            "at most 64 characters, like 'thanks' or 'wait-3d'",
        )
    return value


def _target(value: str | None) -> str | None:
    return None if value is None else _step_id(value)


def _text(value: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidScenario("step", f"expected a non-empty text, got {value!r}")
    return value


def _condition(where: str) -> Callable[[object, attrs.Attribute[Any], object], None]:
    def check(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
        if not isinstance(value, Condition):
            raise InvalidScenario(
                f"{where}.{attribute.name}",
                f"expected a condition such as activity('download') or "
                f"attr('employees').at_least(100), got {type(value).__name__} {value!r}",
            )

    return check


# --------------------------------------------------------------------------- steps


@attrs.frozen(kw_only=True)
class SendMail:
    """Send the program's template ``template``; then go on to ``next`` (None: the end)."""

    id: str = attrs.field(converter=_step_id)
    template: str
    next: str | None = attrs.field(default=None, converter=_target)

    def targets(self) -> tuple[str | None, ...]:
        return (self.next,)


def _time_of_day(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, time):
        raise InvalidScenario(
            "NextWeekdayAt.at", f"expected a datetime.time such as time(9, 0), got {value!r}"
        )


def _weekdays(value: Iterable[int]) -> tuple[int, ...]:
    days = tuple(value) if isinstance(value, Iterable) else (value,)
    if not days or any(isinstance(d, bool) or d not in range(7) for d in days):
        raise InvalidScenario(
            "NextWeekdayAt.weekdays", f"expected days 0 (Monday) to 6, got {value!r}"
        )
    return tuple(sorted(set(days)))


@attrs.frozen(kw_only=True)
class NextWeekdayAt:
    """A calendar wait: until the next ``weekdays`` (0 = Monday) at ``at`` in the lead's zone.

    ``NextWeekdayAt(at=time(9, 0))`` is "until the next weekday at 09:00 in the lead's time
    zone"; leads without a time zone use ``default_zone`` (UTC unless given).
    """

    at: time = attrs.field(validator=_time_of_day)
    weekdays: tuple[int, ...] = attrs.field(default=(0, 1, 2, 3, 4), converter=_weekdays)

    def after(self, now: datetime, zone: tzinfo) -> datetime:
        """The first such moment strictly after ``now``, in UTC."""
        now = aware_utc(now, "NextWeekdayAt.after(now)")
        local = now.astimezone(zone)
        for days in range(8):
            day = (local + timedelta(days=days)).date()
            if day.weekday() not in self.weekdays:
                continue
            candidate = _local_to_utc(datetime.combine(day, self.at), zone)
            if candidate > now:
                return candidate
        raise AssertionError("unreachable: a week always holds one of the weekdays")

    def describe(self) -> str:
        days = "weekday" if self.weekdays == (0, 1, 2, 3, 4) else "allowed day"
        return f"until the next {days} at {self.at:%H:%M} in the lead's time zone"


def _local_to_utc(wall: datetime, zone: tzinfo) -> datetime:
    """A wall-clock time in ``zone`` as UTC.

    A time skipped by a spring-forward gap moves forward by the size of the gap (02:30 on the
    New York spring-forward day is 03:30 EDT; Lord Howe Island's gap is 30 minutes, not an
    hour); a time that happens twice in the autumn is its first occurrence.
    """
    aware = resolve_imaginary(wall.replace(tzinfo=zone, fold=0))
    return aware.astimezone(UTC)


def _duration(value: timedelta | relativedelta | None) -> timedelta | relativedelta | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        if value <= timedelta(0):
            raise InvalidScenario("Wait.duration", f"a wait must be positive, got {value}")
        return value
    if isinstance(value, relativedelta):
        probe = datetime(2026, 1, 31, tzinfo=UTC)
        if probe + value <= probe:
            raise InvalidScenario("Wait.duration", f"a wait must be positive, got {value}")
        return value
    raise InvalidScenario(
        "Wait.duration",
        f"expected a timedelta or a dateutil relativedelta, got {type(value).__name__} {value!r}",
    )


@attrs.frozen(kw_only=True)
class Wait:
    """Wait a duration (``timedelta``; or ``relativedelta(months=1)`` for calendar periods, kept
    on the lead's wall clock) or until a calendar moment (:class:`NextWeekdayAt`)."""

    id: str = attrs.field(converter=_step_id)
    duration: timedelta | relativedelta | None = attrs.field(default=None, converter=_duration)
    until: NextWeekdayAt | None = None
    next: str | None = attrs.field(default=None, converter=_target)

    def __attrs_post_init__(self) -> None:
        if (self.duration is None) == (self.until is None):
            raise InvalidScenario(
                f"step {self.id!r}", "a wait needs exactly one of 'duration' or 'until'"
            )

    def targets(self) -> tuple[str | None, ...]:
        return (self.next,)

    def due(self, now: datetime, zone: tzinfo) -> datetime:
        """When the wait ends (in UTC), for a lead whose time zone is ``zone``.

        A ``timedelta`` is elapsed time (a day is 24 hours, across DST too); a
        ``relativedelta`` is added on the lead's wall clock (a month from Jan 31 is Feb 28, a
        day from 09:00 is 09:00 the next day even across a DST change).
        """
        now = aware_utc(now, "Wait.due(now)")
        if self.until is not None:
            return self.until.after(now, zone)
        if isinstance(self.duration, relativedelta):
            wall = now.astimezone(zone).replace(tzinfo=None) + self.duration
            return _local_to_utc(wall, zone)
        assert self.duration is not None
        # In UTC: adding a timedelta to a datetime in a DST zone adds wall-clock time, which
        # makes the day of a spring-forward 23 hours long.
        return now + self.duration

    def describe(self) -> str:
        if self.until is not None:
            return f"wait {self.until.describe()}"
        if isinstance(self.duration, timedelta):
            return f"wait {describe_duration(self.duration)}"
        assert self.duration is not None
        return f"wait {_describe_relativedelta(self.duration)}"


def _describe_relativedelta(value: relativedelta) -> str:
    """``relativedelta(months=1)`` → ``'1 month'``; one with absolute fields as its repr."""
    absolute = (value.year, value.month, value.day, value.weekday, value.hour, value.minute)
    if any(field is not None for field in absolute) or value.leapdays:
        return repr(value)
    parts = []
    for unit, count in (
        ("year", value.years),
        ("month", value.months),
        ("day", value.days),
        ("hour", value.hours),
        ("minute", value.minutes),
        ("second", value.seconds),
    ):
        if count:
            parts.append(f"{count} {unit}{'s' if abs(count) != 1 else ''}")
    return " ".join(parts) if parts else repr(value)


def _within(value: timedelta) -> timedelta:
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise InvalidScenario("WaitFor.within", f"expected a positive timedelta, got {value!r}")
    return value


@attrs.frozen(kw_only=True)
class WaitFor:
    """Wait for an activity that meets ``condition`` (usually ``activity("email_open")``) for at
    most ``within``: it goes to ``next`` when it comes, to ``timeout`` when time is up."""

    id: str = attrs.field(converter=_step_id)
    condition: Condition = attrs.field(validator=_condition("WaitFor"))
    within: timedelta = attrs.field(converter=_within)
    next: str | None = attrs.field(default=None, converter=_target)
    timeout: str | None = attrs.field(default=None, converter=_target)

    def targets(self) -> tuple[str | None, ...]:
        return (self.next, self.timeout)


@attrs.frozen(kw_only=True)
class Branch:
    """Go to ``yes`` when ``when`` holds for the lead now, else to ``no``."""

    id: str = attrs.field(converter=_step_id)
    when: Condition = attrs.field(validator=_condition("Branch"))
    yes: str | None = attrs.field(default=None, converter=_target)
    no: str | None = attrs.field(default=None, converter=_target)

    def targets(self) -> tuple[str | None, ...]:
        return (self.yes, self.no)


@attrs.frozen(kw_only=True)
class AdjustScore:
    """Add ``points`` (negative allowed) to the lead's engagement, with a ``reason``."""

    id: str = attrs.field(converter=_step_id)
    points: int
    reason: str = attrs.field(converter=_text)
    next: str | None = attrs.field(default=None, converter=_target)

    def targets(self) -> tuple[str | None, ...]:
        return (self.next,)


@attrs.frozen(kw_only=True)
class SetStage:
    """Move the lead to ``stage`` (a move the stage machine allows), with a ``reason``."""

    id: str = attrs.field(converter=_step_id)
    stage: str
    reason: str = attrs.field(converter=_text)
    next: str | None = attrs.field(default=None, converter=_target)

    def targets(self) -> tuple[str | None, ...]:
        return (self.next,)


@attrs.frozen(kw_only=True)
class HandOff:
    """Hand the lead to sales (see the program's hand-off policy)."""

    id: str = attrs.field(converter=_step_id)
    next: str | None = attrs.field(default=None, converter=_target)

    def targets(self) -> tuple[str | None, ...]:
        return (self.next,)


@attrs.frozen(kw_only=True)
class CallHook:
    """Call the program's hook ``hook`` (a function of yours) with the lead and the enrolment."""

    id: str = attrs.field(converter=_step_id)
    hook: str
    next: str | None = attrs.field(default=None, converter=_target)

    def targets(self) -> tuple[str | None, ...]:
        return (self.next,)


@attrs.frozen(kw_only=True)
class End:
    """End the enrolment here (as completed)."""

    id: str = attrs.field(converter=_step_id)

    def targets(self) -> tuple[str | None, ...]:
        return ()


Step = SendMail | Wait | WaitFor | Branch | AdjustScore | SetStage | HandOff | CallHook | End
_STEP_TYPES = (SendMail, Wait, WaitFor, Branch, AdjustScore, SetStage, HandOff, CallHook, End)
_WAITS = (Wait, WaitFor)
