"""Applying PostgreSQL's numbered schema migrations (found by adapters/sql/migrations.py).

The whole run holds a session advisory lock, so processes that migrate at once
(several `orch8 serve` starting together) queue: the second one finds the
versions already recorded and applies nothing. Each migration runs in its own
transaction together with the row that records it in `schema_migrations`
(PostgreSQL DDL is transactional), so a crash leaves all of a migration or none.
"""

from __future__ import annotations

from orch8.adapters.postgres.connection import Connection, Database
from orch8.adapters.sql.migrations import Migration, pending, shipped_migrations

_PACKAGE = __name__.rpartition(".")[0]

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


def available_migrations() -> list[Migration]:
    """Every migration shipped with this adapter, lowest version first."""
    return shipped_migrations(_PACKAGE)


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
    done = [int(row[0]) for row in await conn.fetch(SELECT_VERSIONS)]
    applied: list[int] = []
    for migration in pending(migrations, done, target):
        async with conn.transaction():
            # No parameters: the simple query protocol runs a multi-statement script.
            await conn.execute(migration.sql)
            await conn.execute(RECORD_VERSION, migration.version, migration.name)
        applied.append(migration.version)
    return applied
