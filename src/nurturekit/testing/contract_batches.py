"""The storage contract for the optional batch methods of bulk imports: the writes
:meth:`~nurturekit.ports.Storage.put_leads` and :meth:`~nurturekit.ports.Storage.put_states`,
and those of :class:`~nurturekit.ports.ReadAhead`
(:meth:`~nurturekit.ports.ReadAhead.activities_of`,
:meth:`~nurturekit.ports.ReadAhead.enrollments_of_leads`,
:meth:`~nurturekit.ports.ReadAhead.add_activities`).

The engine does without them (a row at a time), so on a store that lacks one its tests are
skipped, saying why. The in-memory store has the two writes and nothing of ``ReadAhead``: its
reads cost no query; SQLite has all but ``add_activities``: its writes cost no round trip.
"""

from __future__ import annotations

from typing import Any

import attrs

from nurturekit.lead import Contactability
from nurturekit.ports import Storage
from nurturekit.scenario import EnrollmentStatus
from nurturekit.storage.codec import state_to_json
from nurturekit.testing.factories import (
    T0,
    _Boom,
    _raises,
    _state,
    make_activity,
    make_enrollment,
    make_lead,
)


def _having(storage: Storage, name: str) -> Any:
    """``storage``'s optional method ``name``, or a skip when it has none."""
    method = getattr(storage, name, None)
    if method is None:
        import pytest

        pytest.skip(f"this store has no {name}: optional, the engine then works a row at a time")
    return method


