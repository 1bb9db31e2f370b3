"""Applying SQLite's numbered schema migrations (found by adapters/sql/migrations.py).

Each migration runs in its own BEGIN IMMEDIATE transaction together with the
row that records it in `schema_migrations`, so a crash leaves either all of a
migration or none of it, and two processes migrating at once apply each
version exactly once (the second re-reads the table under the write lock).
"""

from __future__ import annotations

import sqlite3
import time

import aiosqlite

from orch8.adapters.sql.migrations import Migration, pending, shipped_migrations
from orch8.adapters.sqlite.connection import Database, Work, fetch_all

_PACKAGE = __name__.rpartition(".")[0]

CREATE_VERSIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     INTEGER PRIMARY KEY,
    applied_at  INTEGER NOT NULL
)
"""
SELECT_VERSIONS = "SELECT version FROM schema_migrations ORDER BY version"
APPLIED_VERSION = "SELECT 1 FROM schema_migrations WHERE version = ?"
RECORD_VERSION = "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)"


def available_migrations() -> list[Migration]:
    """Every migration shipped with this adapter, lowest version first."""
    return shipped_migrations(_PACKAGE)


def split_statements(script: str) -> list[str]:
    """Split a script into complete statements (sqlite3.complete_statement knows
    about quotes, comments and trigger bodies). executescript is not used because
    it would commit the surrounding transaction first."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if _has_code(buffer):
        raise ValueError(f"incomplete SQL statement at end of migration: {buffer.strip()!r}")
    return statements


def _has_code(text: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in text.splitlines())


async def applied_versions(db: Database) -> list[int]:
    await db.write(_create_versions_table)
    return [int(row[0]) for row in await db.read(SELECT_VERSIONS)]


async def _create_versions_table(conn: aiosqlite.Connection) -> None:
    await conn.execute(CREATE_VERSIONS_TABLE)


async def migrate(db: Database, *, target: int | None = None) -> list[int]:
    """Apply every migration up to `target` (default: all) not yet applied;
    return the versions applied now. Refuses a database newer than this code."""
    applied: list[int] = []
    for migration in pending(available_migrations(), await applied_versions(db), target):
        if await db.write(_applier(migration), conflict=f"migration {migration.name}"):
            applied.append(migration.version)
    return applied


def _applier(migration: Migration) -> Work[bool]:
    """One migration's transaction: re-check under the write lock, run, record."""

    async def apply(conn: aiosqlite.Connection) -> bool:
        rows = await fetch_all(conn, APPLIED_VERSION, (migration.version,))
        if rows:
            return False
        for statement in split_statements(migration.sql):
            await conn.execute(statement)
        await conn.execute(RECORD_VERSION, (migration.version, time.time_ns() // 1000))
        return True

    return apply
