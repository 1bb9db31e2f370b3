"""Cron schedules in SQLite.

`claim_due` is one BEGIN IMMEDIATE transaction: SQLite's single write lock is
taken before the due rows are read, so two claimers (in this process or
another one on the same file) serialise, and the second finds the first's
hold (`held_until`) already written. Settling a fire is one guarded UPDATE
(`next_fire_at` must still be the occurrence settled).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiosqlite

from orch8.adapters.sql.columns import SCHEDULE
from orch8.adapters.sqlite.connection import Database, fetch_all
from orch8.adapters.sqlite.rows import SCHEDULE_ROWS, from_us, to_us
from orch8.application.ports.storage import CRON_CLAIM_LEASE, CronStore
from orch8.domain.cron import CronSchedule

INSERT = f"""
INSERT INTO cron_schedules ({SCHEDULE})
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""  # noqa: S608 - constant columns
BY_ID = f"""
SELECT {SCHEDULE}
FROM cron_schedules WHERE id = ?
"""  # noqa: S608 - constant columns
QUERY = f"""
SELECT {SCHEDULE}
FROM cron_schedules
WHERE (:tenant_id IS NULL OR tenant_id = :tenant_id)
ORDER BY created_at, id
"""  # noqa: S608 - constant columns
UPDATE = """
UPDATE cron_schedules
SET cron_expr = ?2, timezone = ?3, metadata = ?4, enabled = ?5, overlap_policy = ?6,
    next_fire_at = ?7, updated_at = ?8, held_until = NULL
WHERE id = ?1
"""
DELETE = "DELETE FROM cron_schedules WHERE id = ?"
# The literal `enabled = 1` is what lets SQLite use the partial index idx_cron_schedules_due.
DUE = f"""
SELECT {SCHEDULE}
FROM cron_schedules
WHERE enabled = 1 AND next_fire_at <= :now AND (held_until IS NULL OR held_until <= :now)
ORDER BY next_fire_at, id
LIMIT :limit
"""  # noqa: S608 - constant columns
TAKE = "UPDATE cron_schedules SET held_until = ? WHERE id = ?"
# ?1 the schedule, ?2 the occurrence settled, ?3 the next one, ?4 now.
FIRED = """
UPDATE cron_schedules
SET last_triggered_at = ?4, updated_at = ?4, next_fire_at = ?3, held_until = NULL
WHERE id = ?1 AND next_fire_at = ?2
"""
SKIPPED = """
UPDATE cron_schedules
SET skipped_fires = skipped_fires + 1, last_skipped_at = ?4, updated_at = ?4,
    next_fire_at = ?3, held_until = NULL
WHERE id = ?1 AND next_fire_at = ?2
"""
NEXT_DUE = """
SELECT next_fire_at FROM cron_schedules
WHERE enabled = 1 AND next_fire_at IS NOT NULL AND (held_until IS NULL OR held_until <= ?)
ORDER BY next_fire_at
LIMIT 1
"""
HOLD = "UPDATE cron_schedules SET held_until = ?3 WHERE id = ?1 AND next_fire_at = ?2"
# The repeated json_extract term is the partial index idx_task_instances_cron's
# own predicate, written out so that SQLite sees the index applies.
ACTIVE = """
SELECT id FROM task_instances
WHERE json_extract(metadata, '$.cron_schedule_id') = :schedule_id
  AND json_extract(metadata, '$.cron_schedule_id') IS NOT NULL
  AND tenant_id = :tenant_id
  AND state IN ('scheduled', 'running', 'waiting', 'paused')
ORDER BY created_at, rowid
"""


class SqliteCronStore(CronStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def _change(self, sql: str, params: Any, conflict: str = "conflicting write") -> bool:
        async def run(conn: aiosqlite.Connection) -> bool:
            cursor = await conn.execute(sql, params)
            return cursor.rowcount > 0

        return await self._db.write(run, conflict=conflict)

    async def create(self, schedule: CronSchedule) -> None:
        await self._change(
            INSERT,
            SCHEDULE_ROWS.schedule_params(schedule),
            f"cron schedule {schedule.id} already exists",
        )

    async def get(self, schedule_id: str) -> CronSchedule | None:
        rows = await self._db.read(BY_ID, (schedule_id,))
        return SCHEDULE_ROWS.schedule_from_row(rows[0]) if rows else None

    async def query(self, tenant_id: str | None) -> list[CronSchedule]:
        rows = await self._db.read(QUERY, {"tenant_id": tenant_id})
        return [SCHEDULE_ROWS.schedule_from_row(r) for r in rows]

    async def update(self, schedule: CronSchedule) -> bool:
        return await self._change(UPDATE, SCHEDULE_ROWS.schedule_update_params(schedule))

    async def delete(self, schedule_id: str) -> bool:
        return await self._change(DELETE, (schedule_id,))

    async def claim_due(self, now: datetime, limit: int) -> list[CronSchedule]:
        if limit <= 0:
            return []
        params = {"now": to_us(now), "limit": limit}
        until = to_us(now + CRON_CLAIM_LEASE)

        async def take(conn: aiosqlite.Connection) -> list[CronSchedule]:
            rows = await fetch_all(conn, DUE, params)
            if rows:
                await conn.executemany(TAKE, [(until, row[0]) for row in rows])
            return [SCHEDULE_ROWS.schedule_from_row(r) for r in rows]

        return await self._db.write(take)

    async def record_fire(
        self, schedule_id: str, fire_at: datetime, next_fire_at: datetime | None, now: datetime
    ) -> bool:
        return await self._change(
            FIRED, SCHEDULE_ROWS.settle_params(schedule_id, fire_at, next_fire_at, now)
        )

    async def record_skip(
        self, schedule_id: str, fire_at: datetime, next_fire_at: datetime | None, now: datetime
    ) -> bool:
        return await self._change(
            SKIPPED, SCHEDULE_ROWS.settle_params(schedule_id, fire_at, next_fire_at, now)
        )

    async def hold(self, schedule_id: str, fire_at: datetime, until: datetime) -> bool:
        return await self._change(HOLD, (schedule_id, to_us(fire_at), to_us(until)))

    async def next_due(self, now: datetime) -> datetime | None:
        rows = await self._db.read(NEXT_DUE, (to_us(now),))
        return from_us(rows[0][0]) if rows else None

    async def active_instance_ids(self, tenant_id: str, schedule_id: str) -> list[str]:
        rows = await self._db.read(ACTIVE, {"schedule_id": schedule_id, "tenant_id": tenant_id})
        return [str(r[0]) for r in rows]
