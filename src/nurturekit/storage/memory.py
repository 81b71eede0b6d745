"""An in-memory :class:`~nurturekit.ports.Storage`: for tests, notebooks and simulations.

Everything lives in dicts and lists of this process and is gone when it ends. Transactions are
real: an exception inside :meth:`InMemoryStorage.transaction` undoes every write made inside it.
Due enrolments sit in a heap keyed by due time, so claiming costs what is due, not what is
enrolled.

It is one module of about 600 lines because it is one class that implements the whole
:class:`~nurturekit.ports.Storage` port (leads, states, activities, enrolments, the outbox,
claims, hand-offs) over one lock and one undo log; split by area, each part would reach into
the same private tables.
"""

from __future__ import annotations

import bisect
import heapq
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from operator import attrgetter
from types import TracebackType
from typing import Any, TypeVar

import attrs

from nurturekit.activity import Activity
from nurturekit.errors import StorageError
from nurturekit.handoff import Handoff, HandoffStatus
from nurturekit.lead import Lead
from nurturekit.messages import OutgoingMail, SendStatus
from nurturekit.ports import LeadState, OutboxEntry, SendCheck, TestSend
from nurturekit.scenario import Enrollment, EnrollmentStatus
from nurturekit.storage._states import Snapshot, copy_state, snapshot_state, state_from_snapshot

__all__ = ["InMemoryStorage"]

_K = TypeVar("_K")
_V = TypeVar("_V")
_RUNNING = (EnrollmentStatus.ACTIVE, EnrollmentStatus.WAITING)
#: The sort key of the iterators the port orders by id (leads, hand-offs).
_by_id = attrgetter("id")


