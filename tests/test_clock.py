"""The clocks: the wall clock, and a manual one that only goes forward."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from dateutil.relativedelta import relativedelta

from nurturekit.clock import ManualClock, SystemClock
from nurturekit.errors import ClockError, NurtureError
from nurturekit.ports import Clock

UTC = timezone.utc
JST = timezone(timedelta(hours=9))
T0 = datetime(2026, 4, 1, 9, 0, tzinfo=UTC)


def read(clock: Clock) -> datetime:
    return clock.now()


def test_the_system_clock_tells_aware_utc_time() -> None:
    before = datetime.now(UTC)
    now = read(SystemClock())
    after = datetime.now(UTC)
    assert now.tzinfo is UTC
    assert before <= now <= after


def test_a_manual_clock_stands_still_until_told() -> None:
    clock = ManualClock(T0)
    assert read(clock) == T0
    assert read(clock) == T0


def test_a_manual_clock_keeps_utc_even_when_started_in_tokyo_time() -> None:
    clock = ManualClock(datetime(2026, 4, 1, 18, 0, tzinfo=JST))
    assert clock.now() == T0
    assert clock.now().tzinfo is UTC


def test_set_moves_forward_and_returns_the_new_time() -> None:
    clock = ManualClock(T0)
    later = T0 + timedelta(days=3)
    assert clock.set(later) == later
    assert clock.now() == later


def test_set_to_the_same_time_is_allowed() -> None:
    clock = ManualClock(T0)
    assert clock.set(T0) == T0


def test_set_converts_to_utc() -> None:
    clock = ManualClock(T0)
    clock.set(datetime(2026, 4, 2, 9, 0, tzinfo=JST))
    assert clock.now() == datetime(2026, 4, 2, 0, 0, tzinfo=UTC)
    assert clock.now().tzinfo is UTC


def test_going_back_in_time_is_refused_naming_both_times() -> None:
    clock = ManualClock(T0)
    with pytest.raises(ClockError) as caught:
        clock.set(T0 - timedelta(seconds=1))
    message = str(caught.value)
    assert "2026-04-01T09:00:00+00:00" in message
    assert "2026-04-01T08:59:59+00:00" in message
    assert "back" in message
    assert caught.value.where == "ManualClock.set"
    assert clock.now() == T0


@pytest.mark.parametrize("naive", [datetime(2026, 4, 1, 9, 0), "2026-04-01T09:00:00Z", None])
def test_a_clock_refuses_a_time_without_a_zone(naive: object) -> None:
    with pytest.raises(ClockError, match="ManualClock"):
        ManualClock(naive)  # type: ignore[arg-type]
    clock = ManualClock(T0)
    with pytest.raises(ClockError, match=r"ManualClock\.set"):
        clock.set(naive)  # type: ignore[arg-type]
    assert clock.now() == T0


def test_a_naive_time_error_says_how_to_write_an_aware_one() -> None:
    with pytest.raises(ClockError, match=r"no time zone.*tzinfo=timezone\.utc"):
        ManualClock(datetime(2026, 4, 1, 9, 0))


def test_advance_by_a_timedelta() -> None:
    clock = ManualClock(T0)
    assert clock.advance(timedelta(hours=36)) == datetime(2026, 4, 2, 21, 0, tzinfo=UTC)
    assert clock.now() == datetime(2026, 4, 2, 21, 0, tzinfo=UTC)


def test_advance_by_nothing_is_allowed() -> None:
    clock = ManualClock(T0)
    assert clock.advance(timedelta(0)) == T0
    assert clock.advance(relativedelta()) == T0


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (datetime(2026, 1, 31, tzinfo=UTC), datetime(2026, 2, 28, tzinfo=UTC)),
        (datetime(2028, 1, 31, tzinfo=UTC), datetime(2028, 2, 29, tzinfo=UTC)),
        (datetime(2026, 3, 31, 12, 0, tzinfo=UTC), datetime(2026, 4, 30, 12, 0, tzinfo=UTC)),
        (datetime(2026, 12, 15, tzinfo=UTC), datetime(2027, 1, 15, tzinfo=UTC)),
    ],
)
def test_one_month_from_a_month_end_is_the_next_months_last_day(
    start: datetime, expected: datetime
) -> None:
    clock = ManualClock(start)
    assert clock.advance(relativedelta(months=1)) == expected
    assert clock.now().tzinfo is UTC


@pytest.mark.parametrize(
    "delta", [timedelta(seconds=-1), relativedelta(months=-1), relativedelta(days=-1, hours=2)]
)
def test_advancing_backwards_is_refused(delta: timedelta | relativedelta) -> None:
    clock = ManualClock(T0)
    with pytest.raises(ClockError, match="only goes forward") as caught:
        clock.advance(delta)
    assert caught.value.where == "ManualClock.advance"
    assert clock.now() == T0


@pytest.mark.parametrize("delta", [3, "3d", None])
def test_advance_needs_a_duration(delta: object) -> None:
    with pytest.raises(ClockError, match="timedelta or a relativedelta"):
        ManualClock(T0).advance(delta)  # type: ignore[arg-type]


def test_clock_errors_are_value_errors_of_the_library() -> None:
    with pytest.raises(ValueError):
        ManualClock(T0).advance(timedelta(days=-1))
    assert issubclass(ClockError, NurtureError)
