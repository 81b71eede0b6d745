"""What ``did(...)`` conditions need from a lead's history, kept as activities arrive.

A :class:`~nurturekit.conditions.Did` counts a lead's matching activities, in its whole
history or within a window. Reading the history to count makes every activity cost more the
longer the history is. A :class:`Tally` gives the same counts at a cost that does not grow
with it: for each *what* a program counts (activity kinds and property filters), the number of
matching activities and, when some condition counts it within a window, the times of the
matching activities inside the widest such window (older ones can no longer be counted).

The engine keeps a lead's tally in its :class:`~nurturekit.ports.LeadState` and hands it to
conditions with the history it describes, as a :class:`TalliedHistory`. A condition given a
plain sequence, or asked about a time before the lead's newest activity, counts the history
itself; both ways give the same answers.

>>> from datetime import datetime, timezone
>>> from nurturekit import Activity
>>> from nurturekit.conditions import did
>>> from nurturekit.conditions.activities import plan_tally
>>> plan = plan_tally([did("page_view", page="pricing", at_least=2, within="30d")])
>>> tally = plan.tally()
>>> at = datetime(2026, 4, 1, tzinfo=timezone.utc)
>>> tally.add(Activity(lead_id="l1", kind="page_view", at=at, properties={"page": "pricing"}))
>>> tally.count(("page_view",), (("page", "pricing"),), None, at)
1
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, overload

from nurturekit.activity import Activity
from nurturekit.conditions.attributes import Scalar, _same

__all__ = ["Counted", "TalliedHistory", "Tally", "TallyPlan", "counted_key", "matches"]

#: What a ``did(...)`` counts: its kinds (empty: any) and its property filters.
Counted = tuple[tuple[str, ...], tuple[tuple[str, Scalar], ...]]


def matches(
    activity: Activity, kinds: tuple[str, ...], where: tuple[tuple[str, Scalar], ...]
) -> bool:
    """Whether ``activity`` is one of ``kinds`` (any, when empty) with every property in
    ``where``: what a ``did(...)`` counts."""
    if kinds and activity.kind not in kinds:
        return False
    props = activity.properties
    return all(_same(props.get(name), expected) for name, expected in where)


def counted_key(kinds: tuple[str, ...], where: tuple[tuple[str, Scalar], ...]) -> str:
    """The name a tally knows a kinds-and-filters by. ``1`` and ``True`` are equal in Python
    but not as filters (a flag only equals a flag), so each value is written with its type.
    A string, whose hash Python keeps: a tally looks one up for every count."""
    typed = [(name, type(value).__name__, value) for name, value in where]
    return f"{list(kinds)!r} {typed!r}"


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICRO = timedelta(microseconds=1)

#: One kinds-and-filters of a plan, laid out for :meth:`Tally.add`: its key, kinds, filters
#: and widest window in microseconds (``None``: counted, no times kept).
_Entry = tuple[str, tuple[str, ...], tuple[tuple[str, Scalar], ...], int | None]


class TallyPlan:
    """What a program's conditions count, and the widest window each is counted in
    (``None``: only in the whole history). Shared by every lead's :class:`Tally`."""

    __slots__ = ("_by_kind", "_for_any", "counted", "windowed", "windows")

    def __init__(self, windows: Iterable[tuple[Counted, timedelta | None]]) -> None:
        self.windows: dict[str, timedelta | None] = {}
        self.counted: dict[str, Counted] = {}
        by_kind: dict[str, list[_Entry]] = {}
        for_any: list[_Entry] = []
        for (kinds, where), window in windows:
            key = counted_key(kinds, where)
            if key in self.windows:
                raise ValueError(f"{kinds!r} with {where!r} is planned twice")
            self.windows[key] = window
            self.counted[key] = (kinds, where)
            entry = (key, kinds, where, None if window is None else window // _MICRO)
            if not kinds:
                for_any.append(entry)
            for kind in kinds:
                by_kind.setdefault(kind, []).append(entry)
        self.windowed = tuple(key for key, window in self.windows.items() if window is not None)
        self._for_any = tuple(for_any)
        self._by_kind = {kind: tuple(entries) + self._for_any for kind, entries in by_kind.items()}

    def entries_for(self, kind: str) -> tuple[_Entry, ...]:
        """What is counted of an activity of ``kind``: (key, kinds, where, window in
        microseconds or ``None``) for each kinds-and-filters that may match it."""
        return self._by_kind.get(kind, self._for_any)

    def tally(self, activities: Iterable[Activity] = ()) -> Tally:
        """A tally of ``activities`` (in any order) under this plan."""
        made = Tally(self)
        for activity in activities:
            made.add(activity)
        return made

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TallyPlan) and self.windows == other.windows

    def __hash__(self) -> int:
        return hash(frozenset(self.windows.items()))

    def __repr__(self) -> str:
        return f"TallyPlan({len(self.windows)} counted)"


def _micros(at: datetime) -> int:
    """``at`` (aware) as whole microseconds since 1970: the times a tally keeps, cheap to
    compare, copy and store."""
    return (at - _EPOCH) // _MICRO


