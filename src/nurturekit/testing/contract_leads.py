"""The storage contract for leads and their state, activities and transactions."""

from __future__ import annotations

from datetime import timedelta

import attrs

from nurturekit.lead import Contactability
from nurturekit.messages import SendStatus
from nurturekit.ports import Storage
from nurturekit.scenario import EnrollmentStatus
from nurturekit.testing.factories import (
    LEASE,
    T0,
    _Boom,
    _raises,
    _state,
    make_activity,
    make_enrollment,
    make_lead,
    make_mail,
)


class LeadContract:
    """Leads, lead state, activities and transactions."""

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
