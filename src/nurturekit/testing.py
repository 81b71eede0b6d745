"""Test helpers for people writing their own adapters: the storage contract suite.

Every storage adapter — the in-memory one, SQLite, PostgreSQL, and yours — must behave the same
way. :class:`StorageContract` is that behaviour as tests. Subclass it in a pytest module and give
it a ``storage`` fixture that returns a fresh, empty store::

    import pytest
    from nurturekit.testing import StorageContract

    class TestMyStorage(StorageContract):
        @pytest.fixture
        def storage(self, tmp_path):
            store = MyStorage(tmp_path / "db")
            yield store
            store.close()

pytest then runs every ``test_*`` method below against your store. The suite needs pytest (a
test-time dependency only); importing this module does not.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs

from nurturekit.activity import Activity
from nurturekit.errors import StorageError
from nurturekit.handoff import Handoff, HandoffStatus
from nurturekit.lead import Contactability, ContactStatus, Lead
from nurturekit.messages import OutgoingMail, Sender, SendStatus
from nurturekit.ports import LeadState, Storage
from nurturekit.scenario import Enrollment, EnrollmentStatus
from nurturekit.scoring import Contribution, ScoreCard
from nurturekit.stages import StageMove

__all__ = [
    "StorageContract",
    "make_activity",
    "make_enrollment",
    "make_handoff",
    "make_lead",
    "make_mail",
]

T0 = datetime(2026, 4, 1, 9, 0, tzinfo=timezone.utc)
LEASE = timedelta(minutes=5)
SENDER = Sender(
    name="Example KK",
    address="news@example.co.jp",
    postal_address="1-2-3 Shibuya, Tokyo",
    unsubscribe_mailto="unsubscribe@example.co.jp",
)


def make_lead(lead_id: str = "l1", **changes: Any) -> Lead:
    """A valid lead; keyword arguments override its fields."""
    fields: dict[str, Any] = {
        "id": lead_id,
        "email": f"{lead_id}@example.co.jp",
        "name": "田中",
        "attributes": {"industry": "manufacturing", "employees": 120, "tags": ["a", "b"]},
    }
    fields.update(changes)
    return Lead(**fields)


def make_activity(
    lead_id: str = "l1", minutes: float = 0, kind: str = "page_view", **props: Any
) -> Activity:
    """An activity of ``lead_id`` at ``T0 + minutes``."""
    return Activity(
        lead_id=lead_id, kind=kind, at=T0 + timedelta(minutes=minutes), properties=props
    )


def make_enrollment(
    number: int = 1,
    lead_id: str = "l1",
    due: datetime | None = T0,
    status: EnrollmentStatus = EnrollmentStatus.ACTIVE,
    scenario: str = "follow-up",
) -> Enrollment:
    """An enrolment of ``lead_id`` in ``scenario``, due at ``due``."""
    return Enrollment(
        id=f"{scenario}/{lead_id}/{number}",
        scenario=scenario,
        lead_id=lead_id,
        number=number,
        status=status,
        step=None if status.ended else "thanks",
        due_at=None if status.ended else due,
        entered_at=T0 + timedelta(seconds=number),
    )


def make_mail(
    key: str = "k1", lead_id: str = "l1", minutes: float = 0, marketing: bool = True
) -> OutgoingMail:
    """A mail as the engine writes it to the outbox."""
    return OutgoingMail(
        key=key,
        message_id=f"<{key}@example.co.jp>",
        lead_id=lead_id,
        to=f"{lead_id}@example.co.jp",
        to_ascii=f"{lead_id}@example.co.jp",
        sender=SENDER,
        subject="件名",
        text="本文",
        headers=(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),),
        created_at=T0 + timedelta(minutes=minutes),
        marketing=marketing,
        scenario="follow-up",
        step="thanks",
        enrollment_id="follow-up/l1/1",
        template="thanks",
    )


def make_handoff(
    handoff_id: str = "h1", lead_id: str = "l1", minutes: float = 0, **changes: Any
) -> Handoff:
    """A hand-off of ``lead_id`` made at ``T0 + minutes``, due for first contact a day later."""
    at = T0 + timedelta(minutes=minutes)
    fields: dict[str, Any] = {
        "id": handoff_id,
        "lead_id": lead_id,
        "at": at,
        "definition": "score + pricing + size",
        "explanation": "✓ all of: …",
        "score": 115,
        "score_explanation": "score 115 (fit 45, engagement 70)",
        "recent": ("2026-04-01T08:00:00+00:00 page_view page=pricing",),
        "owner": "sato",
        "deadline": at + timedelta(days=1),
    }
    fields.update(changes)
    return Handoff(**fields)


def _state(lead_id: str = "l1") -> LeadState:
    entry = Contribution("download", "engagement", 20, 20, T0, "key-1", "download")
    card = ScoreCard(
        lead_id=lead_id,
        fit=(Contribution("big company", "fit", 10, 10, None, None, None),),
        fit_total=10,
        entries=[entry],
        engagement_points=20,
        seen={"key-1"},
        last_at=T0,
        last_key="key-1",
    )
    moves = [
        StageMove(
            lead_id=lead_id, source=None, target="awareness", at=T0, reason="new", manual=False
        )
    ]
    return LeadState(lead_id=lead_id, card=card, moves=moves, levels=frozenset({"MQL"}))


class _Boom(Exception):
    pass


def _raises(error: type[BaseException], call: Callable[[], object]) -> None:
    try:
        call()
    except error:
        return
    raise AssertionError(f"expected {error.__name__}")


class StorageContract:
    """The behaviour every :class:`~nurturekit.ports.Storage` adapter must have.

    Subclass it with a ``storage`` fixture (see the module docstring).
    """

    # ------------------------------------------------------------------ leads and state

    def test_a_lead_is_stored_read_back_and_replaced(self, storage: Storage) -> None:
        assert storage.get_lead("l1") is None
        lead = make_lead(created_at=T0)
        storage.put_lead(lead)
        assert storage.get_lead("l1") == lead
        gone = attrs.evolve(lead, contactability=Contactability(status="unsubscribed", since=T0))
        storage.put_lead(gone)
        assert storage.get_lead("l1") == gone
        storage.put_lead(make_lead("l2"))
        assert sorted(lead.id for lead in storage.leads()) == ["l1", "l2"]

    def test_lead_state_round_trips_and_is_not_changed_behind_the_stores_back(
        self, storage: Storage
    ) -> None:
        assert storage.get_state("l1") is None
        storage.put_state(_state())
        read = storage.get_state("l1")
        assert read is not None
        assert read.card.entries == _state().card.entries
        assert read.card.fit == _state().card.fit
        assert read.card.seen == {"key-1"}
        assert read.moves == _state().moves
        assert read.levels == frozenset({"MQL"})
        read.card.entries.append(read.card.entries[0])
        read.moves.append(read.moves[0])
        again = storage.get_state("l1")
        assert again is not None
        assert len(again.card.entries) == 1 and len(again.moves) == 1

    def test_a_state_changed_in_an_undone_transaction_is_as_it_was(self, storage: Storage) -> None:
        storage.put_state(_state())

        def doomed() -> None:
            with storage.transaction():
                state = storage.get_state("l1")
                assert state is not None
                state.card.entries.append(state.card.entries[0])
                state.card.seen.add("key-2")
                state.moves.append(state.moves[0])
                state.levels = frozenset()
                storage.put_state(state)
                raise _Boom

        _raises(_Boom, doomed)
        again = storage.get_state("l1")
        assert again is not None
        assert len(again.card.entries) == 1 and again.card.seen == {"key-1"}
        assert len(again.moves) == 1 and again.levels == frozenset({"MQL"})

    def test_leads_and_states_are_read_a_batch_at_a_time(self, storage: Storage) -> None:
        storage.put_lead(make_lead("l1"))
        storage.put_lead(make_lead("l2"))
        storage.put_state(_state("l1"))
        assert storage.get_leads([]) == {}
        assert storage.get_states([]) == {}
        leads = storage.get_leads(["l2", "nobody", "l1", "l2"])
        assert leads == {"l1": make_lead("l1"), "l2": make_lead("l2")}
        states = storage.get_states(iter(["l1", "l2", "nobody"]))
        assert list(states) == ["l1"]
        assert states["l1"].card.entries == _state().card.entries
        assert states["l1"].moves == _state().moves
        # Each state is the caller's to change, as from get_state.
        states["l1"].card.entries.append(states["l1"].card.entries[0])
        states["l1"].moves.append(states["l1"].moves[0])
        again = storage.get_state("l1")
        assert again is not None
        assert len(again.card.entries) == 1 and len(again.moves) == 1
        with storage.transaction():  # a batch read inside a transaction sees its writes
            storage.put_lead(make_lead("l3"))
            storage.put_state(_state("l3"))
            assert set(storage.get_leads(["l3"])) == {"l3"}
            assert set(storage.get_states(["l3"])) == {"l3"}

    # ------------------------------------------------------------------ activities

    def test_an_activity_key_is_stored_once(self, storage: Storage) -> None:
        first = make_activity(page="pricing")
        assert storage.add_activity(first) is True
        assert storage.add_activity(first) is False
        assert storage.add_activity(attrs.evolve(first, properties={"page": "blog"})) is False
        assert list(storage.activities("l1")) == [first]

    def test_activities_come_back_in_time_order_whatever_the_insert_order(
        self, storage: Storage
    ) -> None:
        made = [make_activity(minutes=m, n=m) for m in (5, 1, 3, 1.5, 0)]
        for activity in made:
            storage.add_activity(activity)
        storage.add_activity(make_activity("l2", minutes=2))
        got = list(storage.activities("l1"))
        assert got == sorted(made, key=lambda a: (a.at, a.key))
        assert list(storage.activities("nobody")) == []

    def test_activities_of_kinds(self, storage: Storage) -> None:
        storage.add_activity(make_activity(kind="email_open", ref="a"))
        storage.add_activity(make_activity("l2", kind="email_click", ref="b"))
        storage.add_activity(make_activity(kind="page_view"))
        kinds = sorted(a.kind for a in storage.activities_of_kinds(["email_open", "email_click"]))
        assert kinds == ["email_click", "email_open"]

    # ------------------------------------------------------------------ transactions

    def test_an_error_inside_a_transaction_undoes_every_write(self, storage: Storage) -> None:
        storage.put_lead(make_lead())
        storage.put_enrollment(make_enrollment(1))

        def doomed() -> None:
            with storage.transaction():
                storage.put_lead(make_lead(name="changed"))
                storage.put_lead(make_lead("l2"))
                storage.put_state(_state())
                storage.add_activity(make_activity())
                storage.put_enrollment(make_enrollment(1, status=EnrollmentStatus.COMPLETED))
                storage.put_enrollment(make_enrollment(2))
                storage.add_to_outbox(make_mail())
                with storage.transaction():  # nested: joins the outer one
                    storage.add_activity(make_activity(minutes=1))
                raise _Boom

        _raises(_Boom, doomed)
        lead = storage.get_lead("l1")
        assert lead is not None and lead.name == "田中"
        assert storage.get_lead("l2") is None
        assert [each.id for each in storage.leads()] == ["l1"]
        assert storage.get_leads(["l1", "l2"]) == {"l1": lead}
        assert storage.get_state("l1") is None
        assert list(storage.activities("l1")) == []
        assert [e.status for e in storage.enrollments_of("l1")] == [EnrollmentStatus.ACTIVE]
        assert list(storage.outbox()) == []
        assert storage.pending_mail(10) == []
        assert [e.id for e in storage.claim_due(T0, 10, "w", LEASE)] == ["follow-up/l1/1"]

    def test_an_error_in_a_nested_transaction_undoes_the_outer_one_too(
        self, storage: Storage
    ) -> None:
        def doomed() -> None:
            with storage.transaction():
                storage.put_lead(make_lead())
                with storage.transaction():
                    storage.add_activity(make_activity())
                    raise _Boom

        _raises(_Boom, doomed)
        assert storage.get_lead("l1") is None
        assert list(storage.activities("l1")) == []

    def test_an_error_in_a_savepoint_undoes_only_its_writes(self, storage: Storage) -> None:
        storage.put_enrollment(make_enrollment(1))
        storage.put_enrollment(make_enrollment(2))
        claimed = storage.claim_due(T0, 10, "w", LEASE)
        assert len(claimed) == 2

        def doomed() -> None:
            with storage.savepoint():
                storage.put_lead(make_lead("l2"))
                storage.put_state(_state("l1"))
                storage.add_activity(make_activity(minutes=1))
                storage.put_enrollment(make_enrollment(1, status=EnrollmentStatus.COMPLETED))
                storage.add_to_outbox(make_mail("k2"))
                storage.mark_sent("k1", SendStatus.SENT, "", T0)
                with storage.transaction():  # nested: joins the savepoint
                    storage.add_activity(make_activity(minutes=2))
                raise _Boom

        with storage.transaction():
            storage.put_lead(make_lead("l1"))
            storage.add_to_outbox(make_mail("k1"))
            _raises(_Boom, doomed)
            with storage.savepoint():  # a savepoint that ends normally keeps its writes
                storage.add_activity(make_activity(minutes=3))
                storage.put_enrollment(make_enrollment(2, status=EnrollmentStatus.COMPLETED))
            storage.put_lead(make_lead("l3"))
        assert sorted(lead.id for lead in storage.leads()) == ["l1", "l3"]
        assert storage.get_state("l1") is None
        assert [a.at for a in storage.activities("l1")] == [T0 + timedelta(minutes=3)]
        assert [e.status for e in storage.enrollments_of("l1")] == [
            EnrollmentStatus.ACTIVE,
            EnrollmentStatus.COMPLETED,
        ]
        assert [(e.mail.key, e.status) for e in storage.outbox()] == [("k1", None)]
        # Enrolment 1 is still claimed by "w": the savepoint's put_enrollment was undone.
        assert storage.claim_due(T0, 10, "x", LEASE) == []
        assert [e.id for e in storage.claim_due(T0 + LEASE, 10, "x", LEASE)] == ["follow-up/l1/1"]

    def test_an_error_after_a_savepoint_undoes_it_with_its_transaction(
        self, storage: Storage
    ) -> None:
        def doomed() -> None:
            with storage.transaction():
                storage.put_lead(make_lead())
                with storage.savepoint():
                    storage.add_activity(make_activity())
                raise _Boom

        _raises(_Boom, doomed)
        assert storage.get_lead("l1") is None
        assert list(storage.activities("l1")) == []

    def test_a_savepoint_outside_a_transaction_is_a_transaction(self, storage: Storage) -> None:
        def doomed() -> None:
            with storage.savepoint():
                storage.put_lead(make_lead())
                raise _Boom

        _raises(_Boom, doomed)
        assert storage.get_lead("l1") is None
        with storage.savepoint():
            storage.put_lead(make_lead())
        assert storage.get_lead("l1") is not None

    def test_a_transaction_keeps_its_writes(self, storage: Storage) -> None:
        with storage.transaction():
            storage.put_lead(make_lead())
            storage.add_activity(make_activity())
        assert storage.get_lead("l1") is not None
        assert len(list(storage.activities("l1"))) == 1

    # ------------------------------------------------------------------ enrolments

    def test_enrollments_of_a_lead_oldest_entry_first(self, storage: Storage) -> None:
        storage.put_enrollment(make_enrollment(2, status=EnrollmentStatus.ACTIVE))
        storage.put_enrollment(make_enrollment(1, status=EnrollmentStatus.COMPLETED))
        storage.put_enrollment(make_enrollment(1, scenario="other"))
        storage.put_enrollment(make_enrollment(1, lead_id="l2"))
        got = [e.id for e in storage.enrollments_of("l1")]
        assert got == ["follow-up/l1/1", "other/l1/1", "follow-up/l1/2"]
        assert storage.enrollments_of("l1")[0].status is EnrollmentStatus.COMPLETED
        assert sorted(e.id for e in storage.enrollments("other")) == ["other/l1/1"]
        assert len(list(storage.enrollments())) == 4

    def test_an_enrolment_put_under_another_lead_is_that_leads_alone(
        self, storage: Storage
    ) -> None:
        first = make_enrollment(1)
        storage.put_enrollment(first)
        moved = attrs.evolve(first, lead_id="l2")

        def doomed() -> None:
            with storage.transaction():
                storage.put_enrollment(moved)
                assert [e.lead_id for e in storage.enrollments_of("l2")] == ["l2"]
                raise _Boom

        _raises(_Boom, doomed)
        assert storage.enrollments_of("l1") == [first]
        assert storage.enrollments_of("l2") == []
        storage.put_enrollment(moved)
        assert storage.enrollments_of("l1") == []
        assert storage.enrollments_of("l2") == [moved]

    def test_claim_due_returns_what_is_due_earliest_first_ties_by_id(
        self, storage: Storage
    ) -> None:
        storage.put_enrollment(make_enrollment(3, due=T0))
        storage.put_enrollment(make_enrollment(1, due=T0))
        storage.put_enrollment(make_enrollment(2, due=T0 - timedelta(minutes=1)))
        storage.put_enrollment(make_enrollment(4, due=T0 + timedelta(seconds=1)))
        storage.put_enrollment(make_enrollment(5, status=EnrollmentStatus.CONVERTED))
        waiting = attrs.evolve(make_enrollment(6, due=T0), status=EnrollmentStatus.WAITING)
        storage.put_enrollment(waiting)
        got = [e.id for e in storage.claim_due(T0, 10, "w1", LEASE)]
        assert got == ["follow-up/l1/2", "follow-up/l1/1", "follow-up/l1/3", "follow-up/l1/6"]

    def test_claim_due_honours_the_limit(self, storage: Storage) -> None:
        for n in range(1, 8):
            storage.put_enrollment(make_enrollment(n, due=T0))
        first = storage.claim_due(T0, 3, "w1", LEASE)
        second = storage.claim_due(T0, 3, "w2", LEASE)
        third = storage.claim_due(T0, 3, "w3", LEASE)
        ids = [e.id for e in first + second + third]
        assert [len(first), len(second), len(third)] == [3, 3, 1]
        assert len(set(ids)) == 7

    def test_two_claims_at_the_same_instant_never_share_an_enrolment(
        self, storage: Storage
    ) -> None:
        for n in range(1, 21):
            storage.put_enrollment(make_enrollment(n, due=T0))
        one = {e.id for e in storage.claim_due(T0, 15, "w1", LEASE)}
        two = {e.id for e in storage.claim_due(T0, 15, "w2", LEASE)}
        assert not one & two
        assert len(one | two) == 20

    def test_a_claim_lives_until_put_back_or_its_lease_runs_out(self, storage: Storage) -> None:
        storage.put_enrollment(make_enrollment(1, due=T0))
        (claimed,) = storage.claim_due(T0, 10, "w1", LEASE)
        assert storage.claim_due(T0 + timedelta(minutes=4), 10, "w2", LEASE) == []
        taken_over = storage.claim_due(T0 + LEASE, 10, "w2", LEASE)
        assert [e.id for e in taken_over] == [claimed.id]
        storage.put_enrollment(attrs.evolve(claimed, due_at=T0 + timedelta(days=3), step="case"))
        assert storage.claim_due(T0 + timedelta(days=1), 10, "w3", LEASE) == []
        (later,) = storage.claim_due(T0 + timedelta(days=3), 10, "w3", LEASE)
        assert later.step == "case"

    def test_a_lease_is_renewed_only_by_the_worker_that_holds_it(self, storage: Storage) -> None:
        storage.put_enrollment(make_enrollment(1, due=T0))
        (claimed,) = storage.claim_due(T0, 10, "w1", LEASE)
        assert storage.renew_lease(claimed.id, "w2", T0 + LEASE * 3) is False
        assert storage.renew_lease(claimed.id, "w1", T0 + LEASE * 3) is True
        assert storage.claim_due(T0 + LEASE * 2, 10, "w2", LEASE) == []
        (taken,) = storage.claim_due(T0 + LEASE * 3, 10, "w2", LEASE)
        assert storage.renew_lease(taken.id, "w1", T0 + LEASE * 9) is False
        storage.put_enrollment(taken)
        assert storage.renew_lease(taken.id, "w2", T0 + LEASE * 9) is False

    def test_a_step_removed_between_claim_and_release_is_not_claimed_again(
        self, storage: Storage
    ) -> None:
        storage.put_enrollment(make_enrollment(1, due=T0))
        (claimed,) = storage.claim_due(T0, 10, "w1", LEASE)
        ended = attrs.evolve(
            claimed, status=EnrollmentStatus.EXITED, step=None, due_at=None, ended_at=T0
        )
        storage.put_enrollment(ended)
        assert storage.claim_due(T0 + timedelta(days=1), 10, "w2", LEASE) == []
        assert storage.enrollments_of("l1") == [ended]

    def test_put_back_with_the_same_due_time_is_claimable_once(self, storage: Storage) -> None:
        storage.put_enrollment(make_enrollment(1, due=T0))
        (claimed,) = storage.claim_due(T0, 10, "w1", LEASE)
        storage.put_enrollment(claimed)
        storage.put_enrollment(claimed)
        assert [e.id for e in storage.claim_due(T0, 10, "w2", LEASE)] == [claimed.id]
        assert storage.claim_due(T0, 10, "w3", LEASE) == []

    # ------------------------------------------------------------------ outbox

    def test_the_outbox_keeps_each_key_once_and_tracks_what_became_of_it(
        self, storage: Storage
    ) -> None:
        assert storage.add_to_outbox(make_mail("k1", minutes=0)) is True
        assert storage.add_to_outbox(make_mail("k1", minutes=9)) is False
        storage.add_to_outbox(make_mail("k2", minutes=1))
        storage.add_to_outbox(make_mail("k3", minutes=2))
        assert [m.key for m in storage.pending_mail(10)] == ["k1", "k2", "k3"]
        assert [m.key for m in storage.pending_mail(2)] == ["k1", "k2"]
        storage.mark_sent("k1", SendStatus.SENT, "", T0)
        storage.mark_sent("k2", SendStatus.DEFERRED, "451 try later", T0)
        storage.mark_sent("k3", SendStatus.BOUNCED, "550 no such user", T0)
        assert [m.key for m in storage.pending_mail(10)] == ["k2"]
        storage.mark_sent("k2", SendStatus.SENT, "", T0 + timedelta(minutes=5))
        assert storage.pending_mail(10) == []
        entries = {e.mail.key: e for e in storage.outbox()}
        assert entries["k1"].mail == make_mail("k1", minutes=0)
        assert (entries["k2"].status, entries["k2"].attempts) == (SendStatus.SENT, 2)
        assert entries["k2"].updated_at == T0 + timedelta(minutes=5)
        assert (entries["k3"].status, entries["k3"].detail) == (
            SendStatus.BOUNCED,
            "550 no such user",
        )

    def test_write_steps_writes_the_outbox_then_the_enrolments(self, storage: Storage) -> None:
        storage.write_steps([], [])
        storage.add_to_outbox(make_mail("k1", minutes=0))
        storage.put_enrollment(make_enrollment(1))
        storage.put_enrollment(make_enrollment(2))
        assert len(storage.claim_due(T0, 10, "w", LEASE)) == 2
        done = make_enrollment(1, status=EnrollmentStatus.COMPLETED)
        later = make_enrollment(2, due=T0 + timedelta(days=1))
        copy = attrs.evolve(make_mail("k1", minutes=5), subject="changed")
        storage.write_steps([copy, make_mail("k2", minutes=1)], [done, later])
        # k1 was there: skipped, as add_to_outbox does.
        sent = {e.mail.key: e.mail for e in storage.outbox()}
        assert sorted(sent) == ["k1", "k2"] and sent["k1"].subject == "件名"
        assert [m.key for m in storage.pending_mail(10)] == ["k1", "k2"]
        assert storage.marketing_sends_since("l1", T0) == [T0, T0 + timedelta(minutes=1)]
        assert [e.status for e in storage.enrollments_of("l1")] == [
            EnrollmentStatus.COMPLETED,
            EnrollmentStatus.ACTIVE,
        ]
        # Put back, so no longer claimed: due again when its new time comes.
        assert storage.claim_due(T0 + timedelta(hours=1), 10, "x", LEASE) == []
        later_ids = storage.claim_due(T0 + timedelta(days=1), 10, "x", LEASE)
        assert [e.id for e in later_ids] == [later.id]

    def test_write_steps_takes_a_key_or_an_enrolment_twice(self, storage: Storage) -> None:
        first, second = make_mail("k1"), attrs.evolve(make_mail("k1"), subject="second")
        ended = make_enrollment(1, status=EnrollmentStatus.COMPLETED)
        exited = make_enrollment(1, status=EnrollmentStatus.EXITED)
        storage.write_steps([first, second], [ended, exited])  # no due time at all
        assert [e.mail.subject for e in storage.outbox()] == ["件名"]  # the first one stays
        assert [e.status for e in storage.enrollments_of("l1")] == [EnrollmentStatus.EXITED]
        assert storage.claim_due(T0 + timedelta(days=365), 10, "w", LEASE) == []

    def test_write_steps_is_undone_with_its_transaction(self, storage: Storage) -> None:
        def doomed() -> None:
            with storage.transaction():
                storage.write_steps([make_mail("k1")], [make_enrollment(1)])
                raise _Boom

        _raises(_Boom, doomed)
        assert list(storage.outbox()) == []
        assert storage.enrollments_of("l1") == []

    def test_sends_are_claimed_by_one_worker_at_a_time(self, storage: Storage) -> None:
        for n in range(5):
            storage.add_to_outbox(make_mail(f"k{n}", minutes=n))
        one = storage.claim_mail(T0, 3, "w1", LEASE)
        two = storage.claim_mail(T0, 3, "w2", LEASE)
        assert [m.key for m in one] == ["k0", "k1", "k2"]
        assert [m.key for m in two] == ["k3", "k4"]
        assert storage.claim_mail(T0, 10, "w3", LEASE) == []
        storage.mark_sent("k0", SendStatus.SENT, "", T0)
        storage.mark_sent("k1", SendStatus.DEFERRED, "451 later", T0, T0 + LEASE)
        # k2 is still claimed by w1; k1 waits for its retry time.
        assert storage.claim_mail(T0 + timedelta(minutes=1), 10, "w3", LEASE) == []
        # A lease that ends exactly now has expired, and k1's retry time has come.
        again = storage.claim_mail(T0 + LEASE, 10, "w3", LEASE)
        assert [m.key for m in again] == ["k1", "k2", "k3", "k4"]
        assert [m.key for m in storage.pending_mail(10)] == ["k1", "k2", "k3", "k4"]
        (entry,) = [e for e in storage.outbox() if e.mail.key == "k1"]
        assert (entry.status, entry.retry_at, entry.attempts) == (
            SendStatus.DEFERRED,
            T0 + LEASE,
            1,
        )

    def test_a_deferred_send_without_a_retry_time_is_claimable_at_once(
        self, storage: Storage
    ) -> None:
        storage.add_to_outbox(make_mail("k1"))
        storage.claim_mail(T0, 10, "w1", LEASE)
        storage.mark_sent("k1", SendStatus.DEFERRED, "451 later", T0)
        assert [m.key for m in storage.claim_mail(T0, 10, "w2", LEASE)] == ["k1"]

    def test_rejected_failed_and_suppressed_sends_are_final(self, storage: Storage) -> None:
        for key, status in [
            ("k1", SendStatus.REJECTED),
            ("k2", SendStatus.FAILED),
            ("k3", SendStatus.SUPPRESSED),
        ]:
            storage.add_to_outbox(make_mail(key))
            storage.mark_sent(key, status, f"{status.value}: why", T0, T0)
        assert storage.pending_mail(10) == []
        assert storage.claim_mail(T0 + timedelta(days=30), 10, "w", LEASE) == []
        entries = {e.mail.key: e for e in storage.outbox()}
        assert entries["k2"].detail == "failed: why" and entries["k2"].retry_at is None

    def test_hold_mail_answers_only_for_the_claim_that_holds_the_send(
        self, storage: Storage
    ) -> None:
        storage.put_lead(make_lead("l1"))
        for n in range(3):
            storage.add_to_outbox(make_mail(f"k{n}", minutes=n))
        storage.claim_mail(T0, 2, "w1", LEASE)  # k0, k1
        held = storage.hold_mail(["k0", "k1", "k2"], "w1")
        assert sorted(held) == ["k0", "k1"]
        assert held["k0"].contact is ContactStatus.SUBSCRIBED and held["k0"].attempts == 0
        assert storage.hold_mail(["k0"], "w2") == {}
        # w1's lease ran out and w2 took k0 over: w1's fence no longer passes for it.
        assert [m.key for m in storage.claim_mail(T0 + LEASE, 1, "w2", LEASE)] == ["k0"]
        assert sorted(storage.hold_mail(["k0", "k1"], "w1")) == ["k1"]
        assert sorted(storage.hold_mail(["k0", "k1"], "w2")) == ["k0"]
        # A marked send is held by nobody.
        storage.mark_sent("k0", SendStatus.SENT, "", T0 + LEASE)
        assert storage.hold_mail(["k0"], "w2") == {}

    def test_hold_mail_renews_the_leases_it_reads(self, storage: Storage) -> None:
        storage.add_to_outbox(make_mail("k1"))
        storage.claim_mail(T0, 10, "w1", LEASE)
        assert sorted(storage.hold_mail(["k1"], "w1", T0 + 3 * LEASE)) == ["k1"]
        assert storage.claim_mail(T0 + 2 * LEASE, 10, "w2", LEASE) == []
        assert [m.key for m in storage.claim_mail(T0 + 3 * LEASE, 10, "w2", LEASE)] == ["k1"]
        # Renewing to a time already past gives the send back.
        storage.hold_mail(["k1"], "w2", T0)
        assert [m.key for m in storage.claim_mail(T0 + 3 * LEASE, 10, "w3", LEASE)] == ["k1"]

    def test_hold_mail_reads_the_leads_suppression_fresh(self, storage: Storage) -> None:
        for lead_id in ("l1", "l2", "l3"):
            storage.put_lead(make_lead(lead_id))
            storage.add_to_outbox(make_mail(f"k-{lead_id}", lead_id=lead_id))
        storage.add_to_outbox(make_mail("k-gone", lead_id="gone"))
        storage.claim_mail(T0, 10, "w1", LEASE)
        keys = ["k-l1", "k-l2", "k-l3", "k-gone"]
        before = storage.hold_mail(keys, "w1")
        assert all(not c.with_sales and not c.disqualified for c in before.values())
        unsubscribed = Contactability(status=ContactStatus.UNSUBSCRIBED, since=T0)
        storage.put_lead(make_lead("l1", contactability=unsubscribed))
        sales = _state("l2")
        sales.with_sales = True
        storage.put_state(sales)
        with storage.transaction():
            dropped = _state("l3")
            dropped.disqualified = True
            storage.put_state(dropped)
        after = storage.hold_mail(keys, "w1")
        assert after["k-l1"].contact is ContactStatus.UNSUBSCRIBED
        assert after["k-l2"].with_sales and not after["k-l2"].disqualified
        assert after["k-l3"].disqualified and not after["k-l3"].with_sales
        assert after["k-gone"].contact is None

    def test_mark_and_hold_records_one_send_and_checks_the_next(self, storage: Storage) -> None:
        storage.put_lead(make_lead("l1"))
        for n in range(3):
            storage.add_to_outbox(make_mail(f"k{n}", minutes=n))
        storage.claim_mail(T0, 2, "w1", LEASE)  # k0, k1
        held = storage.mark_and_hold("k0", SendStatus.SENT, "", T0, None, "k1", "w1")
        assert sorted(held) == ["k1"] and held["k1"].contact is ContactStatus.SUBSCRIBED
        assert [m.key for m in storage.pending_mail(10)] == ["k1", "k2"]
        # The next send not held by this claim: marked all the same, nothing held.
        assert storage.mark_and_hold("k1", SendStatus.DEFERRED, "451", T0, T0, "k2", "w1") == {}
        (entry,) = [e for e in storage.outbox() if e.mail.key == "k1"]
        assert (entry.status, entry.retry_at, entry.attempts) == (SendStatus.DEFERRED, T0, 1)
        _raises(
            StorageError,
            lambda: storage.mark_and_hold("nope", SendStatus.SENT, "", T0, None, "k2", "w1"),
        )
        _raises(StorageError, lambda: storage.mark_sent("nope", SendStatus.SENT, "", T0))

    def test_renew_leases_is_the_fence_of_a_batch_of_steps(self, storage: Storage) -> None:
        for n in (1, 2, 3):
            storage.put_enrollment(make_enrollment(n))
        ids = [e.id for e in storage.claim_due(T0, 2, "w1", LEASE)]
        third = make_enrollment(3).id
        assert storage.renew_leases([*ids, third], "w1", T0 + 2 * LEASE) == set(ids)
        assert storage.renew_leases(ids, "w2", T0 + 9 * LEASE) == set()
        # Renewed: not claimable when the first lease would have run out …
        assert [e.id for e in storage.claim_due(T0 + LEASE, 10, "w2", LEASE)] == [
            make_enrollment(3).id
        ]
        # … and claimable once the renewed one ends (a lease ending at now has expired).
        taken = storage.claim_due(T0 + 2 * LEASE, 10, "w3", LEASE)
        assert set(ids) <= {e.id for e in taken}
        assert storage.renew_leases(ids, "w1", T0 + 9 * LEASE) == set()
        # A renewal to a time already past gives the claims back.
        assert storage.renew_leases(ids, "w3", T0) == set(ids)
        assert len(storage.claim_due(T0 + 2 * LEASE, 10, "w4", LEASE)) == 2

    def test_renew_leases_without_until_only_reads_the_claims(self, storage: Storage) -> None:
        for n in (1, 2, 3):
            storage.put_enrollment(make_enrollment(n))
        ids = [e.id for e in storage.claim_due(T0, 2, "w1", LEASE)]
        third = make_enrollment(3).id
        with storage.transaction():
            assert storage.renew_leases([*ids, third], "w1") == set(ids)
            assert storage.renew_leases(ids, "w2") == set()
        # The leases were left as they were: both are claimable once the first one ends.
        assert {e.id for e in storage.claim_due(T0 + LEASE, 10, "w2", LEASE)} == {*ids, third}
        assert storage.renew_leases(ids, "w1") == set()
        assert storage.renew_leases(ids, "w2") == set(ids)

    def test_notices_are_claimed_by_one_worker_at_a_time(self, storage: Storage) -> None:
        for n in range(3):
            storage.put_handoff(make_handoff(f"h{n}", minutes=n))
        one = storage.claim_notices(T0, 2, "w1", LEASE)
        assert [h.id for h in one] == ["h0", "h1"]
        assert [h.id for h in storage.claim_notices(T0, 5, "w2", LEASE)] == ["h2"]
        assert storage.claim_notices(T0, 5, "w3", LEASE) == []
        # Putting a hand-off keeps its claim; once told, the notice is owed no more.
        storage.put_handoff(attrs.evolve(one[0], notify_attempts=1))
        storage.put_handoff(attrs.evolve(one[1], notified_at=T0))
        assert storage.claim_notices(T0 + timedelta(minutes=1), 5, "w3", LEASE) == []
        assert [h.id for h in storage.claim_notices(T0 + LEASE, 5, "w3", LEASE)] == [
            "h0",
            "h2",
        ]
        assert [h.id for h in storage.awaiting_notice(10)] == ["h0", "h2"]

    def test_closing_twice_is_fine(self, storage: Storage) -> None:
        storage.close()
        storage.close()

    # ------------------------------------------------------------------ threads

    def test_two_threads_never_see_each_others_transaction_half_done(
        self, storage: Storage
    ) -> None:
        storage.put_lead(make_lead("a", name="0"))
        storage.put_lead(make_lead("b", name="0"))
        seen: list[tuple[str, str]] = []
        errors: list[BaseException] = []
        done = threading.Event()

        def writer() -> None:
            try:
                for n in range(1, 60):
                    with storage.transaction():
                        storage.put_lead(make_lead("a", name=str(n)))
                        time.sleep(0.0005)
                        storage.put_lead(make_lead("b", name=str(n)))
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)
            finally:
                done.set()

        def reader() -> None:
            try:
                while not done.is_set():
                    with storage.transaction():
                        a, b = storage.get_lead("a"), storage.get_lead("b")
                    assert a is not None and b is not None
                    seen.append((a.name or "", b.name or ""))
            except BaseException as error:  # pragma: no cover - reported below
                errors.append(error)

        threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        assert seen and all(a == b for a, b in seen)
        final = storage.get_lead("b")
        assert final is not None and final.name == "59"

    def test_two_threads_claiming_sends_never_share_one(self, storage: Storage) -> None:
        for n in range(200):
            storage.add_to_outbox(make_mail(f"k{n:03}", minutes=n))
        claims: dict[str, list[str]] = {"w1": [], "w2": []}

        def work(worker: str) -> None:
            while batch := storage.claim_mail(T0, 7, worker, LEASE):
                for mail in batch:
                    claims[worker].append(mail.key)
                    storage.mark_sent(mail.key, SendStatus.SENT, "", T0)

        threads = [threading.Thread(target=work, args=(w,)) for w in claims]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        every = claims["w1"] + claims["w2"]
        assert sorted(every) == [f"k{n:03}" for n in range(200)]  # each once
        assert storage.pending_mail(10) == []

    # ------------------------------------------------------------------ two store objects

    def open_again(self, storage: Storage) -> Storage | None:
        """Another store object on the same database as ``storage``, or ``None`` when the
        store cannot have one (the in-memory store). Override it for a database store."""
        return None

    def test_two_store_objects_on_one_database_work_together(self, storage: Storage) -> None:
        other = self.open_again(storage)
        if other is None:
            import pytest

            pytest.skip("this store keeps its data in its own object: there is no second one")
        try:
            storage.put_lead(make_lead("l1", name="before"))
            storage.put_enrollment(make_enrollment(1))
            storage.put_enrollment(make_enrollment(2))
            assert other.get_lead("l1") == make_lead("l1", name="before")
            storage.put_lead(make_lead("l1", name="after"))
            seen = other.get_lead("l1")
            assert seen is not None and seen.name == "after"
            one = storage.claim_due(T0, 1, "w1", LEASE)
            two = other.claim_due(T0, 5, "w2", LEASE)
            assert len(one) == len(two) == 1 and one[0].id != two[0].id
            for n in range(4):
                storage.add_to_outbox(make_mail(f"k{n}", minutes=n))
            mine = storage.claim_mail(T0, 2, "w1", LEASE)
            theirs = other.claim_mail(T0, 5, "w2", LEASE)
            assert {m.key for m in mine}.isdisjoint(m.key for m in theirs)
            assert other.hold_mail([m.key for m in mine], "w2") == {}
        finally:
            other.close()

    def test_marketing_sends_since(self, storage: Storage) -> None:
        storage.add_to_outbox(make_mail("a", minutes=0))
        storage.add_to_outbox(make_mail("b", minutes=10))
        storage.add_to_outbox(make_mail("c", minutes=20, marketing=False))
        storage.add_to_outbox(make_mail("d", lead_id="l2", minutes=30))
        assert storage.marketing_sends_since("l1", T0 + timedelta(minutes=5)) == [
            T0 + timedelta(minutes=10)
        ]
        assert storage.marketing_sends_since("l1", T0) == [T0, T0 + timedelta(minutes=10)]

    # ------------------------------------------------------------------ hand-offs

    def test_handoffs_round_trip_in_time_order(self, storage: Storage) -> None:
        late = make_handoff("h2", minutes=10)
        early = make_handoff("h1", minutes=0)
        storage.put_handoff(late)
        storage.put_handoff(early)
        storage.put_handoff(make_handoff("h3", lead_id="l2"))
        assert storage.handoffs_of("l1") == [early, late]
        contacted = attrs.evolve(late, status=HandoffStatus.CONTACTED, contacted_at=T0)
        storage.put_handoff(contacted)
        assert storage.handoffs_of("l1")[1] == contacted
        assert sorted(h.id for h in storage.handoffs()) == ["h1", "h2", "h3"]

    def test_due_breaches_are_open_overdue_and_not_yet_escalated(self, storage: Storage) -> None:
        day = timedelta(days=1)
        storage.put_handoff(make_handoff("a", minutes=5))
        storage.put_handoff(make_handoff("b", minutes=0))
        storage.put_handoff(make_handoff("c", minutes=60))
        storage.put_handoff(make_handoff("d", status=HandoffStatus.CONTACTED, contacted_at=T0))
        storage.put_handoff(make_handoff("e", escalated_at=T0 + day))
        assert [h.id for h in storage.due_breaches(T0 + day + timedelta(minutes=5), 10)] == [
            "b",
            "a",
        ]
        assert [h.id for h in storage.due_breaches(T0 + day * 2, 1)] == ["b"]

    def test_handoffs_awaiting_a_notice(self, storage: Storage) -> None:
        storage.put_handoff(make_handoff("new", minutes=1))
        storage.put_handoff(make_handoff("told", notified_at=T0))
        storage.put_handoff(make_handoff("breached", notified_at=T0, escalated_at=T0))
        storage.put_handoff(
            make_handoff("done", notified_at=T0, escalated_at=T0, escalation_notified_at=T0)
        )
        assert [h.id for h in storage.awaiting_notice(10)] == ["breached", "new"]

    def test_round_robin_positions_rotate_per_team(self, storage: Storage) -> None:
        seen = [storage.next_in_rotation("sato,suzuki,tanaka", 3) for _ in range(7)]
        assert seen == [0, 1, 2, 0, 1, 2, 0]
        assert storage.next_in_rotation("kanto", 2) == 0
        assert storage.next_in_rotation("sato,suzuki,tanaka", 3) == 1

    def test_a_rotation_step_is_undone_with_its_transaction(self, storage: Storage) -> None:
        def doomed() -> None:
            with storage.transaction():
                storage.next_in_rotation("team", 2)
                storage.put_handoff(make_handoff())
                raise _Boom

        _raises(_Boom, doomed)
        assert storage.next_in_rotation("team", 2) == 0
        assert storage.handoffs_of("l1") == []
