"""The in-memory store passes the storage contract suite."""

from __future__ import annotations

import pytest

from nurturekit.storage.memory import InMemoryStorage
from nurturekit.testing import StorageContract


class TestInMemoryContract(StorageContract):
    @pytest.fixture
    def storage(self) -> InMemoryStorage:
        return InMemoryStorage()


def test_inside_a_transaction_the_store_hands_out_its_state_and_copies_it_once() -> None:
    from nurturekit.testing import _state

    storage = InMemoryStorage()
    storage.put_state(_state())
    outside = storage.get_state("l1")
    with storage.transaction():
        first = storage.get_state("l1")
        second = storage.get_state("l1")
        assert first is second and first is not outside
        assert first is not None
        first.card.entries.append(first.card.entries[0])
        storage.put_state(first)
    after = storage.get_state("l1")
    assert after is not None and len(after.card.entries) == 2
