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

pytest then runs every ``test_*`` method of the contract (written in the ``contract*`` modules
of this package) against your store. The suite needs pytest (a test-time dependency only);
importing this module does not.
"""

from __future__ import annotations

from nurturekit.testing.contract import StorageContract

# Not in __all__ but importable from here as before (the project's tests use them).
from nurturekit.testing.factories import LEASE as LEASE
from nurturekit.testing.factories import SENDER as SENDER
from nurturekit.testing.factories import T0 as T0
from nurturekit.testing.factories import _state as _state
from nurturekit.testing.factories import (
    make_activity,
    make_enrollment,
    make_handoff,
    make_lead,
    make_mail,
)

__all__ = [
    "StorageContract",
    "make_activity",
    "make_enrollment",
    "make_handoff",
    "make_lead",
    "make_mail",
]
