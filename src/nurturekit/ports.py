"""The ports the engine talks to.

Each port is a :class:`typing_extensions.Protocol` with its contract written down; the engine
depends on these and never on an adapter.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta

import attrs
from typing_extensions import Protocol

from nurturekit._repr import counted, names, quoted, summary
from nurturekit._time import aware_utc
from nurturekit.activity import Activity
from nurturekit.conditions.tally import Tally
from nurturekit.errors import InvalidInput
from nurturekit.handoff import Handoff, HandoffEvent
from nurturekit.lead import ContactStatus, Lead
from nurturekit.messages import OutgoingMail, SendResult, SendStatus
from nurturekit.scenario import Enrollment
from nurturekit.scoring import ScoreCard
from nurturekit.stages import StageMove

__all__ = [
    "Clock",
    "HandoffSink",
    "LeadState",
    "Mailer",
    "OutboxEntry",
    "ReadAhead",
    "SendCheck",
    "Storage",
    "TestSend",
]


@attrs.define(kw_only=True, eq=False)
class LeadState:
    """What the engine keeps per lead beside the lead itself: plain data a store can write.

    ``card`` is the running score; ``moves`` the lead's stage moves, oldest first (empty without
    a stage machine; see :meth:`nurturekit.stages.StageHistory.adopt`); ``levels`` the score
    levels already reached, so crossing one is seen once; ``with_sales`` is true while sales
    owns the lead (no marketing mail then, and no second hand-off for the same qualification).
    """

    lead_id: str
    card: ScoreCard
    moves: list[StageMove] = attrs.Factory(list)
    levels: frozenset[str] = frozenset()
    with_sales: bool = False
    #: Sales said "not a fit": no marketing mail until the lead qualifies again.
    disqualified: bool = False
    #: An MQL definition held at the lead's last activity: a hand-off happens only when this
    #: turns from false to true (a new qualification), not on every activity after it.
    qualified: bool = False
    #: What the program's ``did(...)`` conditions count of the lead's history, kept as
    #: activities arrive (``None`` until the engine makes it; see
    #: :mod:`nurturekit.conditions.tally`).
    tally: Tally | None = None

    def __repr__(self) -> str:
        """The lead, its stage now, the levels reached, the flags, and how many stage moves
        and score entries it holds."""
        return summary(
            "LeadState",
            [
                ("lead", quoted(self.lead_id)),
                ("stage", quoted(self.moves[-1].target if self.moves else None)),
                ("levels", names(sorted(self.levels))),
                ("with_sales", self.with_sales),
                ("disqualified", self.disqualified),
                ("qualified", self.qualified),
            ],
            [
                counted(len(self.moves), "move"),
                counted(len(self.card.entries), "score entry", "score entries"),
            ],
        )


@attrs.frozen(kw_only=True)
class OutboxEntry:
    """One send in the outbox: the mail, and what became of it (``None``: not handed over)."""

    mail: OutgoingMail
    status: SendStatus | None = None
    detail: str = ""
    attempts: int = 0
    updated_at: datetime | None = None
    #: A deferred send is not claimed again before this time.
    retry_at: datetime | None = None


@attrs.frozen(kw_only=True)
class SendCheck:
    """What the store holds, right now, about a claimed send and its lead: read fresh by
    :meth:`Storage.hold_mail` right before the send is handed to a mailer.

    ``contact`` is the lead's :attr:`Contactability.status <nurturekit.lead.Contactability>`,
    ``None`` when the lead is no longer stored; ``with_sales`` and ``disqualified`` are the
    lead's :class:`LeadState` flags (false without a state); ``attempts`` counts the
    hand-overs tried so far.
    """

    key: str
    attempts: int
    contact: ContactStatus | None
    with_sales: bool = False
    disqualified: bool = False


def _filled(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"TestSend.{attribute.name}", f"expected a non-empty str, got {value!r}")


def _optional_text(instance: object, attribute: attrs.Attribute[str | None], value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"TestSend.{attribute.name}", f"expected a str or None, got {value!r}")


def _text(instance: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str):
        raise InvalidInput(f"TestSend.{attribute.name}", f"expected a str, got {value!r}")


def _test_send_time(value: datetime) -> datetime:
    return aware_utc(value, "TestSend.at")


@attrs.frozen(kw_only=True)
class TestSend:
    """One test-send of a template (``nurturekit test-send --db``): which template, at which
    :attr:`~nurturekit.templates.Template.version`, to whom, when, and what the mailer
    answered.

    A readiness check reads them with :meth:`Storage.test_sends`: a template was test-sent
    when a record with ``status`` ``SENT`` holds its current version; one whose version
    differs from the template's now was test-sent before the template changed.

    >>> from datetime import datetime, timezone
    >>> record = TestSend(template="wp_thanks", version="f1293b13fea5", to="me@example.com",
    ...                   at=datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc), status="sent")
    >>> record.status is SendStatus.SENT
    True
    """

    #: Not a pytest test class, whatever its name.
    __test__ = False

    #: The template's name.
    template: str = attrs.field(validator=_filled)
    #: :attr:`Template.version <nurturekit.templates.Template.version>` of what was sent.
    version: str = attrs.field(validator=_filled)
    #: The address it was sent to.
    to: str = attrs.field(validator=_filled)
    #: When the mailer answered; converted to UTC (a naive time is refused).
    at: datetime = attrs.field(converter=_test_send_time)
    #: What the mailer did with it (a :class:`~nurturekit.messages.SendStatus`, or its value
    #: such as ``"sent"``).
    status: SendStatus = attrs.field(converter=SendStatus)
    #: The mailer's detail (a server's answer, an error), if any.
    detail: str = attrs.field(default="", validator=_text)
    #: Who ran it, when known (the command line writes the login name of its user).
    sent_by: str | None = attrs.field(default=None, validator=_optional_text)

    def __repr__(self) -> str:
        """The template and version, the address, the time and what the mailer answered.

        >>> from datetime import datetime, timezone
        >>> TestSend(template="wp", version="f1293b13fea5", to="a@b.jp",
        ...          at=datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc), status="sent")
        <TestSend template='wp' version='f1293b13fea5' to='a@b.jp' at=2026-12-01T09:00Z status=sent>
        """
        fields: list[tuple[str, object]] = [
            ("template", quoted(self.template)),
            ("version", quoted(self.version)),
            ("to", quoted(self.to)),
            ("at", self.at),
            ("status", self.status.value),
        ]
        if self.detail:
            fields.append(("detail", quoted(self.detail)))
        if self.sent_by is not None:
            fields.append(("by", quoted(self.sent_by)))
        return summary("TestSend", fields)


class Clock(Protocol):
    """Where the engine reads the time.

    The domain never calls a clock: every rule is given ``now``. The engine asks its clock once
    per operation and passes the answer down, so a run can be replayed on a
    :class:`nurturekit.clock.ManualClock`.
    """

    def now(self) -> datetime:
        """Return the current time as a timezone-aware UTC datetime.

        Successive calls should not go backwards; :class:`~nurturekit.clock.ManualClock`
        enforces it, while a system clock may be stepped back by NTP and the engine copes.
        """
        ...


class Mailer(Protocol):
    """Hands messages to the world: an outbox list, the console, ``.eml`` files, SMTP.

    The engine writes every send to the storage's outbox *before* it calls :meth:`send`, so a
    crash between the two is seen and retried with the same key and Message-ID, never lost.
    """

    def send(self, mails: Sequence[OutgoingMail]) -> Iterable[SendResult]:
        """Deliver ``mails`` in order and give one result per mail, in the same order.

        A mailer that hands mails over one by one (SMTP) should *yield* each result as soon as
        that mail is handed over: the engine records each result before it asks for the next,
        so a worker killed mid-batch repeats at most the one mail in flight. A list is fine
        for mailers whose hand-over is one step (an in-memory outbox).

        A refusal of one mail (bounced, deferred, or rejected: a mail that cannot be built or
        that the server refuses for what it is, not for its recipient) is a result, not an
        exception. An adapter raises :class:`~nurturekit.errors.MailerUnavailable` when it
        cannot go on at all (no connection, authentication refused), before its first result
        or between two: the results given so far are recorded and the rest stay in the outbox.
        It may reuse one connection for the whole batch.

        Between two results of a mailer that yields them, the engine reads the next mail's
        suppression and claim again; if that mail may no longer go, the engine closes the
        iterator (``close()``, so a ``finally`` in the generator runs) without asking for
        more, and calls :meth:`send` again with the mails that may still go.
        """
        ...


class HandoffSink(Protocol):
    """Tells a sales system (a CRM, a chat channel, a webhook) about hand-offs and breaches."""

    def notify(self, event: HandoffEvent) -> None:
        """Deliver ``event``; raise on failure. The engine then keeps the notice pending and
        retries it in a later :meth:`~nurturekit.engine.Engine.run_due`, so a failing sink
        never loses a hand-off. A notice may come twice (after a crash); ``event.handoff.id``
        identifies it.
        """
        ...


class Storage(Protocol):
    """Where leads, activities, per-lead state, enrolments and the outbox live.

    Every method below is required, but for those of the last two sections. The engine calls
    all the others and has no fallback. It never calls the two of test-sends
    (:meth:`record_test_send` and :meth:`test_sends`): a store written before they existed
    still works with the engine; only ``nurturekit test-send --db`` and a check of what was
    test-sent need them. The batch writes of bulk imports (:meth:`put_leads` and
    :meth:`put_states`) make :meth:`~nurturekit.engine.Engine.upsert_leads` cost a few
    statements per batch instead of a few per lead; without them the engine writes a row at a
    time. (A database store adds the batch reads of :class:`ReadAhead` too.) The storage
    contract suite skips the tests of these optional methods on a store without them.

    Every method may be called inside :meth:`transaction`; the writes of one transaction take
    effect together or not at all, and an adapter that cannot promise that (none of ours) must
    say so. Outside a transaction each write stands alone. Times are aware UTC.

    **Threads.** A store must be safe to share between threads: any method may be called from
    any thread, and a transaction opened by one thread is invisible to the others until it
    ends (they wait for it, or work on a connection of their own). Two store objects on one
    database (two processes, or two objects in one process) must also work together: what
    one commits, the other sees from its next call on, and claims never overlap.

    **Claims.** Due enrolments (:meth:`claim_due`), outbox sends (:meth:`claim_mail`) and
    hand-off notices (:meth:`claim_notices`) are claimed for a ``worker`` — a token the
    engine makes unique per claim — until a lease ends. A lease that ends exactly at ``now``
    has expired: the work is claimable again at that instant. A claim ends when its work is
    written back (:meth:`put_enrollment`, :meth:`mark_sent`, a notice no longer owed), when
    its holder renews it to a time already past, or when its lease runs out and another
    worker claims the work.

    **Order.** Where a method below names an order, every store must give exactly that order,
    so that the engine, a report or a simulation with a seeded random generator does the same
    things on every store. Ids and keys compare as Python compares ``str``, by code point
    (PostgreSQL's ``COLLATE "C"``, SQLite's ``BINARY``); the order in which rows were written
    or updated never decides it. Methods that say "in no particular order" are for counting.
    """

    def transaction(self) -> AbstractContextManager[None]:
        """A unit of work: on a normal exit every write inside is kept, on an exception every
        write inside is undone and the exception goes on. Nested calls join the outer one."""
        ...

    def close(self) -> None:
        """Release what the store holds (connections, files); closing twice is fine. The store
        is not used after it."""
        ...

    def savepoint(self) -> AbstractContextManager[None]:
        """A unit of work nested in a transaction: on an exception inside, only the writes made
        inside it are undone and the exception goes on, leaving the enclosing transaction
        usable; on a normal exit its writes become part of that transaction (kept or undone
        with it). Outside a transaction it is a :meth:`transaction`.

        The engine runs a batch of due steps in one transaction with a savepoint per step, so
        a step that fails undoes only its own writes.
        """
        ...

    # -- leads and their state ------------------------------------------------------------

    def put_lead(self, lead: Lead) -> None:
        """Insert the lead, or replace the stored lead with the same id."""
        ...

    def get_lead(self, lead_id: str) -> Lead | None:
        """The stored lead, or ``None``."""
        ...

    def get_leads(self, lead_ids: Iterable[str]) -> dict[str, Lead]:
        """The stored leads among ``lead_ids``, by id; ids with no stored lead are left out.

        One read for a batch (the engine reads the leads of the due steps it claimed this way).
        """
        ...

    def leads(self) -> Iterator[Lead]:
        """Every stored lead, ordered by id (for broadcasts and reports)."""
        ...

    def get_state(self, lead_id: str) -> LeadState | None:
        """The lead's engine state (score card, stage history, levels reached), or ``None``.

        Change the returned state and :meth:`put_state` it to store the change. Outside a
        transaction, a change not put is never seen. Inside one, a later ``get_state`` of the
        same lead may return the changed object (the in-memory store hands out its own, to copy
        nothing per activity); if the transaction is undone, the state is as it was before."""
        ...

    def get_states(self, lead_ids: Iterable[str]) -> dict[str, LeadState]:
        """The engine states of the leads among ``lead_ids`` that have one, by lead id, each
        as :meth:`get_state` gives it (the caller may change it). One read for a batch."""
        ...

    def put_state(self, state: LeadState) -> None:
        """Insert or replace the lead's engine state."""
        ...

    # -- activities ---------------------------------------------------------------------------

    def add_activity(self, activity: Activity) -> bool:
        """Store the activity; return False, changing nothing, when its key is already stored."""
        ...

    def activities(self, lead_id: str) -> Sequence[Activity]:
        """The lead's activities ordered by ``(at, key)``; the caller must not change it."""
        ...

    def activities_of_kinds(self, kinds: Iterable[str]) -> Iterator[Activity]:
        """Every stored activity of these kinds, in no particular order (for analytics)."""
        ...

    # -- enrolments ---------------------------------------------------------------------------

    def put_enrollment(self, enrollment: Enrollment) -> None:
        """Insert the enrolment or replace the one with the same id; this also ends any claim
        on it, and (re)indexes it by ``due_at`` while it is active or waiting."""
        ...

    def enrollments_of(self, lead_id: str) -> list[Enrollment]:
        """All of the lead's enrolments, ended ones too, ordered by ``(entered_at, id)``."""
        ...

    def enrollments(self, scenario: str | None = None) -> Iterator[Enrollment]:
        """Every enrolment, or those of one scenario, in no particular order (for analytics)."""
        ...

    def claim_due(
        self, now: datetime, limit: int, worker: str, lease: timedelta
    ) -> list[Enrollment]:
        """Claim up to ``limit`` active or waiting enrolments whose ``due_at <= now``, earliest
        first (ties by id), for ``worker`` until ``now + lease``.

        A claimed enrolment is not returned again until it is put back with
        :meth:`put_enrollment` or its lease has expired. Costs what is due, not what is enrolled.
        """
        ...

    def renew_lease(self, enrollment_id: str, worker: str, until: datetime) -> bool:
        """Extend ``worker``'s claim on the enrolment to ``until`` (a long step is running).

        Returns False, changing nothing, when ``worker`` no longer holds the claim — it was put
        back, or its lease ran out and another worker took the enrolment over: then leave it.
        """
        ...

    def renew_leases(
        self, enrollment_ids: Sequence[str], worker: str, until: datetime | None = None
    ) -> set[str]:
        """Return the ids among ``enrollment_ids`` that ``worker`` still holds a claim on, and
        set the leases of those claims to end at ``until``; the others are left alone.

        Without ``until`` the leases stay as they are: the call only reads which claims
        ``worker`` holds. This is the fence the engine puts in front of a batch of steps,
        inside the batch's transaction: only the returned ids are run, and until that
        transaction ends no other worker can claim them (PostgreSQL locks the rows; SQLite
        and the in-memory store run one transaction at a time). ``until`` at or before
        ``now`` gives the claims back.
        """
        ...

    # -- hand-offs ----------------------------------------------------------------------------

    def put_handoff(self, handoff: Handoff) -> None:
        """Insert the hand-off or replace the one with the same id."""
        ...

    def handoffs_of(self, lead_id: str) -> list[Handoff]:
        """The lead's hand-offs ordered by ``(at, id)``."""
        ...

    def handoffs(self) -> Iterator[Handoff]:
        """Every hand-off, ordered by id (for reports and a sales queue worked through)."""
        ...

    def due_breaches(self, now: datetime, limit: int) -> list[Handoff]:
        """Open hand-offs (no first contact) whose deadline is at or before ``now`` and that
        were not escalated yet, earliest deadline first (ties by id)."""
        ...

    def awaiting_notice(self, limit: int) -> list[Handoff]:
        """Hand-offs owing the sink a notice (see :attr:`Handoff.awaiting_notice`), oldest
        hand-off first, claimed or not (for reports)."""
        ...

    def claim_notices(
        self, now: datetime, limit: int, worker: str, lease: timedelta
    ) -> list[Handoff]:
        """Claim up to ``limit`` hand-offs owing the sink a notice, oldest hand-off first,
        for ``worker`` until ``now + lease``: two workers never hold the same notice.

        :meth:`put_handoff` leaves the claim as it is: the notice stops being owed once the
        hand-off is put with its notice time, and a notice still owed (the sink failed) is
        claimable again when the lease runs out.
        """
        ...

    def next_in_rotation(self, team: str, size: int) -> int:
        """Return the team's next position in ``range(size)`` and move it on by one, atomically:
        round robin stays fair across restarts and across workers."""
        ...

    # -- the outbox ---------------------------------------------------------------------------

    def add_to_outbox(self, mail: OutgoingMail) -> bool:
        """Record a send before it is handed to a mailer; False when its key is already there."""
        ...

    def write_steps(self, mails: Sequence[OutgoingMail], enrollments: Sequence[Enrollment]) -> None:
        """Write what a batch of steps did: every mail to the outbox, in order (one whose key
        is already there is skipped, as with :meth:`add_to_outbox`), then every enrolment, in
        order, as :meth:`put_enrollment` does. All of it or nothing; inside a transaction it
        is part of it.

        The engine keeps back the writes of the plain steps of a batch (sends, waits, ends)
        and writes them with this, in one round trip where the store can.
        """
        ...

    def mark_sent(
        self,
        key: str,
        status: SendStatus,
        detail: str,
        at: datetime,
        retry_at: datetime | None = None,
    ) -> None:
        """Record what became of the send ``key`` (attempts + 1) and end its claim.

        ``retry_at`` is when a ``DEFERRED`` send may be claimed again (``None``: at once).
        ``SUPPRESSED`` sends were not handed over, but count the attempt all the same.
        """
        ...

    def pending_mail(self, limit: int) -> list[OutgoingMail]:
        """Sends written to the outbox but not yet sent, bounced or suppressed, oldest first."""
        ...

    def claim_mail(
        self, now: datetime, limit: int, worker: str, lease: timedelta
    ) -> list[OutgoingMail]:
        """Claim up to ``limit`` sends to hand to a mailer, oldest first (outbox order), for
        ``worker`` until ``now + lease``.

        Claimable: sends not yet handed over, and deferred ones whose ``retry_at`` is at or
        before ``now`` — unless another claim on them is still live. :meth:`mark_sent` ends
        the claim. Two workers never hold the same send at once.
        """
        ...

    def hold_mail(
        self, keys: Sequence[str], worker: str, until: datetime | None = None
    ) -> dict[str, SendCheck]:
        """The fence in front of a hand-over: of the sends among ``keys``, those ``worker``
        still holds (claimed and not yet marked), each with its lead's suppression read fresh
        from the store, by key. With ``until``, their leases are set to end then.

        A send missing from the answer was taken over by another worker (or marked): it must
        not be handed over. Costs one read (one statement) whatever the number of keys.
        """
        ...

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
        """:meth:`mark_sent` of ``key``, then :meth:`hold_mail` of ``[next_key]`` for
        ``worker``, with the same effects and answer, as one call: the engine records a result
        of a mailer that yields them one by one and checks the next mail together, in one
        round trip where the store can (PostgreSQL: one statement)."""
        ...

    def outbox(self) -> Iterator[OutboxEntry]:
        """Every send in the outbox with its status, in no particular order (for analytics)."""
        ...

    def report_send(self, key: str, status: SendStatus, detail: str, at: datetime) -> bool:
        """Record what a provider reported about the send ``key`` after it was handed over (a
        bounce, a complaint, a drop): its ``status`` and ``detail``, attempts and claim left
        as they are. False when no such send is in the outbox."""
        ...

    def get_send(self, key: str) -> OutboxEntry | None:
        """The send with idempotency key ``key`` and what became of it, or ``None`` (a
        provider's event about a send names it by this key)."""
        ...

    def marketing_sends_since(self, lead_id: str, since: datetime) -> list[datetime]:
        """When marketing mail to the lead was written to the outbox at or after ``since``."""
        ...

    # -- batches of bulk imports (optional) ---------------------------------------------------

    def put_leads(self, leads: Sequence[Lead]) -> None:
        """Insert or replace each lead as :meth:`put_lead` does, in order (a later lead with
        the id of an earlier one replaces it), in one write where the store can. Inside a
        transaction it is part of it.

        Optional: :meth:`Engine.upsert_leads <nurturekit.engine.Engine.upsert_leads>` calls
        :meth:`put_lead` per lead on a store without it.
        """
        ...

    def put_states(self, states: Sequence[LeadState]) -> None:
        """Insert or replace each state as :meth:`put_state` does, in order (a later state of
        the same lead replaces an earlier), in one write where the store can. The store may
        keep the objects given: the caller does not change them afterwards. Inside a
        transaction it is part of it.

        Optional: :meth:`Engine.upsert_leads <nurturekit.engine.Engine.upsert_leads>` calls
        :meth:`put_state` per state on a store without it.
        """
        ...

    # -- test-sends (never called by the engine) --------------------------------------------

    def record_test_send(self, record: TestSend) -> None:
        """Record a test-send of a template (``nurturekit test-send --db``).

        A record with the same ``template``, ``version``, ``to`` and ``at`` as a stored one
        replaces it (recording the same test-send twice keeps one); any other is added, and
        none is ever removed. Inside a transaction it is part of it.
        """
        ...

    def test_sends(self, template: str | None = None) -> list[TestSend]:
        """The recorded test-sends, or those of the template named ``template``: newest
        first (``at`` descending), then by ``template``, ``version`` and ``to``, each
        ascending by code point. Every store gives this order."""
        ...


