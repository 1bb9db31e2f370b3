"""Rate limits in PostgreSQL: limits, and reservations decided under the limit row's lock.

`acquire` is one call of the `orch8_rate_limit_reserve` function (migration
0008): one round trip and one short transaction that locks the key's limit row
(FOR UPDATE), keeps a held place that can still be used, or reads the two log
entries a decision depends on and records the new place (`RateLimit.keep`, `RateLimit.reserve`,
the same arithmetic to the microsecond). The row lock serialises the uses of a
key across every connection of every process; uses of different keys never
wait for each other. It is a function rather than one plain statement because
a statement reads with a single snapshot taken before it waited for the lock,
and would miss the place the previous holder just recorded.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from datetime import datetime

from orch8.adapters.postgres.connection import Connection, Database, rows_affected
from orch8.adapters.postgres.rows import SCHEDULE_ROWS, aware, aware_or_none
from orch8.adapters.sql.columns import RATE_LIMIT
from orch8.application.ports.storage import RateLimitStore
from orch8.domain.rate_limits import KEPT_WINDOWS, Admission, RateLimit

UPSERT = f"""
INSERT INTO rate_limits (
    tenant_id, resource_key, max_count, window_seconds, window_us, created_at, updated_at
) VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (tenant_id, resource_key) DO UPDATE SET
    max_count = excluded.max_count,
    window_seconds = excluded.window_seconds,
    window_us = excluded.window_us,
    updated_at = excluded.updated_at
RETURNING {RATE_LIMIT}
"""  # noqa: S608 - constant columns
GET = f"""
SELECT {RATE_LIMIT}
FROM rate_limits WHERE tenant_id = $1 AND resource_key = $2
"""  # noqa: S608 - constant columns
LIST_ALL = f"""
SELECT {RATE_LIMIT}
FROM rate_limits ORDER BY tenant_id, resource_key
"""  # noqa: S608 - constant columns
LIST_TENANT = f"""
SELECT {RATE_LIMIT}
FROM rate_limits WHERE tenant_id = $1 ORDER BY resource_key
"""  # noqa: S608 - constant columns
DELETE_LIMIT = "DELETE FROM rate_limits WHERE tenant_id = $1 AND resource_key = $2"
DELETE_LOG = "DELETE FROM rate_limit_admissions WHERE tenant_id = $1 AND resource_key = $2"
RESERVE = "SELECT reserved_for, start_by FROM orch8_rate_limit_reserve($1, $2, $3, $4, $5)"
RESERVE_MANY = """
SELECT ord, reserved_for, start_by
FROM orch8_rate_limit_reserve_many($1, $2, $3, $4, $5::timestamptz[]) ORDER BY ord
"""
LOCK_LIMIT = "SELECT 1 FROM rate_limits WHERE tenant_id = $1 AND resource_key = $2 FOR UPDATE"


class PostgresRateLimitStore(RateLimitStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def upsert(self, limit: RateLimit) -> RateLimit:
        rows = await self._db.fetch(UPSERT, *SCHEDULE_ROWS.limit_params(limit))
        return SCHEDULE_ROWS.limit_from_row(rows[0])

    async def get(self, tenant_id: str, key: str) -> RateLimit | None:
        rows = await self._db.fetch(GET, tenant_id, key)
        return SCHEDULE_ROWS.limit_from_row(rows[0]) if rows else None

    async def list(self, tenant_id: str | None) -> builtins.list[RateLimit]:
        if tenant_id is None:
            rows = await self._db.fetch(LIST_ALL)
        else:
            rows = await self._db.fetch(LIST_TENANT, tenant_id)
        return [SCHEDULE_ROWS.limit_from_row(r) for r in rows]

    async def delete(self, tenant_id: str, key: str) -> bool:
        async def remove(conn: Connection) -> bool:
            # The limit first: its row lock waits for a running acquire, and the
            # log's delete (a statement of its own, so a fresh snapshot) then sees
            # whatever that acquire recorded.
            status = await conn.execute(DELETE_LIMIT, tenant_id, key)
            await conn.execute(DELETE_LOG, tenant_id, key)
            return rows_affected(status) > 0

        return await self._db.transaction(remove)

    async def acquire(
        self, tenant_id: str, key: str, now: datetime, held: datetime | None = None
    ) -> Admission | None:
        rows = await self._db.fetch(
            RESERVE, tenant_id, key, aware(now), KEPT_WINDOWS, aware_or_none(held)
        )
        return _admission(rows[0][0], rows[0][1], held) if rows else None

    async def acquire_many(
        self,
        tenant_id: str,
        key: str,
        now: Callable[[], datetime],
        helds: Sequence[datetime | None],
    ) -> builtins.list[Admission] | None:
        async def reserve_all(conn: Connection) -> builtins.list[Admission] | None:
            # The limit row's lock first, then the clock: the places are stamped
            # after any wait for another process's asks, in one more round trip.
            if not await conn.fetch(LOCK_LIMIT, tenant_id, key):
                return None
            rows = await conn.fetch(
                RESERVE_MANY,
                tenant_id,
                key,
                aware(now()),
                KEPT_WINDOWS,
                [aware_or_none(h) for h in helds],
            )
            if len(rows) != len(helds):
                return None
            return [_admission(r[1], r[2], h) for r, h in zip(rows, helds, strict=True)]

        return await self._db.transaction(reserve_all)


def _admission(at: datetime, deadline: datetime, held: datetime | None) -> Admission:
    return Admission(at=at, deadline=deadline, fresh=held is None or at != held)
