"""What the reports share: the reporting period, months and weeks as labels, medians and the
nearest-rank 90th percentile, rates, and reading lead states in batches."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime, timedelta

from nurturekit._time import aware_utc
from nurturekit.errors import InvalidInput
from nurturekit.ports import LeadState, Storage

__all__ = [
    "STATE_BATCH",
    "Period",
    "days",
    "hours",
    "machine_made",
    "median",
    "month_label",
    "p90",
    "parse_month",
    "rate",
    "states",
    "week_label",
]

#: How many lead states one read asks the store for.
STATE_BATCH = 500

_MONTH = re.compile(r"(\d{4})-(\d{2})")


class Period:
    """A half-open window of time ``[since, until)``; ``None`` leaves that end open."""

    __slots__ = ("since", "until")

    def __init__(self, since: datetime | None, until: datetime | None, where: str) -> None:
        self.since = None if since is None else aware_utc(since, f"{where}(since)")
        self.until = None if until is None else aware_utc(until, f"{where}(until)")
        if self.since is not None and self.until is not None and self.until < self.since:
            raise InvalidInput(
                f"{where}(until)",
                f"{self.until.isoformat()} is before since={self.since.isoformat()}; the period "
                f"is [since, until)",
            )

    def __contains__(self, at: datetime) -> bool:
        return (self.since is None or at >= self.since) and (self.until is None or at < self.until)

    def note(self) -> str:
        """The period in words, for a report's notes."""
        if self.since is None and self.until is None:
            return "Period: all stored data."
        start = "the beginning" if self.since is None else self.since.isoformat()
        end = "the end" if self.until is None else self.until.isoformat()
        return f"Period: from {start} (included) to {end} (excluded)."


def rate(part: int, whole: int) -> float | None:
    """``part / whole``, or ``None`` when ``whole`` is 0."""
    return part / whole if whole else None


def days(span: timedelta) -> float:
    """A duration in days, as a float."""
    return span.total_seconds() / 86400


def hours(span: timedelta | None) -> float | None:
    """A duration in hours, as a float (``None`` stays ``None``)."""
    return None if span is None else span.total_seconds() / 3600


def median(values: Iterable[float]) -> float | None:
    """The middle value, or the mean of the two middle ones for an even count; ``None`` for
    none (as :func:`nurturekit.handoff.handoff_report` computes its median).

    >>> median([3.0, 1.0, 2.0]), median([1.0, 2.0, 3.0, 4.0]), median([])
    (2.0, 2.5, None)
    """
    ordered = sorted(values)
    count = len(ordered)
    if not count:
        return None
    middle = count // 2
    return ordered[middle] if count % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def p90(values: Iterable[float]) -> float | None:
    """The 90th percentile by nearest rank: the ``ceil(0.9 × n)``-th smallest (of 5 → the 5th,
    of 10 → the 9th), as :func:`nurturekit.handoff.handoff_report` computes it; ``None`` for none.

    >>> p90([float(n) for n in range(1, 11)]), p90([1.0, 2.0, 3.0, 4.0, 5.0]), p90([])
    (9.0, 5.0, None)
    """
    ordered = sorted(values)
    count = len(ordered)
    if not count:
        return None
    return ordered[(9 * count + 9) // 10 - 1]


def month_label(at: datetime | date) -> str:
    """The month of a time (its UTC date for an aware datetime) as ``"2026-04"``."""
    if isinstance(at, datetime):
        at = aware_utc(at, "month")
    return f"{at.year:04d}-{at.month:02d}"


def week_label(at: datetime | date) -> str:
    """The ISO week of a time (its UTC date for an aware datetime) as ``"2026-W14"``."""
    if isinstance(at, datetime):
        at = aware_utc(at, "week")
    year, week, _ = at.isocalendar()
    return f"{year:04d}-W{week:02d}"


def parse_month(value: str, where: str) -> str:
    """A month written ``"2026-04"``, checked."""
    found = _MONTH.fullmatch(value) if isinstance(value, str) else None
    if found is None or not 1 <= int(found.group(2)) <= 12:
        raise InvalidInput(where, f"{value!r} is not a month; write one such as '2026-04'")
    return value


def machine_made(properties: Mapping[str, object]) -> bool:
    """Whether an open or click was made by a machine (a mail-privacy proxy, a link scanner):
    its ``machine`` property is 1 (see :mod:`nurturekit.web`, :mod:`nurturekit.providers`)."""
    flag = properties.get("machine")
    return flag is not None and str(flag) in ("1", "True", "true")


def states(storage: Storage, lead_ids: Iterable[str]) -> Iterator[LeadState]:
    """The states of ``lead_ids`` (those that have one), in the order of ``lead_ids``, read
    :data:`STATE_BATCH` at a time."""
    batch: list[str] = []
    for lead_id in lead_ids:
        batch.append(lead_id)
        if len(batch) == STATE_BATCH:
            yield from _batch(storage, batch)
            batch = []
    if batch:
        yield from _batch(storage, batch)


def _batch(storage: Storage, lead_ids: list[str]) -> Iterator[LeadState]:
    found = storage.get_states(lead_ids)
    for lead_id in lead_ids:
        state = found.get(lead_id)
        if state is not None:
            yield state
