"""The ISO 8601 reader of times in imported rows and activity dicts: the common form read by
``datetime.fromisoformat``, everything else by dateutil's ``isoparse``, with one result."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from dateutil.parser import isoparse
from hypothesis import given
from hypothesis import strategies as st

from nurturekit._time import parse_iso_time


def outcome(read: object, text: str) -> object:
    try:
        value = read(text)  # type: ignore[operator]
    except (ValueError, OverflowError) as error:
        return type(error)
    assert isinstance(value, datetime)
    return (value, value.isoformat(), value.utcoffset())


@pytest.mark.parametrize(
    "text",
    [
        "2026-04-01T09:00:00+09:00",
        "2026-04-01T09:00:00Z",
        "2026-04-01T09:00:00.123456-05:30",
        "2026-04-01T09:00:00.123Z",  # not the common form: isoparse
        "20260401T090000+0900",
        "2026-04-01",
        "2026-04-01T09:00:00",  # no offset: naive, as isoparse reads it
        "2026-02-30T09:00:00Z",
        "2026-04-01T24:00:00Z",
        "2026-04-01T09:00:60Z",
        "2026-04-01T09:00:00+24:00",
        "2026-13-01T00:00:00Z",
        "9999-12-31T23:59:59+00:00",
        "0001-01-01T00:00:00-01:00",
        "2026-04-01T09:00:00+09:00 ",
        "",
    ],
)
def test_a_time_reads_as_isoparse_reads_it(text: str) -> None:
    assert outcome(parse_iso_time, text) == outcome(isoparse, text)


@given(
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(None)
    ),
    st.integers(-23 * 60, 23 * 60),
    st.booleans(),
)
def test_any_time_written_by_isoformat_reads_back_as_isoparse_reads_it(
    moment: datetime, offset_minutes: int, zulu: bool
) -> None:
    zone = timezone(timedelta(minutes=offset_minutes))
    text = moment.replace(tzinfo=zone).isoformat()
    if zulu and offset_minutes == 0:
        text = text[: -len("+00:00")] + "Z"
    assert outcome(parse_iso_time, text) == outcome(isoparse, text)
