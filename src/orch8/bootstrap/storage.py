"""Choosing the storage adapter from the database URL.

Only the chosen backend's module is imported, so a SQLite deployment never
loads the PostgreSQL driver and the other way round.
"""

from __future__ import annotations

from orch8.application.ports.storage import Storage
from orch8.domain.errors import ValidationError


def sqlite_path(url: str) -> str:
    """`sqlite://orch8.db` is relative, `sqlite:///data/orch8.db` absolute (Orch8's forms);
    query options such as `?mode=rwc` are accepted and ignored."""
    rest = url.split("://", 1)[1].split("?", 1)[0]
    if not rest:
        raise ValidationError("names no database file", path="database.url")
    return rest


def build_storage(
    url: str, *, sqlite_synchronous: str = "FULL", max_connections: int = 16
) -> Storage:
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "sqlite":
        from orch8.adapters.sqlite import SqliteStorage

        return SqliteStorage(sqlite_path(url), synchronous=sqlite_synchronous)
    if scheme in ("postgres", "postgresql"):
        from orch8.adapters.postgres import PostgresStorage

        return PostgresStorage(url, max_connections=max_connections)
    if scheme == "memory":
        from orch8.adapters.memory import MemoryStorage

        return MemoryStorage()
    raise ValidationError(
        f"unsupported database URL scheme '{scheme}' "
        "(expected sqlite://, postgresql://, postgres:// or memory://)",
        path="database.url",
    )


def storage_kind(storage: Storage) -> str:
    """`sqlite`, `postgres` or `memory`: which adapter `storage` is (what `/info`
    reports; never the URL, which may hold a password); `other` for a storage
    this package does not provide."""
    module = type(storage).__module__
    for kind in ("sqlite", "postgres", "memory"):
        if module.startswith(f"orch8.adapters.{kind}."):
            return kind
    return "other"
