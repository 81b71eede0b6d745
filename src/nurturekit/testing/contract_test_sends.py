"""The storage contract for recorded test-sends: :meth:`~nurturekit.ports.Storage.record_test_send`
and :meth:`~nurturekit.ports.Storage.test_sends`.

The engine never calls these two, so a store written before they existed still works with it.
On such a store (one without either method) these tests are skipped, saying why; every store
of nurturekit has them.
"""

from __future__ import annotations

from datetime import timedelta, timezone
from typing import Any

import attrs

from nurturekit.messages import SendStatus
from nurturekit.ports import Storage, TestSend
from nurturekit.testing.factories import T0, _Boom, _raises

#: What the tests here record, in the order the port gives it back: newest first, then by
#: template, version and address (by code point: "B" < "a" < "é").
_ORDERED = (
    ("wp_thanks", "aaaaaaaaaaaa", "me@example.com", 30),
    ("seminar", "bbbbbbbbbbbb", "me@example.com", 20),
    ("seminar", "aaaaaaaaaaaa", "B@example.com", 10),
    ("seminar", "aaaaaaaaaaaa", "a@example.com", 10),
    ("seminar", "aaaaaaaaaaaa", "é@example.com", 10),
    ("seminar", "cccccccccccc", "a@example.com", 10),
    ("wp_thanks", "aaaaaaaaaaaa", "a@example.com", 10),
    ("seminar", "aaaaaaaaaaaa", "a@example.com", 0),
)


def make_test_send(
    template: str = "wp_thanks",
    version: str = "aaaaaaaaaaaa",
    to: str = "me@example.com",
    minutes: float = 0,
    **changes: Any,
) -> TestSend:
    """A test-send of ``template`` at ``T0 + minutes``, sent; keyword arguments override."""
    fields: dict[str, Any] = {
        "template": template,
        "version": version,
        "to": to,
        "at": T0 + timedelta(minutes=minutes),
        "status": SendStatus.SENT,
    }
    fields.update(changes)
    return TestSend(**fields)


def _keeping_test_sends(storage: Storage) -> Storage:
    """``storage``, or a skip when it keeps no test-sends (a store written before them)."""
    if not (hasattr(storage, "record_test_send") and hasattr(storage, "test_sends")):
        import pytest

        pytest.skip(
            "this store has no record_test_send / test_sends: optional, as the engine never "
            "calls them; add them for `nurturekit test-send --db`"
        )
    return storage


class RecordedTestSendsContract:
    """Test-sends: recorded per template, version, address and time, read newest first."""

    def test_a_new_store_has_no_test_sends(self, storage: Storage) -> None:
        store = _keeping_test_sends(storage)
        assert store.test_sends() == []
        assert store.test_sends("wp_thanks") == []

    def test_test_sends_come_newest_first_then_by_template_version_and_address(
        self, storage: Storage
    ) -> None:
        store = _keeping_test_sends(storage)
        records = [make_test_send(t, v, to, minutes) for t, v, to, minutes in _ORDERED]
        for index in (3, 7, 0, 5, 1, 6, 2, 4):  # not the order they come back in
            store.record_test_send(records[index])
        assert store.test_sends() == records
        assert store.test_sends("seminar") == [r for r in records if r.template == "seminar"]
        assert store.test_sends("wp_thanks") == [r for r in records if r.template == "wp_thanks"]
        assert store.test_sends("nope") == []

    def test_a_test_send_reads_back_equal_with_its_time_in_utc(self, storage: Storage) -> None:
        store = _keeping_test_sends(storage)
        tokyo = timezone(timedelta(hours=9))
        record = make_test_send(
            at=(T0 + timedelta(microseconds=123456)).astimezone(tokyo),
            status=SendStatus.BOUNCED,
            detail="550 5.1.1 no such user — 宛先なし",
            sent_by="sato",
        )
        store.record_test_send(record)
        [back] = store.test_sends()
        assert back == record
        assert back.at.utcoffset() == timedelta(0) and back.at == T0 + timedelta(
            microseconds=123456
        )
        assert back.status is SendStatus.BOUNCED and back.sent_by == "sato"
        unknown = make_test_send(minutes=1)  # no detail, nobody named
        store.record_test_send(unknown)
        assert store.test_sends()[0] == unknown and unknown.sent_by is None

    def test_the_same_test_send_recorded_again_replaces_the_first(self, storage: Storage) -> None:
        store = _keeping_test_sends(storage)
        first = make_test_send(status=SendStatus.DEFERRED, detail="421 try later")
        store.record_test_send(first)
        again = attrs.evolve(first, status=SendStatus.SENT, detail="", sent_by="sato")
        store.record_test_send(again)
        assert store.test_sends() == [again]
        other = attrs.evolve(first, version="bbbbbbbbbbbb")
        store.record_test_send(other)
        assert store.test_sends() == [again, other]

    def test_a_test_send_recorded_in_an_undone_transaction_is_not_kept(
        self, storage: Storage
    ) -> None:
        store = _keeping_test_sends(storage)
        kept = make_test_send(minutes=0)
        store.record_test_send(kept)

        def undone() -> None:
            with store.transaction():
                store.record_test_send(make_test_send(minutes=1))
                store.record_test_send(attrs.evolve(kept, detail="changed"))
                raise _Boom

        _raises(_Boom, undone)
        assert store.test_sends() == [kept]
        with store.transaction():
            store.record_test_send(make_test_send(minutes=2))
        assert [r.at for r in store.test_sends()] == [T0 + timedelta(minutes=2), T0]
