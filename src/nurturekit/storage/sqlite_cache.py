"""The per-lead cache of :class:`~nurturekit.storage.sqlite.SQLiteStorage`: decoded leads,
states, activity histories and enrolments by lead id, bounded by a count of values and
dropping the least recently used leads past it.

It knows nothing of SQLite: the store decides when it is exact and when to drop it (see
:class:`LeadCache`).

A hand-made cache, kept because it pays: SQLite ``record_many`` of benchmarks/storage.py
(50,000 activities), 3 alternating runs on 2026-12-06: median 27,581 activities/s with the
default ``cache_size``, 8,397 with ``cache_size=0`` (3.3×).
"""

from __future__ import annotations

from collections import OrderedDict
from datetime import datetime

from nurturekit.activity import Activity
from nurturekit.lead import Lead
from nurturekit.ports import LeadState
from nurturekit.scenario import Enrollment
from nurturekit.storage.sqlite_states import Written

#: What the items of a state weigh, in sixteenths of a value (a value is about 1 KB: a decoded
#: activity takes 500 to 900 bytes): a score line (a tuple of 7 and the time and key it names,
#: some 250 bytes decoded, half that when made by the engine from its activity), a time (a
#: datetime, 56 bytes), a key of ``seen`` (its string and its place in the set, about 100
#: bytes), and the store's copy of that key (about 50; see ``Written``).
_LINE = 4
_TIME = 1
_KEY = 2
_KEY_COPY = 1


class CacheEntry:
    """What the cache knows of one lead; ``None`` in ``history`` or ``enrollments`` means not
    read yet, and ``has_lead`` / ``has_state`` say whether ``lead`` / ``state`` were."""

    __slots__ = (
        "enrollments",
        "has_lead",
        "has_state",
        "history",
        "lead",
        "live",
        "shared",
        "state",
        "weight",
        "written",
    )

    def __init__(self) -> None:
        self.has_lead = False
        self.lead: Lead | None = None
        self.has_state = False
        self.state: LeadState | None = None
        #: What the file holds of ``state``'s items, to write only what is new (see
        #: :class:`~nurturekit.storage.sqlite_states.Written`); ``None``: not known.
        self.written: Written | None = None
        #: Ordered by ``(at, key)``. Changed in place inside a transaction; replaced, never
        #: changed, once handed out outside one (``shared``).
        self.history: list[Activity] | None = None
        self.shared = False
        #: Ordered by ``(entered_at, id)``.
        self.enrollments: list[Enrollment] | None = None
        self.weight = 1
        #: False once dropped from the cache: its weight then no longer counts.
        self.live = True


class LeadCache:
    """Decoded leads, states, activity histories and enrolments by lead id, least recently
    used first.

    Exact while no other connection has written: :class:`SQLiteStorage` drops it all when
    ``PRAGMA data_version`` says another connection committed, and when a transaction of its
    own rolls back; every write of its own goes through it. ``budget`` bounds the number of
    values kept, each about 1 KB: a lead, each of its activities and enrolments count one,
    the items of its state what they take (a score line a quarter, a time or a key of ``seen``
    a sixteenth or an eighth: see ``_LINE``); past it the least recently used leads are
    dropped.
    """

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._entries: OrderedDict[str, CacheEntry] = OrderedDict()
        self._owner: dict[str, str] = {}  # enrolment id -> lead id, for the cached lists
        self._total = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def weight(self) -> int:
        return self._total

    def entry(self, lead_id: str) -> CacheEntry:
        entries = self._entries
        found = entries.get(lead_id)
        if found is None:
            found = entries[lead_id] = CacheEntry()
            self._total += 1
            self._trim()
        else:
            entries.move_to_end(lead_id)
        return found

    def get(self, lead_id: str) -> CacheEntry | None:
        """The entry of ``lead_id`` if there is one, left where it is in the order."""
        return self._entries.get(lead_id)

    def resize(self, entry: CacheEntry) -> None:
        """Count ``entry`` again after a change, and drop old entries past the budget."""
        weight = 1
        if entry.history is not None:
            weight += len(entry.history)
        if entry.enrollments is not None:
            weight += len(entry.enrollments)
        state = entry.state
        if state is not None:
            card = state.card
            # In sixteenths of a value: see _LINE, _TIME, _KEY.
            small = _LINE * (len(card.entries) + len(card.refused)) + _TIME * len(card.times)
            small += _KEY * len(card.seen)
            if entry.written is not None:
                small += _KEY_COPY * entry.written.weight
            weight += small // 16
        if entry.live:
            self._total += weight - entry.weight
        entry.weight = weight
        self._trim()

    def grow(self, entry: CacheEntry) -> None:
        """Count one more value in ``entry`` (an activity added to its history)."""
        entry.weight += 1
        if entry.live:
            self._total += 1
            if self._total > self.budget:
                self._trim()

    def _trim(self) -> None:
        entries = self._entries
        while self._total > self.budget and entries:
            _, old = entries.popitem(last=False)
            old.live = False
            self._total -= old.weight
            self._forget_owners(old)

    def _forget_owners(self, entry: CacheEntry) -> None:
        if entry.enrollments:
            for enrollment in entry.enrollments:
                self._owner.pop(enrollment.id, None)

    def set_enrollments(self, lead_id: str, entry: CacheEntry, found: list[Enrollment]) -> None:
        entry.enrollments = found
        if entry.live:
            for enrollment in found:
                self._owner[enrollment.id] = lead_id
            self.resize(entry)

    def put_enrollment(self, enrollment: Enrollment) -> None:
        lead_id = enrollment.lead_id
        eid = enrollment.id
        owner = self._owner.get(eid)
        if owner is not None and owner != lead_id:
            # Moved to another lead: the old lead's list no longer holds it.
            moved_from = self._entries.get(owner)
            if moved_from is not None:
                self._forget_owners(moved_from)
                moved_from.enrollments = None
                self.resize(moved_from)
            self._owner.pop(eid, None)
        entry = self._entries.get(lead_id)
        if entry is None or entry.enrollments is None or not entry.live:
            return  # its list is not cached: nothing to bring up to date
        mine = [e for e in entry.enrollments if e.id != eid]
        mine.append(enrollment)
        if len(mine) > 1 and enrollment_order(mine[-2]) > enrollment_order(enrollment):
            mine.sort(key=enrollment_order)
        self._owner[eid] = lead_id
        entry.enrollments = mine
        self.resize(entry)

    def drop(self, lead_id: str) -> None:
        """Forget what is known of ``lead_id``."""
        old = self._entries.pop(lead_id, None)
        if old is not None:
            old.live = False
            self._total -= old.weight
            self._forget_owners(old)

    def drop_enrollment(self, enrollment: Enrollment) -> None:
        """Forget the lead of ``enrollment``, and the lead it was cached under if another."""
        owner = self._owner.get(enrollment.id)
        if owner is not None:
            self.drop(owner)
        self.drop(enrollment.lead_id)

    def clear(self) -> None:
        for entry in self._entries.values():
            entry.live = False
        self._entries.clear()
        self._owner.clear()
        self._total = 0


def enrollment_order(enrollment: Enrollment) -> tuple[datetime, str]:
    return (enrollment.entered_at, enrollment.id)