class BatchContract:
    """Batch writes of leads and states, batch reads of histories and enrolments."""

    def test_put_leads_stores_each_lead_as_put_lead_does(self, storage: Storage) -> None:
        put_leads = _having(storage, "put_leads")
        storage.put_lead(make_lead("l2", name="before"))
        gone = Contactability(status="unsubscribed", since=T0)
        leads = [
            make_lead("l1", created_at=T0),
            make_lead("l2", name="after", contactability=gone),
            make_lead("l3", name="first"),
            make_lead("l3", name="second"),  # a later lead of an id replaces an earlier one
        ]
        put_leads(leads)
        put_leads([])
        assert storage.get_lead("l1") == leads[0]
        assert storage.get_lead("l2") == leads[1]
        assert storage.get_lead("l3") == leads[3]
        assert [lead.id for lead in storage.leads()] == ["l1", "l2", "l3"]
        assert storage.get_leads(["l1", "l2", "l3"]) == {
            "l1": leads[0],
            "l2": leads[1],
            "l3": leads[3],
        }

    def test_put_leads_in_an_undone_transaction_is_undone(self, storage: Storage) -> None:
        put_leads = _having(storage, "put_leads")
        storage.put_lead(make_lead("l1", name="kept"))

        def doomed() -> None:
            with storage.transaction():
                put_leads([make_lead("l1", name="changed"), make_lead("l2")])
                assert storage.get_lead("l1") == make_lead("l1", name="changed")
                raise _Boom

        _raises(_Boom, doomed)
        assert storage.get_lead("l1") == make_lead("l1", name="kept")
        assert storage.get_lead("l2") is None

    def test_put_states_stores_each_state_as_put_state_does(self, storage: Storage) -> None:
        put_states = _having(storage, "put_states")
        storage.put_state(_state("l2"))
        one = _state("l1")
        two = _state("l2")
        two.with_sales = True
        two.card.entries.append(two.card.entries[0])
        first = _state("l3")
        second = _state("l3")
        second.levels = frozenset()
        put_states([one, two, first, second])
        put_states([])
        for lead_id, expected in (("l1", one), ("l2", two), ("l3", second)):
            read = storage.get_state(lead_id)
            assert read is not None
            assert state_to_json(read) == state_to_json(expected)
        states = storage.get_states(["l1", "l2", "l3"])
        assert [state_to_json(states[i]) for i in ("l1", "l2", "l3")] == [
            state_to_json(one),
            state_to_json(two),
            state_to_json(second),
        ]

    def test_put_states_inside_a_transaction_is_read_back_and_undone_with_it(
        self, storage: Storage
    ) -> None:
        put_states = _having(storage, "put_states")
        storage.put_state(_state("l1"))
        changed = _state("l1")
        changed.disqualified = True
        changed.card.entries.append(changed.card.entries[0])

        def doomed() -> None:
            with storage.transaction():
                put_states([changed, _state("l2")])
                read = storage.get_state("l1")
                assert read is not None and read.disqualified
                assert len(read.card.entries) == 2
                assert set(storage.get_states(["l1", "l2"])) == {"l1", "l2"}
                raise _Boom

        _raises(_Boom, doomed)
        kept = storage.get_state("l1")
        assert kept is not None and not kept.disqualified and len(kept.card.entries) == 1
        assert storage.get_state("l2") is None
        with storage.transaction():
            put_states([changed])
        again = storage.get_state("l1")
        assert again is not None and again.disqualified and len(again.card.entries) == 2

    def test_activities_of_gives_each_leads_history_as_activities_does(
        self, storage: Storage
    ) -> None:
        activities_of = _having(storage, "activities_of")
        made = [make_activity("l1", minutes=m, n=m) for m in (5, 1, 3)]
        for activity in made:
            storage.add_activity(activity)
        storage.add_activity(make_activity("l2", minutes=2))
        assert activities_of([]) == {}
        found = activities_of(iter(["l2", "nobody", "l1", "l2"]))
        assert list(found) == ["l2", "nobody", "l1"]  # every id given, once, in order
        assert list(found["l1"]) == sorted(made, key=lambda a: (a.at, a.key))
        assert list(found["l1"]) == list(storage.activities("l1"))
        assert list(found["l2"]) == list(storage.activities("l2"))
        assert list(found["nobody"]) == []
        with storage.transaction():  # a batch read inside a transaction sees its writes
            late = make_activity("l1", minutes=0)
            storage.add_activity(late)
            storage.add_activity(make_activity("l3", minutes=1))
            inside = activities_of(["l1", "l3"])
            assert list(inside["l1"]) == [late, *sorted(made, key=lambda a: (a.at, a.key))]
            assert len(inside["l3"]) == 1

    def test_activities_of_after_an_undone_transaction_has_none_of_its_writes(
        self, storage: Storage
    ) -> None:
        activities_of = _having(storage, "activities_of")
        kept = make_activity("l1", minutes=1)
        storage.add_activity(kept)
        activities_of(["l1"])  # read (and perhaps cached) before

        def doomed() -> None:
            with storage.transaction():
                activities_of(["l1"])
                storage.add_activity(make_activity("l1", minutes=2))
                assert len(activities_of(["l1"])["l1"]) == 2
                raise _Boom

        _raises(_Boom, doomed)
        assert list(activities_of(["l1"])["l1"]) == [kept]

    def test_add_activities_stores_each_as_add_activity_does(self, storage: Storage) -> None:
        add_activities = _having(storage, "add_activities")
        before = make_activity("l1", minutes=1, n=1)
        storage.add_activity(before)
        again = attrs.evolve(before, properties={"n": 2})  # its key: stored already
        late = make_activity("l1", minutes=0)
        other = make_activity("l2", minutes=2)
        twice = attrs.evolve(other, lead_id="l3")  # the key of the one before it
        assert add_activities([]) == []
        assert add_activities([again, late, other, twice]) == [False, True, True, False]
        assert list(storage.activities("l1")) == [late, before]
        assert list(storage.activities("l2")) == [other]
        assert list(storage.activities("l3")) == []
        assert add_activities([late]) == [False]

        def doomed() -> None:
            with storage.transaction():
                assert add_activities([make_activity("l4")]) == [True]
                assert len(storage.activities("l4")) == 1
                raise _Boom

        _raises(_Boom, doomed)
        assert list(storage.activities("l4")) == []

    def test_enrollments_of_leads_gives_each_leads_enrolments_as_enrollments_of_does(
        self, storage: Storage
    ) -> None:
        enrollments_of_leads = _having(storage, "enrollments_of_leads")
        storage.put_enrollment(make_enrollment(2))
        storage.put_enrollment(make_enrollment(1))
        storage.put_enrollment(make_enrollment(1, lead_id="l2", scenario="other"))
        assert enrollments_of_leads([]) == {}
        found = enrollments_of_leads(["l1", "nobody", "l2", "l1"])
        assert list(found) == ["l1", "nobody", "l2"]
        assert found["l1"] == storage.enrollments_of("l1")
        assert [e.id for e in found["l1"]] == ["follow-up/l1/1", "follow-up/l1/2"]
        assert found["l2"] == storage.enrollments_of("l2")
        assert found["nobody"] == []
        found["l1"].clear()  # the caller's to keep: the store's own are left alone
        assert len(enrollments_of_leads(["l1"])["l1"]) == 2
        with storage.transaction():
            done = make_enrollment(2, status=EnrollmentStatus.COMPLETED)
            storage.put_enrollment(done)
            storage.put_enrollment(make_enrollment(3))
            inside = enrollments_of_leads(["l1"])["l1"]
            assert [e.id for e in inside] == [f"follow-up/l1/{n}" for n in (1, 2, 3)]
            assert inside[1] == done

        def doomed() -> None:
            with storage.transaction():
                storage.put_enrollment(make_enrollment(4))
                assert len(enrollments_of_leads(["l1"])["l1"]) == 4
                raise _Boom

        _raises(_Boom, doomed)
        assert len(enrollments_of_leads(["l1"])["l1"]) == 3

    def test_batch_reads_see_what_another_store_object_committed(self, storage: Storage) -> None:
        activities_of = _having(storage, "activities_of")
        enrollments_of_leads = _having(storage, "enrollments_of_leads")
        open_again = getattr(self, "open_again", None)
        other = None if open_again is None else open_again(storage)
        if other is None:
            import pytest

            pytest.skip("this store keeps its data in its own object: there is no second one")
        try:
            assert len(activities_of(["l1"])["l1"]) == 0
            assert enrollments_of_leads(["l1"])["l1"] == []
            other.add_activity(make_activity("l1"))
            other.put_enrollment(make_enrollment(1))
            other.put_lead(attrs.evolve(make_lead("l1"), name="other"))
            assert len(activities_of(["l1"])["l1"]) == 1
            assert len(enrollments_of_leads(["l1"])["l1"]) == 1
        finally:
            other.close()
