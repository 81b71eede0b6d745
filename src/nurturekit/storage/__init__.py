"""Storage adapters behind :class:`nurturekit.ports.Storage`."""

from nurturekit.storage.memory import InMemoryStorage

__all__ = ["InMemoryStorage"]
