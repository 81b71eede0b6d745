"""The in-memory store passes the storage contract suite."""

from __future__ import annotations

import pytest

from nurturekit.storage.memory import InMemoryStorage
from nurturekit.testing import StorageContract


class TestInMemoryContract(StorageContract):
    @pytest.fixture
    def storage(self) -> InMemoryStorage:
        return InMemoryStorage()
