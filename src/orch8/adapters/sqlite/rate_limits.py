"""Rate limits in SQLite: limits, and admissions decided inside a write transaction.

`acquire` is one BEGIN IMMEDIATE transaction: SQLite's database write lock
serialises it against every other writer, in this process (the write
connection's lock) and in any other process sharing the file, so reading the
window, deciding and recording the admission are one atomic step. The decision
itself is the domain's (`next_admission`), in SQL: the window is full while
it holds a `max_count`-th newest admission (an index walk of at most
`max_count` entries), until that one leaves it.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

import aiosqlite

from orch8.adapters.sqlite.connection import Database, Row, fetch_all
from orch8.adapters.sqlite.rows import from_us, to_us
from orch8.application.ports.storage import RateLimitStore
from orch8.domain.rate_limits import KEPT_WINDOWS, RateLimit

UPSERT = """
INSERT INTO rate_limits (
    tenant_id, resource_key, max_count, window_seconds, window_us, created_at, updated_at
) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (tenant_id, resource_key) DO UPDATE SET
    max_count = excluded.max_count,
    window_seconds = excluded.window_seconds,
    window_us = excluded.window_us,
    updated_at = excluded.updated_at
RETURNING tenant_id, resource_key, max_count, window_seconds, created_at, updated_at
"""
GET = """
SELECT tenant_id, resource_key, max_count, window_seconds, created_at, updated_at
FROM rate_limits WHERE tenant_id = ? AND resource_key = ?
"""
LIST_ALL = """
SELECT tenant_id, resource_key, max_count, window_seconds, created_at, updated_at
FROM rate_limits ORDER BY tenant_id, resource_key
"""
LIST_TENANT = """
SELECT tenant_id, resource_key, max_count, window_seconds, created_at, updated_at
FROM rate_limits WHERE tenant_id = ? ORDER BY resource_key
"""
DELETE_LIMIT = "DELETE FROM rate_limits WHERE tenant_id = ? AND resource_key = ?"
DELETE_LOG = "DELETE FROM rate_limit_admissions WHERE tenant_id = ? AND resource_key = ?"
LIMIT_OF = "SELECT max_count, window_us FROM rate_limits WHERE tenant_id = ? AND resource_key = ?"
# The max_count-th newest admission in the window: while there is one the window
# is full, until it leaves at its instant + window (`next_admission`).
FULL_AT = """
SELECT admitted_at FROM rate_limit_admissions
WHERE tenant_id = ? AND resource_key = ? AND admitted_at > ?
ORDER BY admitted_at DESC
LIMIT 1 OFFSET ?
"""
ADMIT = "INSERT INTO rate_limit_admissions (tenant_id, resource_key, admitted_at) VALUES (?, ?, ?)"
PRUNE = """
DELETE FROM rate_limit_admissions
WHERE tenant_id = ? AND resource_key = ? AND admitted_at <= ?
"""


def _limit_from_row(row: Row) -> RateLimit:
    return RateLimit(
        tenant_id=row[0],
        key=row[1],
        max_count=int(row[2]),
        window_seconds=float(row[3]),
        created_at=from_us(row[4]),
        updated_at=from_us(row[5]),
    )


def _limit_params(limit: RateLimit) -> tuple[Any, ...]:
    return (
        limit.tenant_id,
        limit.key,
        limit.max_count,
        limit.window_seconds,
        limit.window_us,
        to_us(limit.created_at),
        to_us(limit.updated_at),
    )


class SqliteRateLimitStore(RateLimitStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert(self, limit: RateLimit) -> RateLimit:
        params = _limit_params(limit)

        async def store(conn: aiosqlite.Connection) -> Row:
            return (await fetch_all(conn, UPSERT, params))[0]

        return _limit_from_row(await self._db.write(store))

    async def get(self, tenant_id: str, key: str) -> RateLimit | None:
        rows = await self._db.read(GET, (tenant_id, key))
        return _limit_from_row(rows[0]) if rows else None

    async def list(self, tenant_id: str | None) -> builtins.list[RateLimit]:
        if tenant_id is None:
            rows = await self._db.read(LIST_ALL)
        else:
            rows = await self._db.read(LIST_TENANT, (tenant_id,))
        return [_limit_from_row(r) for r in rows]

    async def delete(self, tenant_id: str, key: str) -> bool:
        async def remove(conn: aiosqlite.Connection) -> bool:
            cursor = await conn.execute(DELETE_LIMIT, (tenant_id, key))
            await conn.execute(DELETE_LOG, (tenant_id, key))
            return cursor.rowcount > 0

        return await self._db.write(remove)

    async def acquire(self, tenant_id: str, key: str, now: datetime) -> datetime | None:
        now_us = to_us(now)

        async def decide(conn: aiosqlite.Connection) -> datetime | None:
            rows = await fetch_all(conn, LIMIT_OF, (tenant_id, key))
            if not rows:
                return None
            max_count, window_us = int(rows[0][0]), int(rows[0][1])
            start = now_us - window_us
            full = await fetch_all(conn, FULL_AT, (tenant_id, key, start, max_count - 1))
            if full:
                return from_us(int(full[0][0]) + window_us)
            await conn.execute(ADMIT, (tenant_id, key, now_us))
            await conn.execute(PRUNE, (tenant_id, key, now_us - KEPT_WINDOWS * window_us))
            return None

        return await self._db.write(decide)
