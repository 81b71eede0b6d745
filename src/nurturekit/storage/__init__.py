"""Storage adapters behind :class:`nurturekit.ports.Storage`, and :func:`open_storage`.

``open_storage`` picks one from a URL:

- ``memory://`` — :class:`~nurturekit.storage.memory.InMemoryStorage` (tests, notebooks);
- ``sqlite:///relative/path.db`` or ``sqlite:////absolute/path.db`` —
  :class:`~nurturekit.storage.sqlite.SQLiteStorage`, the embedded default;
- ``postgresql://user@host:5432/db`` (``postgres://`` too; add ``?schema=name`` to use a schema
  other than ``nurturekit``) — :class:`~nurturekit.storage.postgres.PostgresStorage`, for many
  workers. Needs ``pip install 'nurturekit[postgres]'``.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from nurturekit.errors import InvalidInput
from nurturekit.ports import Storage
from nurturekit.storage.memory import InMemoryStorage

__all__ = ["InMemoryStorage", "open_storage"]

_FORMS = "'memory://', 'sqlite:///path.db' or 'postgresql://user@host:5432/db'"


def open_storage(url: str) -> Storage:
    """Open the storage ``url`` names (see the module docstring)."""
    if not isinstance(url, str) or "://" not in url:
        raise InvalidInput("storage url", f"{url!r} is not a storage URL; write {_FORMS}")
    scheme = url.split("://", 1)[0].lower()
    if scheme == "memory":
        return InMemoryStorage()
    if scheme == "sqlite":
        path = url[len("sqlite:///") :] if url.lower().startswith("sqlite:///") else ""
        if not path:
            raise InvalidInput(
                "storage url", f"{url!r} names no file; write 'sqlite:///nurture.db'"
            )
        from nurturekit.storage.sqlite import SQLiteStorage

        return SQLiteStorage(path)
    if scheme in ("postgresql", "postgres"):
        parts = urlsplit(url)
        query = parse_qsl(parts.query)
        schema = next((v for k, v in query if k == "schema"), "nurturekit")
        rest = urlencode([(k, v) for k, v in query if k != "schema"])
        from nurturekit.storage.postgres import PostgresStorage

        return PostgresStorage(urlunsplit(parts._replace(query=rest)), schema=schema)
    raise InvalidInput("storage url", f"unknown kind of storage {scheme!r}; write {_FORMS}")
