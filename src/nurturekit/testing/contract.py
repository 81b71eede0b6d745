"""The storage contract suite, :class:`StorageContract`: the area mixins combined, with the
tests that span areas (closing, threads, two store objects on one database)."""

from __future__ import annotations

import threading
import time

from nurturekit.messages import SendStatus
from nurturekit.ports import Storage
from nurturekit.testing.contract_batches import BatchContract
from nurturekit.testing.contract_handoffs import HandoffContract
from nurturekit.testing.contract_leads import LeadContract
from nurturekit.testing.contract_sends import SendContract
from nurturekit.testing.contract_steps import StepContract
from nurturekit.testing.contract_test_sends import RecordedTestSendsContract
from nurturekit.testing.factories import (
    LEASE,
    T0,
    make_enrollment,
    make_handoff,
    make_lead,
    make_mail,
)


class StorageContract(
    LeadContract,
    StepContract,
    SendContract,
    HandoffContract,
    RecordedTestSendsContract,
    BatchContract,
):
    """The behaviour every :class:`~nurturekit.ports.Storage` adapter must have.

    Subclass it with a ``storage`` fixture (see the module docstring). The tests of
    test-sends (:class:`~nurturekit.testing.contract_test_sends.RecordedTestSendsContract`)
    are skipped on a store without ``record_test_send`` and ``test_sends``, which the engine
    never calls; those of the optional batch methods of bulk imports
    (:class:`~nurturekit.testing.contract_batches.BatchContract`) on a store without the
    method they test.
    """

    def test_closing_twice_is_fine(self, storage: Storage) -> None:
        storage.close()
        storage.close()

    # ------------------------------------------------------------------ order

    def test_leads_and_handoffs_come_in_id_order_whatever_order_they_were_put_in(
        self, storage: Storage
    ) -> None:
        """The port's order, not the order of writes: a simulation that draws random numbers
        while it walks the hand-offs (the demo's sales team) must do the same on every store.
        Ids compare by code point, as Python's ``str`` does ("L" < "l" < "é" < "ｌ")."""
        ids = ["l2", "ｌ1", "l10", "é", "L9", "l1", "l02"]
        with storage.transaction():
            for n, each in enumerate(ids):
                storage.put_lead(make_lead(each))
                storage.put_handoff(make_handoff(f"{each}/1", lead_id=each, minutes=-n))
        # Writing a row again (an update) leaves its place alone.
        storage.put_lead(make_lead("l2", name="again"))
        storage.put_handoff(make_handoff("l2/1", lead_id="l2", owner="suzuki"))
        assert [lead.id for lead in storage.leads()] == sorted(ids)
        assert [h.id for h in storage.handoffs()] == sorted(f"{each}/1" for each in ids)

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