class Tally:
    """One lead's counts under a :class:`TallyPlan`. ``total`` is how many activities it has
    seen, ``newest`` the time of the newest; :meth:`add` costs the same however many there
    were before. The times kept are microseconds since 1970, oldest first."""

    __slots__ = ("counts", "newest", "plan", "times", "total")

    def __init__(self, plan: TallyPlan) -> None:
        self.plan = plan
        self.total = 0
        self.newest: datetime | None = None
        self.counts: dict[str, int] = dict.fromkeys(plan.windows, 0)
        self.times: dict[str, list[int]] = {key: [] for key in plan.windowed}

    def add(self, activity: Activity) -> None:
        """Count ``activity`` (which must not have been counted before)."""
        self.total += 1
        at = activity.at
        newest = self.newest
        if newest is None or at > newest:
            self.newest = newest = at
        stamp: int | None = None
        newest_stamp = 0
        counts = self.counts
        for key, kinds, where, window in self.plan.entries_for(activity.kind):
            if where and not matches(activity, kinds, where):
                continue
            counts[key] += 1
            if window is None:
                continue
            if stamp is None:
                stamp, newest_stamp = _micros(at), _micros(newest)
            times = self.times[key]
            horizon = newest_stamp - window
            if stamp > horizon:
                if not times or stamp >= times[-1]:
                    times.append(stamp)
                else:
                    insort(times, stamp)
            if times and times[0] <= horizon:
                del times[: bisect_right(times, horizon)]

    def count(
        self,
        kinds: tuple[str, ...],
        where: tuple[tuple[str, Scalar], ...],
        within: timedelta | None,
        now: datetime,
    ) -> int | None:
        """How many counted activities match ``kinds`` and ``where``, at or before ``now`` and
        (with ``within``) after ``now - within``; ``None`` when the tally cannot say (``now``
        before the newest activity, or a count the plan does not keep)."""
        return self.count_key(counted_key(kinds, where), within, now)

    def count_key(self, key: str, within: timedelta | None, now: datetime) -> int | None:
        """:meth:`count` by the :func:`counted_key` of what is counted."""
        newest = self.newest
        if newest is not None and now < newest:
            return None
        found = self.counts.get(key)
        if found is None or within is None:
            return found
        window = self.plan.windows[key]
        if window is None or within > window:
            return None
        times = self.times[key]
        return len(times) - bisect_right(times, _micros(now - within))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tally):
            return NotImplemented
        return (
            self.plan == other.plan
            and self.total == other.total
            and self.newest == other.newest
            and self.counts == other.counts
            and self.times == other.times
        )

    __hash__ = None  # type: ignore[assignment]  # counts on: not a dict key

    def copy(self) -> Tally:
        """A copy that counts on without changing this one."""
        made = Tally.__new__(Tally)
        made.plan = self.plan
        made.total = self.total
        made.newest = self.newest
        made.counts = dict(self.counts)
        made.times = {key: list(times) for key, times in self.times.items()}
        return made

    def to_data(self) -> dict[str, Any]:
        """The tally as plain JSON-ready data; :meth:`from_data` reads it back."""
        plan = self.plan
        return {
            "total": self.total,
            "newest": None if self.newest is None else self.newest.isoformat(),
            "counted": [
                {
                    "kinds": list(plan.counted[key][0]),
                    "where": [list(pair) for pair in plan.counted[key][1]],
                    "window": None if window is None else window // _MICRO,
                    "count": self.counts[key],
                    "times": self.times.get(key, []),
                }
                for key, window in plan.windows.items()
            ],
        }

    @classmethod
    def from_data(cls, data: Any) -> Tally:
        """A tally from :meth:`to_data`, under a plan rebuilt from it (see :meth:`fits`)."""
        counted = [
            (
                (tuple(item["kinds"]), tuple((name, value) for name, value in item["where"])),
                None if item["window"] is None else item["window"] * _MICRO,
            )
            for item in data["counted"]
        ]
        made = cls(TallyPlan(counted))
        made.total = data["total"]
        newest = data["newest"]
        made.newest = None if newest is None else datetime.fromisoformat(newest)
        for key, item in zip(made.plan.windows, data["counted"], strict=True):
            made.counts[key] = item["count"]
            if key in made.times:
                made.times[key] = list(item["times"])
        return made

    def fits(self, plan: TallyPlan) -> bool:
        """Whether this tally keeps what ``plan`` asks (then it takes ``plan`` as its own)."""
        if self.plan is plan:
            return True
        if self.plan != plan:
            return False
        self.plan = plan
        return True


class TalliedHistory(Sequence[Activity]):
    """A lead's history (as the store returns it, in time order) with the :class:`Tally` of
    exactly those activities: what a :class:`View` is given so that ``did(...)`` counts
    without reading the history."""

    __slots__ = ("_items", "tally")

    def __init__(self, items: Sequence[Activity], tally: Tally) -> None:
        if tally.total != len(items):
            raise ValueError(
                f"the tally counted {tally.total} activities, the history holds {len(items)}"
            )
        self._items = items
        self.tally = tally

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> Activity: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Activity]: ...

    def __getitem__(self, index: int | slice) -> Activity | Sequence[Activity]:
        return self._items[index]

    def __iter__(self) -> Iterator[Activity]:
        return iter(self._items)

    def __reversed__(self) -> Iterator[Activity]:
        return reversed(self._items)

    def __repr__(self) -> str:
        return f"TalliedHistory({len(self._items)} activities)"
