"""Rate limits in PostgreSQL: limits, and admissions decided under the limit row's lock.

`acquire` is one call of the `orch8_rate_limit_acquire` function (migration
0005): one round trip and one short transaction that locks the key's limit row
(FOR UPDATE), counts the newest admissions of the window, and records the
admission or returns when it will be admitted. The row lock serialises the
uses of a key across every connection of every process; uses of different keys
never wait for each other. It is a function rather than one plain statement
because a statement reads with a single snapshot taken before it waited for
the lock, and would miss the admission the previous holder just committed.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

from orch8.adapters.postgres.connection import Connection, Database, Record, rows_affected
from orch8.adapters.postgres.rows import aware
from orch8.application.ports.storage import RateLimitStore
from orch8.domain.rate_limits import KEPT_WINDOWS, RateLimit

UPSERT = """
INSERT INTO rate_limits (
    tenant_id, resource_key, max_count, window_seconds, window_us, created_at, updated_at
) VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (tenant_id, resource_key) DO UPDATE SET
    max_count = excluded.max_count,
    window_seconds = excluded.window_seconds,
    window_us = excluded.window_us,
    updated_at = excluded.updated_at
RETURNING tenant_id, resource_key, max_count, window_seconds, created_at, updated_at
"""
GET = """
SELECT tenant_id, resource_key, max_count, window_seconds, created_at, updated_at
FROM rate_limits WHERE tenant_id = $1 AND resource_key = $2
"""
LIST_ALL = """
SELECT tenant_id, resource_key, max_count, window_seconds, created_at, updated_at
FROM rate_limits ORDER BY tenant_id, resource_key
"""
LIST_TENANT = """
SELECT tenant_id, resource_key, max_count, window_seconds, created_at, updated_at
FROM rate_limits WHERE tenant_id = $1 ORDER BY resource_key
"""
DELETE_LIMIT = "DELETE FROM rate_limits WHERE tenant_id = $1 AND resource_key = $2"
DELETE_LOG = "DELETE FROM rate_limit_admissions WHERE tenant_id = $1 AND resource_key = $2"
ACQUIRE = "SELECT orch8_rate_limit_acquire($1, $2, $3, $4)"


def _limit_from_row(row: Record) -> RateLimit:
    return RateLimit(
        tenant_id=row[0],
        key=row[1],
        max_count=int(row[2]),
        window_seconds=float(row[3]),
        created_at=row[4],
        updated_at=row[5],
    )


def _limit_params(limit: RateLimit) -> tuple[Any, ...]:
    return (
        limit.tenant_id,
        limit.key,
        limit.max_count,
        limit.window_seconds,
        limit.window_us,
        aware(limit.created_at),
        aware(limit.updated_at),
    )


class PostgresRateLimitStore(RateLimitStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert(self, limit: RateLimit) -> RateLimit:
        rows = await self._db.fetch(UPSERT, *_limit_params(limit))
        return _limit_from_row(rows[0])

    async def get(self, tenant_id: str, key: str) -> RateLimit | None:
        rows = await self._db.fetch(GET, tenant_id, key)
        return _limit_from_row(rows[0]) if rows else None

    async def list(self, tenant_id: str | None) -> builtins.list[RateLimit]:
        if tenant_id is None:
            rows = await self._db.fetch(LIST_ALL)
        else:
            rows = await self._db.fetch(LIST_TENANT, tenant_id)
        return [_limit_from_row(r) for r in rows]

    async def delete(self, tenant_id: str, key: str) -> bool:
        async def remove(conn: Connection) -> bool:
            # The limit first: its row lock waits for a running acquire, and the
            # log's delete (a statement of its own, so a fresh snapshot) then sees
            # whatever that acquire recorded.
            status = await conn.execute(DELETE_LIMIT, tenant_id, key)
            await conn.execute(DELETE_LOG, tenant_id, key)
            return rows_affected(status) > 0

        return await self._db.transaction(remove)

    async def acquire(self, tenant_id: str, key: str, now: datetime) -> datetime | None:
        rows = await self._db.fetch(ACQUIRE, tenant_id, key, aware(now), KEPT_WINDOWS)
        retry_at: datetime | None = rows[0][0]
        return retry_at
