"""Numbered schema migrations, shipped as package data and applied in order.

`migrations/NNNN_name.sql` files are the schema's only source: a fresh database
is built by replaying them, so a fresh schema and an upgraded one cannot drift.

The whole run holds a session advisory lock, so processes that migrate at once
(several `orch8 serve` starting together) queue: the second one finds the
versions already recorded and applies nothing. Each migration runs in its own
transaction together with the row that records it in `schema_migrations`
(PostgreSQL DDL is transactional), so a crash leaves all of a migration or none.
"""

from __future__ import annotations

import re
from importlib.resources import files

from attrs import frozen

from orch8.adapters.postgres.connection import Connection, Database

_PACKAGE = __name__.rpartition(".")[0]
_FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

# pg_advisory_lock key: "orch8mig" as a big-endian int64, shared by every orch8 process.
MIGRATION_LOCK_KEY = int.from_bytes(b"orch8mig", "big")

LOCK = "SELECT pg_advisory_lock($1)"
UNLOCK = "SELECT pg_advisory_unlock($1)"
CREATE_VERSIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     BIGINT       PRIMARY KEY,
    name        TEXT         NOT NULL,
    applied_at  TIMESTAMPTZ  NOT NULL DEFAULT now()
)
"""
SELECT_VERSIONS = "SELECT version FROM schema_migrations ORDER BY version"
RECORD_VERSION = "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)"


@frozen
class Migration:
    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    """Every migration shipped with this package, lowest version first."""
    found: list[Migration] = []
    for entry in (files(_PACKAGE) / "migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match is not None:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions in {[m.name for m in found]}")
    return found


async def migrate(db: Database, *, target: int | None = None) -> list[int]:
    """Apply every migration up to `target` (default: all) not yet applied;
    return the versions applied now. Refuses a database newer than this code."""
    migrations = available_migrations()

    async def run(conn: Connection) -> list[int]:
        await conn.execute(LOCK, MIGRATION_LOCK_KEY)
        try:
            return await _apply_pending(conn, migrations, target)
        finally:
            await conn.execute(UNLOCK, MIGRATION_LOCK_KEY)

    return await db.with_connection(run, conflict="schema migration")


async def _apply_pending(
    conn: Connection, migrations: list[Migration], target: int | None
) -> list[int]:
    await conn.execute(CREATE_VERSIONS_TABLE)
    done = {int(row[0]) for row in await conn.fetch(SELECT_VERSIONS)}
    latest = migrations[-1].version if migrations else 0
    newer = sorted(v for v in done if v > latest)
    if newer:
        raise RuntimeError(
            f"database schema has versions {newer}, newer than this orch8 knows ({latest})"
        )
    applied: list[int] = []
    for migration in migrations:
        if migration.version in done or (target is not None and migration.version > target):
            continue
        async with conn.transaction():
            # No parameters: the simple query protocol runs a multi-statement script.
            await conn.execute(migration.sql)
            await conn.execute(RECORD_VERSION, migration.version, migration.name)
        applied.append(migration.version)
    return applied