class ReadAhead(Protocol):
    """The batch reads (and write) a database store adds to :class:`Storage` (optional):
    with them, :meth:`Engine.record_many <nurturekit.engine.Engine.record_many>` reads the
    leads, states, histories and enrolments of a batch's leads at once
    (:meth:`Storage.get_leads`, :meth:`Storage.get_states`, :meth:`activities_of` and
    :meth:`enrollments_of_leads`), a few queries for the batch, before it records it. On a
    store without :meth:`activities_of` it reads them per activity, as
    :meth:`~nurturekit.engine.Engine.record` does: the in-memory store leaves these out, as
    its reads cost no query and reading ahead would only copy its states.
    """

    def add_activities(self, activities: Sequence[Activity]) -> list[bool]:
        """Store each activity as :meth:`Storage.add_activity` does, in order, in one write
        where the store can; for each, whether it was stored (``False``: its key was stored
        already, by an earlier call or an earlier activity of ``activities``).

        Optional, for a store where each write costs a round trip (PostgreSQL): when every
        activity of a batch is of a lead of its own, :meth:`Engine.record_many
        <nurturekit.engine.Engine.record_many>` stores them all with it, after reading the
        batch ahead, and then records each as if :meth:`Storage.add_activity` had just stored
        it. Without it, each is stored on its own.
        """
        ...

    def activities_of(self, lead_ids: Iterable[str]) -> dict[str, Sequence[Activity]]:
        """The activities of each lead among ``lead_ids``, by lead id, each as
        :meth:`Storage.activities` gives them (ordered by ``(at, key)``; the caller must not
        change them), with an empty sequence for a lead without any: every id given is in
        the answer. One read for a batch."""
        ...

    def enrollments_of_leads(self, lead_ids: Iterable[str]) -> dict[str, list[Enrollment]]:
        """The enrolments of each lead among ``lead_ids``, by lead id, each list as
        :meth:`Storage.enrollments_of` gives it (ordered by ``(entered_at, id)``; the caller's
        to keep), with an empty list for a lead without any: every id given is in the
        answer. One read for a batch; :meth:`Engine.record_many
        <nurturekit.engine.Engine.record_many>` reads the enrolments per activity on a store
        without it."""
        ...
