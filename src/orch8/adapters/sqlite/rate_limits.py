"""Rate limits in SQLite: limits, and reservations decided inside a write transaction.

`acquire` is one BEGIN IMMEDIATE transaction: SQLite's database write lock
serialises it against every other writer, in this process (the write
connection's lock) and in any other process sharing the file, so reading the
log, deciding and recording the reservation are one atomic step. The decision
itself is the domain's (`RateLimit.keep`, `RateLimit.reserve`), from two index reads: the newest
entry of the key's log and its `max_count`-th newest.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial

import aiosqlite

from orch8.adapters.sql.columns import RATE_LIMIT
from orch8.adapters.sqlite.connection import Database, Row, fetch_all
from orch8.adapters.sqlite.rows import SCHEDULE_ROWS, from_us, to_us
from orch8.application.ports.storage import RateLimitStore
from orch8.domain.rate_limits import Admission, RateLimit

UPSERT = f"""
INSERT INTO rate_limits (
    tenant_id, resource_key, max_count, window_seconds, window_us, created_at, updated_at
) VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (tenant_id, resource_key) DO UPDATE SET
    max_count = excluded.max_count,
    window_seconds = excluded.window_seconds,
    window_us = excluded.window_us,
    updated_at = excluded.updated_at
RETURNING {RATE_LIMIT}
"""  # noqa: S608 - constant columns
GET = f"""
SELECT {RATE_LIMIT}
FROM rate_limits WHERE tenant_id = ? AND resource_key = ?
"""  # noqa: S608 - constant columns
LIST_ALL = f"""
SELECT {RATE_LIMIT}
FROM rate_limits ORDER BY tenant_id, resource_key
"""  # noqa: S608 - constant columns
LIST_TENANT = f"""
SELECT {RATE_LIMIT}
FROM rate_limits WHERE tenant_id = ? ORDER BY resource_key
"""  # noqa: S608 - constant columns
DELETE_LIMIT = "DELETE FROM rate_limits WHERE tenant_id = ? AND resource_key = ?"
DELETE_LOG = "DELETE FROM rate_limit_admissions WHERE tenant_id = ? AND resource_key = ?"
# The two entries of the log a new place depends on (`RateLimit.reserve`): the
# newest, and the max_count-th newest (an index walk of at most max_count rows).
NEWEST = """
SELECT max(admitted_at) FROM rate_limit_admissions WHERE tenant_id = ? AND resource_key = ?
"""
NTH_NEWEST = """
SELECT admitted_at FROM rate_limit_admissions
WHERE tenant_id = ? AND resource_key = ?
ORDER BY admitted_at DESC
LIMIT 1 OFFSET ?
"""
ADMIT = "INSERT INTO rate_limit_admissions (tenant_id, resource_key, admitted_at) VALUES (?, ?, ?)"
# A lapsed place was never used: one entry of its instant is given back.
GIVE_BACK = """
DELETE FROM rate_limit_admissions WHERE rowid = (
    SELECT rowid FROM rate_limit_admissions
    WHERE tenant_id = ? AND resource_key = ? AND admitted_at = ? LIMIT 1
)
"""
PRUNE = """
DELETE FROM rate_limit_admissions
WHERE tenant_id = ? AND resource_key = ? AND admitted_at <= ?
"""


class SqliteRateLimitStore(RateLimitStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert(self, limit: RateLimit) -> RateLimit:
        params = SCHEDULE_ROWS.limit_params(limit)

        async def store(conn: aiosqlite.Connection) -> Row:
            return (await fetch_all(conn, UPSERT, params))[0]

        return SCHEDULE_ROWS.limit_from_row(await self._db.write(store))

    async def get(self, tenant_id: str, key: str) -> RateLimit | None:
        rows = await self._db.read(GET, (tenant_id, key))
        return SCHEDULE_ROWS.limit_from_row(rows[0]) if rows else None

    async def list(self, tenant_id: str | None) -> builtins.list[RateLimit]:
        if tenant_id is None:
            rows = await self._db.read(LIST_ALL)
        else:
            rows = await self._db.read(LIST_TENANT, (tenant_id,))
        return [SCHEDULE_ROWS.limit_from_row(r) for r in rows]

    async def delete(self, tenant_id: str, key: str) -> bool:
        async def remove(conn: aiosqlite.Connection) -> bool:
            cursor = await conn.execute(DELETE_LIMIT, (tenant_id, key))
            await conn.execute(DELETE_LOG, (tenant_id, key))
            return cursor.rowcount > 0

        return await self._db.write(remove)

    async def acquire(
        self, tenant_id: str, key: str, now: datetime, held: datetime | None = None
    ) -> Admission | None:
        if held is not None:  # a place still usable needs no write, nor the lock
            found = await self.get(tenant_id, key)
            if found is None:
                return None
            kept = found.keep(held, now)
            if kept is not None:
                return kept
        places = await self.acquire_many(tenant_id, key, lambda: now, [held])
        return None if places is None else places[0]

    async def acquire_many(
        self,
        tenant_id: str,
        key: str,
        now: Callable[[], datetime],
        helds: Sequence[datetime | None],
    ) -> builtins.list[Admission] | None:
        return await self._db.write(partial(self._decide, tenant_id, key, now, helds))

    async def _decide(
        self,
        tenant_id: str,
        key: str,
        read_now: Callable[[], datetime],
        helds: Sequence[datetime | None],
        conn: aiosqlite.Connection,
    ) -> builtins.list[Admission] | None:
        """Inside the write transaction: the database lock is held from here on."""
        now = read_now()
        rows = await fetch_all(conn, GET, (tenant_id, key))
        if not rows:
            return None
        limit = SCHEDULE_ROWS.limit_from_row(rows[0])
        places = []
        for held in helds:
            place = limit.keep(held, now)
            if place is None:
                if held is not None:
                    await conn.execute(GIVE_BACK, (tenant_id, key, to_us(held)))
                newest = (await fetch_all(conn, NEWEST, (tenant_id, key)))[0][0]
                nth = await fetch_all(conn, NTH_NEWEST, (tenant_id, key, limit.max_count - 1))
                place = limit.reserve(
                    now,
                    newest=None if newest is None else from_us(int(newest)),
                    full_from=from_us(int(nth[0][0])) if nth else None,
                )
                await conn.execute(ADMIT, (tenant_id, key, to_us(place.at)))
            places.append(place)
        await conn.execute(PRUNE, (tenant_id, key, to_us(limit.prune_before(now))))
        return places
