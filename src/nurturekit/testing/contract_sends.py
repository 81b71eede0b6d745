"""The storage contract for the outbox: mails, their sends and claims."""

from __future__ import annotations

from datetime import timedelta

import attrs

from nurturekit.errors import StorageError
from nurturekit.lead import Contactability, ContactStatus
from nurturekit.messages import SendStatus
from nurturekit.ports import Storage
from nurturekit.scenario import EnrollmentStatus
from nurturekit.testing.factories import (
    LEASE,
    T0,
    _Boom,
    _raises,
    _state,
    make_enrollment,
    make_lead,
    make_mail,
)


class SendContract:
    """The outbox: writing mails, claiming, holding and recording sends."""

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

    def test_a_send_is_found_by_its_key_as_the_outbox_holds_it(self, storage: Storage) -> None:
        assert storage.get_send("k1") is None
        storage.add_to_outbox(make_mail("k1", minutes=0))
        found = storage.get_send("k1")
        assert found is not None
        assert (found.mail, found.status, found.attempts) == (make_mail("k1", minutes=0), None, 0)
        storage.mark_sent("k1", SendStatus.BOUNCED, "550 no such user", T0)
        assert storage.get_send("k1") == next(iter(storage.outbox()))
        assert storage.get_send("k2") is None

    def test_a_provider_s_later_report_keeps_the_attempts(self, storage: Storage) -> None:
        assert storage.report_send("k1", SendStatus.BOUNCED, "later", T0) is False
        storage.add_to_outbox(make_mail("k1", minutes=0))
        storage.mark_sent("k1", SendStatus.SENT, "", T0)
        later = T0 + timedelta(hours=1)
        assert storage.report_send("k1", SendStatus.BOUNCED, "550 after delivery", later)
        found = storage.get_send("k1")
        assert found is not None
        assert (found.status, found.detail, found.attempts, found.updated_at) == (
            SendStatus.BOUNCED,
            "550 after delivery",
            1,
            later,
        )
        assert storage.pending_mail(10) == []

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

    def test_marketing_sends_since(self, storage: Storage) -> None:
        storage.add_to_outbox(make_mail("a", minutes=0))
        storage.add_to_outbox(make_mail("b", minutes=10))
        storage.add_to_outbox(make_mail("c", minutes=20, marketing=False))
        storage.add_to_outbox(make_mail("d", lead_id="l2", minutes=30))
        assert storage.marketing_sends_since("l1", T0 + timedelta(minutes=5)) == [
            T0 + timedelta(minutes=10)
        ]
        assert storage.marketing_sends_since("l1", T0) == [T0, T0 + timedelta(minutes=10)]
