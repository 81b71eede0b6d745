"""The storage contract for hand-offs, their notices and round-robin rotation."""

from __future__ import annotations

from datetime import timedelta

import attrs

from nurturekit.handoff import HandoffStatus
from nurturekit.ports import Storage
from nurturekit.testing.factories import (
    LEASE,
    T0,
    _Boom,
    _raises,
    make_handoff,
)


class HandoffContract:
    """Hand-offs, claiming their notices and round-robin rotation."""

    # ------------------------------------------------------------------ notices

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
