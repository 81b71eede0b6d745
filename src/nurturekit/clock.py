"""Clocks for the engine: the system clock, and a manual one for tests and simulations.

Both satisfy :class:`nurturekit.ports.Clock`. The domain never reads a clock; the engine does.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import attrs
from dateutil.relativedelta import relativedelta

from nurturekit.errors import ClockError

__all__ = ["ManualClock", "SystemClock"]


@attrs.frozen
class SystemClock:
    """The wall clock, in UTC.

    >>> SystemClock().now().tzinfo
    datetime.timezone.utc
    """

    def now(self) -> datetime:
        """Return the current time, timezone-aware UTC."""
        return datetime.now(timezone.utc)


def _clock_time(value: datetime) -> datetime:
    if not isinstance(value, datetime):
        raise ClockError(
            "ManualClock",
            f"expected a timezone-aware datetime, got {type(value).__name__} {value!r}",
        )
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise ClockError(
            "ManualClock",
            f"{value.isoformat()} has no time zone; a clock must say whose time it is: pass "
            f"datetime(2026, 4, 1, 9, 0, tzinfo=timezone.utc) or one with ZoneInfo('Asia/Tokyo')",
        )
    return value.astimezone(timezone.utc)


@attrs.define
class ManualClock:
    """A clock that moves only when told to: for tests, dry runs and simulations.

    It only goes forward; a simulation that goes back in time is a bug, so :meth:`set` and
    :meth:`advance` refuse it with :class:`~nurturekit.errors.ClockError`.

    >>> from datetime import datetime, timedelta, timezone
    >>> from dateutil.relativedelta import relativedelta
    >>> clock = ManualClock(datetime(2026, 1, 31, 9, 0, tzinfo=timezone.utc))
    >>> clock.advance(timedelta(days=3)).isoformat()
    '2026-02-03T09:00:00+00:00'
    >>> clock.set(datetime(2026, 1, 31, 9, 0, tzinfo=timezone.utc))
    Traceback (most recent call last):
    ...
    nurturekit.errors.ClockError: ManualClock.set: cannot move the clock back ...
    >>> ManualClock(datetime(2026, 1, 31, tzinfo=timezone.utc)).advance(relativedelta(months=1))
    datetime.datetime(2026, 2, 28, 0, 0, tzinfo=datetime.timezone.utc)
    """

    _now: datetime = attrs.field(alias="start", converter=_clock_time)

    def now(self) -> datetime:
        """Return the clock's current time, timezone-aware UTC."""
        return self._now

    def set(self, when: datetime) -> datetime:
        """Move the clock to ``when`` (same time or later) and return it in UTC."""
        try:
            target = _clock_time(when)
        except ClockError as error:
            raise ClockError("ManualClock.set", error.message) from None
        if target < self._now:
            raise ClockError(
                "ManualClock.set",
                f"cannot move the clock back from {self._now.isoformat()} to "
                f"{target.isoformat()}; a simulation that goes back in time is a bug. "
                f"Make a new ManualClock to start over",
            )
        self._now = target
        return target

    def advance(self, delta: timedelta | relativedelta) -> datetime:
        """Move the clock forward by ``delta`` and return the new time.

        ``delta`` is a :class:`~datetime.timedelta` or a dateutil
        :class:`~dateutil.relativedelta.relativedelta` for calendar steps: one month from
        January 31 is February 28 (29 in a leap year).
        """
        if not isinstance(delta, timedelta | relativedelta):
            raise ClockError(
                "ManualClock.advance",
                f"expected a timedelta or a relativedelta, got {type(delta).__name__} {delta!r}",
            )
        target = self._now + delta
        if target < self._now:
            raise ClockError(
                "ManualClock.advance",
                f"cannot advance by {delta!r}: it would move the clock back from "
                f"{self._now.isoformat()} to {target.isoformat()}; a clock only goes forward",
            )
        self._now = target
        return target
