"""Cron schedules in PostgreSQL.

`claim_due` is one statement, so one transaction: it selects the due schedules
with `FOR UPDATE SKIP LOCKED` (a schedule another claimer is taking is passed
over, not waited for) and holds the ones it got (`held_until`) in the same
statement. A claimer whose snapshot predates another's committed hold re-checks
the row under its lock (READ COMMITTED re-evaluates the WHERE on the newest
version) and drops it, so two processes never take the same schedule.
Settling a fire is one guarded UPDATE (`next_fire_at` must still be the
occurrence settled).
"""

from __future__ import annotations

from datetime import datetime

from orch8.adapters.postgres.connection import Database, rows_affected
from orch8.adapters.postgres.rows import SCHEDULE_ROWS, aware
from orch8.adapters.sql.columns import SCHEDULE
from orch8.application.ports.storage import CRON_CLAIM_LEASE, CronStore
from orch8.domain.cron import CronSchedule

INSERT = f"""
INSERT INTO cron_schedules ({SCHEDULE})
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, $12, $13, $14, $15)
"""  # noqa: S608 - constant columns
BY_ID = f"""
SELECT {SCHEDULE}
FROM cron_schedules WHERE id = $1
"""  # noqa: S608 - constant columns
QUERY = f"""
SELECT {SCHEDULE}
FROM cron_schedules
WHERE ($1::text IS NULL OR tenant_id = $1)
ORDER BY created_at, id
"""  # noqa: S608 - constant columns
UPDATE = """
UPDATE cron_schedules
SET cron_expr = $2, timezone = $3, metadata = $4::jsonb, enabled = $5, overlap_policy = $6,
    next_fire_at = $7, updated_at = $8, held_until = NULL
WHERE id = $1
"""
DELETE = "DELETE FROM cron_schedules WHERE id = $1"
# The bare `enabled` predicate is what lets the planner use idx_cron_schedules_due.
CLAIM = """
WITH due AS (
    SELECT id FROM cron_schedules
    WHERE enabled AND next_fire_at <= $1 AND (held_until IS NULL OR held_until <= $1)
    ORDER BY next_fire_at, id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE cron_schedules AS c SET held_until = $3
FROM due WHERE c.id = due.id
RETURNING c.id, c.tenant_id, c.namespace, c.sequence_id, c.cron_expr, c.timezone,
          c.metadata, c.enabled, c.overlap_policy, c.next_fire_at, c.last_triggered_at,
          c.skipped_fires, c.last_skipped_at, c.created_at, c.updated_at
"""
FIRED = """
UPDATE cron_schedules
SET last_triggered_at = $4, updated_at = $4, next_fire_at = $3, held_until = NULL
WHERE id = $1 AND next_fire_at = $2
"""
SKIPPED = """
UPDATE cron_schedules
SET skipped_fires = skipped_fires + 1, last_skipped_at = $4, updated_at = $4,
    next_fire_at = $3, held_until = NULL
WHERE id = $1 AND next_fire_at = $2
"""
NEXT_DUE = """
SELECT next_fire_at FROM cron_schedules
WHERE enabled AND next_fire_at IS NOT NULL AND (held_until IS NULL OR held_until <= $1)
ORDER BY next_fire_at, id
LIMIT 1
"""
HOLD = "UPDATE cron_schedules SET held_until = $3 WHERE id = $1 AND next_fire_at = $2"
# The IS NOT NULL term is the partial index idx_task_instances_cron's own predicate.
ACTIVE = """
SELECT id FROM task_instances
WHERE (metadata ->> 'cron_schedule_id') = $2
  AND (metadata ->> 'cron_schedule_id') IS NOT NULL
  AND tenant_id = $1
  AND state IN ('scheduled', 'running', 'waiting', 'paused')
ORDER BY created_at, insert_order
"""


class PostgresCronStore(CronStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, schedule: CronSchedule) -> None:
        await self._db.execute(
            INSERT,
            *SCHEDULE_ROWS.schedule_params(schedule),
            conflict=f"cron schedule {schedule.id} already exists",
        )

    async def get(self, schedule_id: str) -> CronSchedule | None:
        rows = await self._db.fetch(BY_ID, schedule_id)
        return SCHEDULE_ROWS.schedule_from_row(rows[0]) if rows else None

    async def query(self, tenant_id: str | None) -> list[CronSchedule]:
        return [SCHEDULE_ROWS.schedule_from_row(r) for r in await self._db.fetch(QUERY, tenant_id)]

    async def update(self, schedule: CronSchedule) -> bool:
        status = await self._db.execute(UPDATE, *SCHEDULE_ROWS.schedule_update_params(schedule))
        return rows_affected(status) > 0

    async def delete(self, schedule_id: str) -> bool:
        return rows_affected(await self._db.execute(DELETE, schedule_id)) > 0

    async def claim_due(self, now: datetime, limit: int) -> list[CronSchedule]:
        if limit <= 0:
            return []
        rows = await self._db.fetch(CLAIM, aware(now), limit, aware(now + CRON_CLAIM_LEASE))
        taken = [SCHEDULE_ROWS.schedule_from_row(r) for r in rows]
        taken.sort(key=lambda s: (s.next_fire_at, s.id))
        return taken

    async def record_fire(
        self, schedule_id: str, fire_at: datetime, next_fire_at: datetime | None, now: datetime
    ) -> bool:
        settled = SCHEDULE_ROWS.settle_params(schedule_id, fire_at, next_fire_at, now)
        status = await self._db.execute(FIRED, *settled)
        return rows_affected(status) > 0

    async def record_skip(
        self, schedule_id: str, fire_at: datetime, next_fire_at: datetime | None, now: datetime
    ) -> bool:
        settled = SCHEDULE_ROWS.settle_params(schedule_id, fire_at, next_fire_at, now)
        status = await self._db.execute(SKIPPED, *settled)
        return rows_affected(status) > 0

    async def hold(self, schedule_id: str, fire_at: datetime, until: datetime) -> bool:
        status = await self._db.execute(HOLD, schedule_id, aware(fire_at), aware(until))
        return rows_affected(status) > 0

    async def next_due(self, now: datetime) -> datetime | None:
        rows = await self._db.fetch(NEXT_DUE, aware(now))
        return rows[0]["next_fire_at"] if rows else None

    async def active_instance_ids(self, tenant_id: str, schedule_id: str) -> list[str]:
        rows = await self._db.fetch(ACTIVE, tenant_id, schedule_id)
        return [str(r["id"]) for r in rows]