class InMemoryStorage:
    """A :class:`~nurturekit.ports.Storage` held in memory.

    >>> from nurturekit.storage.memory import InMemoryStorage
    >>> storage = InMemoryStorage()
    >>> with storage.transaction():
    ...     pass

    Thread-safe: one lock guards it, held for a whole transaction and by every read, so a
    thread never sees another thread's transaction half done.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        #: Inside a transaction: what undoes each write, as ``(function, *arguments)``.
        self._undo: list[tuple[Any, ...]] | None = None
        self._depth = 0
        #: Leads whose live state this transaction handed out (and saved a snapshot of).
        self._taken: set[str] = set()
        #: Per lead id: the lead, its state, its activities and its enrolments, in one place
        #: (recording an activity reads them all; one table costs one lookup, not four).
        self._rows: dict[str, _Row] = {}
        self._keys: set[str] = set()
        self._enrollments: dict[str, Enrollment] = {}
        self._due: list[tuple[datetime, str]] = []
        self._claims: dict[str, datetime] = {}
        self._claimants: dict[str, str] = {}
        self._outbox: dict[str, OutboxEntry] = {}
        self._pending: dict[str, None] = {}
        #: Claimed sends: key → (worker, lease end).
        self._mail_claims: dict[str, tuple[str, datetime]] = {}
        self._handoffs: dict[str, Handoff] = {}
        #: Claimed hand-off notices: hand-off id → (worker, lease end).
        self._notice_claims: dict[str, tuple[str, datetime]] = {}
        self._rotations: dict[str, int] = {}
        self._sends: dict[str, list[datetime]] = {}
        #: Test-sends by (template, version, address, time): see record_test_send.
        self._test_sends: dict[tuple[str, str, str, datetime], TestSend] = {}
        #: The context manager of every transaction: it keeps no state of its own (the depth and
        #: the undo log are the store's), so one serves them all, nested ones included.
        self._transaction = _Transaction(self)

    # ------------------------------------------------------------------ transactions

    def transaction(self) -> AbstractContextManager[None]:
        return self._transaction

    def close(self) -> None:
        """Nothing to release: the data stays readable until the store is dropped."""

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside a transaction, an exception undoes only the writes made inside this block."""
        with self._lock:
            if self._undo is None:
                with self.transaction():
                    yield
                return
            undo = self._undo
            mark = len(undo)
            try:
                yield
            except BaseException:
                while len(undo) > mark:
                    step = undo.pop()
                    step[0](*step[1:])
                raise

    def _rollback(self) -> None:
        assert self._undo is not None
        for undo in reversed(self._undo):
            undo[0](*undo[1:])

    def _remember(self, undo: Callable[[], None]) -> None:
        if self._undo is not None:
            self._undo.append((undo,))

    def _row(self, lead_id: str) -> _Row:
        """The lead's row, made empty if it has none (an empty row stands for nothing)."""
        row = self._rows.get(lead_id)
        if row is None:
            row = self._rows[lead_id] = _Row()
        return row

    def _replace(self, table: dict[_K, _V], key: _K, value: _V) -> None:
        """``table[key] = value``, undone on rollback."""
        missing = key not in table
        old = table.get(key)

        def undo() -> None:
            if missing:
                table.pop(key, None)
            else:
                table[key] = old  # type: ignore[assignment]

        table[key] = value
        self._remember(undo)

    # ------------------------------------------------------------------ leads

    def put_lead(self, lead: Lead) -> None:
        with self._lock:
            row = self._row(lead.id)
            if self._undo is not None:
                self._undo.append((_set_lead, row, row.lead))
            row.lead = lead

    def get_lead(self, lead_id: str) -> Lead | None:
        with self._lock:
            row = self._rows.get(lead_id)
            return None if row is None else row.lead

    def get_leads(self, lead_ids: Iterable[str]) -> dict[str, Lead]:
        rows = self._rows
        found = {}
        with self._lock:
            for lead_id in lead_ids:
                row = rows.get(lead_id)
                if row is not None and row.lead is not None:
                    found[lead_id] = row.lead
        return found

    def leads(self) -> Iterator[Lead]:
        """Every lead in id order, as the port promises (not the order they were put)."""
        with self._lock:
            found = [row.lead for row in self._rows.values() if row.lead is not None]
        found.sort(key=_by_id)
        yield from found

    def get_state(self, lead_id: str) -> LeadState | None:
        """The stored state: a copy outside a transaction; inside one, the stored object
        itself (a snapshot taken on first use restores it if the transaction is undone), so
        recording an activity copies nothing that outlives the transaction."""
        with self._lock:
            row = self._rows.get(lead_id)
            state = None if row is None else row.state
            if state is None:
                return None
            if self._undo is None:
                return copy_state(state)
            if lead_id not in self._taken:
                self._taken.add(lead_id)
                self._undo.append((self._restore_state, row, lead_id, snapshot_state(state)))
            return state

    def _restore_state(self, row: _Row, lead_id: str, snapshot: Snapshot) -> None:
        """Undo: the state as it was when this transaction first handed it out; a later
        ``get_state`` in the transaction (after a savepoint rolled back) snapshots it again."""
        row.state = state_from_snapshot(snapshot)
        self._taken.discard(lead_id)

    def get_states(self, lead_ids: Iterable[str]) -> dict[str, LeadState]:
        rows = self._rows
        found = {}
        with self._lock:
            for lead_id in lead_ids:
                row = rows.get(lead_id)
                if row is not None and row.state is not None:
                    found[lead_id] = copy_state(row.state)
        return found

    def put_leads(self, leads: Sequence[Lead]) -> None:
        with self._lock:
            for lead in leads:
                self.put_lead(lead)

    def put_states(self, states: Sequence[LeadState]) -> None:
        with self._lock:
            for state in states:
                self.put_state(state)

    def put_state(self, state: LeadState) -> None:
        with self._lock:
            row = self._row(state.lead_id)
            if self._undo is not None:
                if row.state is state:
                    return  # the object get_state handed out: already stored, snapshot taken
                self._undo.append((_set_state, row, row.state))
            row.state = state

    # ------------------------------------------------------------------ activities

    def add_activity(self, activity: Activity) -> bool:
        with self._lock:
            key = activity.key
            if key in self._keys:
                return False
            self._keys.add(key)
            history = self._row(activity.lead_id).history
            if not history:
                history.append(activity)
            else:
                last = history[-1]
                if last.at < activity.at or (last.at == activity.at and last.key < key):
                    history.append(activity)
                else:
                    mark = (activity.at, key)
                    position = bisect.bisect([(a.at, a.key) for a in history], mark)
                    history.insert(position, activity)
            if self._undo is not None:
                self._undo.append((self._forget_activity, history, activity))
            return True

    def _forget_activity(self, history: list[Activity], activity: Activity) -> None:
        self._keys.discard(activity.key)
        history.remove(activity)

    def activities(self, lead_id: str) -> Sequence[Activity]:
        """Inside a transaction the stored list itself (read-only for the caller); outside one
        a copy, which another thread's writes leave alone."""
        with self._lock:
            row = self._rows.get(lead_id)
            if row is None:
                return ()
            return row.history if self._depth else tuple(row.history)

    def activities_of_kinds(self, kinds: Iterable[str]) -> Iterator[Activity]:
        wanted = frozenset(kinds)
        with self._lock:
            found = [a for row in self._rows.values() for a in row.history if a.kind in wanted]
        yield from found

    # ------------------------------------------------------------------ enrolments

    def put_enrollment(self, enrollment: Enrollment) -> None:
        with self._lock:
            eid = enrollment.id
            old = self._enrollments.get(eid)
            claim = self._claims.pop(eid, None)
            claimant = self._claimants.pop(eid, None)
            self._enrollments[eid] = enrollment
            # An enrolment that moved to another lead (a store's caller may do that) leaves
            # its old lead's row.
            if old is not None and old.lead_id != enrollment.lead_id:
                del self._rows[old.lead_id].enrollments[eid]
            self._row(enrollment.lead_id).enrollments[eid] = enrollment
            if enrollment.due_at is not None and enrollment.status in _RUNNING:
                heapq.heappush(self._due, (enrollment.due_at, eid))
            if self._undo is not None:
                self._undo.append((self._unput_enrollment, enrollment, old, claim, claimant))

    def _unput_enrollment(
        self,
        new: Enrollment,
        old: Enrollment | None,
        claim: datetime | None,
        claimant: str | None,
    ) -> None:
        """Undo of :meth:`put_enrollment`: the old value back (and in the due heap if it was
        due; the heap skips entries that no longer match), in its lead's row, and the claim."""
        eid = new.id
        del self._rows[new.lead_id].enrollments[eid]
        if old is None:
            self._enrollments.pop(eid, None)
        else:
            self._enrollments[eid] = old
            self._rows[old.lead_id].enrollments[eid] = old
            if old.status in _RUNNING and old.due_at is not None:
                heapq.heappush(self._due, (old.due_at, eid))
        if claim is not None:
            self._claims[eid] = claim
        if claimant is not None:
            self._claimants[eid] = claimant

    def enrollments_of(self, lead_id: str) -> list[Enrollment]:
        with self._lock:
            row = self._rows.get(lead_id)
            if row is None or not row.enrollments:
                return []
            found = list(row.enrollments.values())
        if len(found) > 1:
            found.sort(key=_entered)
        return found

    def enrollments(self, scenario: str | None = None) -> Iterator[Enrollment]:
        with self._lock:
            found = list(self._enrollments.values())
        for enrollment in found:
            if scenario is None or enrollment.scenario == scenario:
                yield enrollment

    def claim_due(
        self, now: datetime, limit: int, worker: str, lease: timedelta
    ) -> list[Enrollment]:
        with self._lock:
            for eid, expires in list(self._claims.items()):
                if expires <= now:  # the worker died or gave up: its claim lapses
                    del self._claims[eid]
                    self._claimants.pop(eid, None)
                    lapsed = self._enrollments[eid]
                    if lapsed.status in _RUNNING and lapsed.due_at is not None:
                        heapq.heappush(self._due, (lapsed.due_at, eid))
            claimed: list[Enrollment] = []
            due = self._due
            while due and len(claimed) < limit and due[0][0] <= now:
                at, eid = heapq.heappop(due)
                current = self._enrollments.get(eid)
                # Entries go stale when an enrolment is put again; only the live one counts.
                if (
                    current is None
                    or current.due_at != at
                    or current.status not in _RUNNING
                    or eid in self._claims
                ):
                    continue
                self._claims[eid] = now + lease
                self._claimants[eid] = worker
                claimed.append(current)
            return claimed

    def renew_lease(self, enrollment_id: str, worker: str, until: datetime) -> bool:
        with self._lock:
            claim = self._claims.get(enrollment_id)
            if claim is None or self._claimants.get(enrollment_id) != worker:
                return False
            self._claims[enrollment_id] = max(claim, until)
            return True

    def renew_leases(
        self, enrollment_ids: Sequence[str], worker: str, until: datetime | None = None
    ) -> set[str]:
        with self._lock:
            held = set()
            for eid in enrollment_ids:
                if eid in self._claims and self._claimants.get(eid) == worker:
                    if until is not None:
                        self._replace(self._claims, eid, until)
                    held.add(eid)
            return held

    # ------------------------------------------------------------------ hand-offs

    def put_handoff(self, handoff: Handoff) -> None:
        with self._lock:
            self._replace(self._handoffs, handoff.id, handoff)

    def handoffs_of(self, lead_id: str) -> list[Handoff]:
        with self._lock:
            found = [h for h in self._handoffs.values() if h.lead_id == lead_id]
        return sorted(found, key=lambda h: (h.at, h.id))

    def handoffs(self) -> Iterator[Handoff]:
        """Every hand-off in id order, as the port promises (not the order they were put)."""
        with self._lock:
            found = sorted(self._handoffs.values(), key=_by_id)
        yield from found

    def due_breaches(self, now: datetime, limit: int) -> list[Handoff]:
        with self._lock:
            due = [
                h
                for h in self._handoffs.values()
                if h.status is HandoffStatus.OPEN
                and h.deadline is not None
                and h.deadline <= now
                and h.escalated_at is None
            ]
        due.sort(key=lambda h: (h.deadline, h.id))
        return due[:limit]

    def awaiting_notice(self, limit: int) -> list[Handoff]:
        with self._lock:
            owed = [h for h in self._handoffs.values() if h.awaiting_notice is not None]
        owed.sort(key=lambda h: (h.at, h.id))
        return owed[:limit]

    def claim_notices(
        self, now: datetime, limit: int, worker: str, lease: timedelta
    ) -> list[Handoff]:
        with self._lock:
            claims = self._notice_claims
            owed = [
                h
                for h in self._handoffs.values()
                if h.awaiting_notice is not None and (h.id not in claims or claims[h.id][1] <= now)
            ]
            owed.sort(key=lambda h: (h.at, h.id))
            claimed = owed[: max(limit, 0)]
            for handoff in claimed:
                self._replace(claims, handoff.id, (worker, now + lease))
            return claimed

    def next_in_rotation(self, team: str, size: int) -> int:
        with self._lock:
            position = self._rotations.get(team, 0) % size
            self._replace(self._rotations, team, position + 1)
            return position

    # ------------------------------------------------------------------ outbox

    def add_to_outbox(self, mail: OutgoingMail) -> bool:
        with self._lock:
            key = mail.key
            if key in self._outbox:
                return False
            self._outbox[key] = OutboxEntry(mail=mail)
            self._pending[key] = None
            sends = self._sends.setdefault(mail.lead_id, []) if mail.marketing else None
            if sends is not None:
                bisect.insort(sends, mail.created_at)

            def undo() -> None:
                del self._outbox[key]
                self._pending.pop(key, None)
                if sends is not None:
                    sends.remove(mail.created_at)

            self._remember(undo)
            return True

    def write_steps(self, mails: Sequence[OutgoingMail], enrollments: Sequence[Enrollment]) -> None:
        with self.transaction():
            for mail in mails:
                self.add_to_outbox(mail)
            for enrollment in enrollments:
                self.put_enrollment(enrollment)

    def mark_sent(
        self,
        key: str,
        status: SendStatus,
        detail: str,
        at: datetime,
        retry_at: datetime | None = None,
    ) -> None:
        status = SendStatus(status)
        with self._lock:
            old = self._outbox.get(key)
            if old is None:
                raise StorageError(
                    f"mark_sent({key!r}): no send with this key is in the outbox; write it "
                    "with add_to_outbox first"
                )
            was_pending = key in self._pending
            self._outbox[key] = attrs.evolve(
                old,
                status=status,
                detail=detail,
                attempts=old.attempts + 1,
                updated_at=at,
                retry_at=retry_at if status is SendStatus.DEFERRED else None,
            )
            if status.final:
                self._pending.pop(key, None)
            claim = self._mail_claims.pop(key, None)

            def undo() -> None:
                self._outbox[key] = old
                if was_pending:
                    self._pending[key] = None
                if claim is not None:
                    self._mail_claims[key] = claim

            self._remember(undo)

    def claim_mail(
        self, now: datetime, limit: int, worker: str, lease: timedelta
    ) -> list[OutgoingMail]:
        with self._lock:
            claimed: list[OutgoingMail] = []
            for key in self._pending:
                if len(claimed) >= limit:
                    break
                claim = self._mail_claims.get(key)
                if claim is not None and claim[1] > now:
                    continue
                entry = self._outbox[key]
                if entry.retry_at is not None and entry.retry_at > now:
                    continue
                self._replace(self._mail_claims, key, (worker, now + lease))
                claimed.append(entry.mail)
            return claimed

    def hold_mail(
        self, keys: Sequence[str], worker: str, until: datetime | None = None
    ) -> dict[str, SendCheck]:
        with self._lock:
            held: dict[str, SendCheck] = {}
            for key in keys:
                claim = self._mail_claims.get(key)
                if claim is None or claim[0] != worker or key not in self._pending:
                    continue
                if until is not None:
                    self._replace(self._mail_claims, key, (worker, until))
                entry = self._outbox[key]
                row = self._rows.get(entry.mail.lead_id)
                state = None if row is None else row.state
                held[key] = SendCheck(
                    key=key,
                    attempts=entry.attempts,
                    contact=None
                    if row is None or row.lead is None
                    else row.lead.contactability.status,
                    with_sales=state is not None and state.with_sales,
                    disqualified=state is not None and state.disqualified,
                )
            return held

    def mark_and_hold(
        self,
        key: str,
        status: SendStatus,
        detail: str,
        at: datetime,
        retry_at: datetime | None,
        next_key: str,
        worker: str,
    ) -> dict[str, SendCheck]:
        self.mark_sent(key, status, detail, at, retry_at)
        return self.hold_mail([next_key], worker)

    def pending_mail(self, limit: int) -> list[OutgoingMail]:
        with self._lock:
            keys = list(self._pending)[:limit]
            return [self._outbox[key].mail for key in keys]

    def outbox(self) -> Iterator[OutboxEntry]:
        with self._lock:
            found = list(self._outbox.values())
        yield from found

    def report_send(self, key: str, status: SendStatus, detail: str, at: datetime) -> bool:
        status = SendStatus(status)
        with self._lock:
            old = self._outbox.get(key)
            if old is None:
                return False
            self._outbox[key] = attrs.evolve(old, status=status, detail=detail, updated_at=at)

            def undo() -> None:
                self._outbox[key] = old

            self._remember(undo)
        return True

    def get_send(self, key: str) -> OutboxEntry | None:
        with self._lock:
            return self._outbox.get(key)

    def marketing_sends_since(self, lead_id: str, since: datetime) -> list[datetime]:
        with self._lock:
            sends = self._sends.get(lead_id, [])
            return sends[bisect.bisect_left(sends, since) :]

    # ------------------------------------------------------------------ test-sends

    def record_test_send(self, record: TestSend) -> None:
        with self._lock:
            key = (record.template, record.version, record.to, record.at)
            self._replace(self._test_sends, key, record)

    def test_sends(self, template: str | None = None) -> list[TestSend]:
        with self._lock:
            found = [
                r for r in self._test_sends.values() if template is None or r.template == template
            ]
        # Newest first, then by template, version and address: two stable sorts.
        found.sort(key=lambda r: (r.template, r.version, r.to))
        found.sort(key=attrgetter("at"), reverse=True)
        return found


class _Row:
    """What the store keeps of one lead."""

    __slots__ = ("enrollments", "history", "lead", "state")

    def __init__(self) -> None:
        self.lead: Lead | None = None
        self.state: LeadState | None = None
        self.history: list[Activity] = []
        self.enrollments: dict[str, Enrollment] = {}


def _set_lead(row: _Row, lead: Lead | None) -> None:
    row.lead = lead


def _set_state(row: _Row, state: LeadState | None) -> None:
    row.state = state


def _entered(enrollment: Enrollment) -> tuple[datetime, str]:
    return (enrollment.entered_at, enrollment.id)


class _Transaction:
    """The context manager of :meth:`InMemoryStorage.transaction` (a class: it is entered
    once per recorded activity, and a generator-based one costs several times more)."""

    __slots__ = ("_store",)

    def __init__(self, store: InMemoryStorage) -> None:
        self._store = store

    def __enter__(self) -> None:
        store = self._store
        store._lock.acquire()
        if store._depth == 0:
            store._undo = []
        store._depth += 1

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        store = self._store
        try:
            store._depth -= 1
            if store._depth == 0:
                try:
                    if kind is not None:
                        store._rollback()
                finally:
                    store._undo = None
                    store._taken.clear()
        finally:
            store._lock.release()
