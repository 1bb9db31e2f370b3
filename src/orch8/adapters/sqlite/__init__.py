"""SQLite storage adapter (aiosqlite, WAL, group-committed snapshot writes)."""

from orch8.adapters.sqlite.storage import SqliteStorage

__all__ = ["SqliteStorage"]
