"""The storage contract for enrolments: due steps, their claims and leases."""

from __future__ import annotations

from datetime import timedelta

import attrs

from nurturekit.ports import Storage
from nurturekit.scenario import EnrollmentStatus
from nurturekit.testing.factories import (
    LEASE,
    T0,
    _Boom,
    _raises,
    make_enrollment,
)


class StepContract:
    """Enrolments, claiming due steps and renewing their leases."""

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

    # ------------------------------------------------------------------ leases

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
