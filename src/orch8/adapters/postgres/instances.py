"""Task instances in PostgreSQL: creation, listing, the claim, recovery, heartbeats,
and the operator's single and bulk state changes.

The claim (claim.py) is the hot path; bulk statements are in bulk.py. Each
guarded change here is one statement, so its check and its write are one
atomic unit even with many processes on one database.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from datetime import datetime

from orch8.adapters.postgres import bulk, claim
from orch8.adapters.postgres.connection import Database, rows_affected
from orch8.adapters.postgres.rows import ROWS, aware, aware_or_none
from orch8.adapters.sql.columns import INSTANCE
from orch8.adapters.sql.filters import query_sql
from orch8.adapters.sql.values import dump_context
from orch8.application.errors import NotFound, StaleWrite
from orch8.application.ports.storage import InstanceFilter, InstanceStore, Page
from orch8.domain.context import ExecutionContext
from orch8.domain.instance import Instance, InstanceState, Priority

# One statement for the whole batch (atomic, one round trip), inserted in list
# order so insert_order follows the caller's order.
INSERT = f"""
INSERT INTO task_instances ({INSTANCE})
SELECT {INSTANCE}
FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
    $7::smallint[], $8::text[], $9::jsonb[], $10::jsonb[], $11::text[], $12::bigint[],
    $13::text[], $14::text[], $15::timestamptz[], $16::timestamptz[]
) WITH ORDINALITY AS batch ({INSTANCE}, ordinality)
ORDER BY ordinality
"""  # noqa: S608 - constant columns
BY_ID = f"SELECT {INSTANCE} FROM task_instances WHERE id = $1"  # noqa: S608 - constant columns
# Served by the unique index idx_task_instances_idempotency.
BY_IDEMPOTENCY_KEY = f"""
SELECT {INSTANCE} FROM task_instances WHERE tenant_id = $1 AND idempotency_key = $2
"""  # noqa: S608 - constant columns
# The guarded move, and (when $6, the target is terminal) the parent's wake-up,
# made due now ($4) unless it was due earlier; LEAST skips a NULL fire time.
UPDATE_STATE = """
WITH moved AS (
    UPDATE task_instances SET state = $2, next_fire_at = $3, updated_at = $4
    WHERE id = $1 AND state = $5
    RETURNING parent_instance_id
), woken AS (
    UPDATE task_instances AS p
    SET state = 'scheduled', next_fire_at = LEAST(p.next_fire_at, $4), updated_at = $4
    FROM moved
    WHERE $6::boolean AND p.id = moved.parent_instance_id
      AND p.state IN ('waiting', 'scheduled')
)
SELECT 1 FROM moved
"""
# The row lock orders the check against concurrent state changes; what it read
# tells a missing instance from a running one.
REPLACE_CONTEXT = """
WITH target AS (
    SELECT id, state FROM task_instances WHERE id = $1 FOR UPDATE
), replaced AS (
    UPDATE task_instances AS t SET context = $2::jsonb, updated_at = $3
    FROM target WHERE t.id = target.id AND target.state <> 'running'
)
SELECT state FROM target
"""
# The literals match the partial index idx_task_instances_waiting_due.
HIGHER_DUE = """
SELECT 1 FROM task_instances
WHERE state = 'scheduled' AND priority > $1 AND (next_fire_at IS NULL OR next_fire_at <= $2)
LIMIT 1
"""
WAKE_DUE_WAITING = """
UPDATE task_instances SET state = 'scheduled', updated_at = $1
WHERE state = 'waiting' AND next_fire_at IS NOT NULL AND next_fire_at <= $1
"""
RECOVER = """
UPDATE task_instances SET state = 'scheduled', next_fire_at = $1, updated_at = $1
WHERE state = 'running' AND updated_at < $2
"""
HEARTBEAT = """
UPDATE task_instances SET updated_at = $1
WHERE id = ANY($2::text[]) AND state = 'running'
"""
# Parents waiting on a child that has finished. The literals `state = 'waiting'
# AND ref IS NOT NULL` match the partial index idx_execution_tree_waiting_ref,
# which holds only nodes waiting for something right now: the sweep reads those,
# looks each child up by id, and each parent to wake by id. A parent another
# statement moves on meanwhile is re-checked (still 'waiting'?) before it is updated.
WAKE_PARENTS = """
UPDATE task_instances
SET state = 'scheduled', next_fire_at = $1, updated_at = $1
WHERE state = 'waiting' AND id IN (
    SELECT node.instance_id
    FROM execution_tree AS node
    JOIN task_instances AS child ON child.id = node.ref
    WHERE node.state = 'waiting' AND node.ref IS NOT NULL
      AND child.state IN ('completed', 'failed', 'cancelled')
)
"""

# Listing: the filter's conditions (adapters/sql/filters.py) go between head and order.
_QUERY_HEAD = f"SELECT {INSTANCE} FROM task_instances"  # noqa: S608 - constant columns
_QUERY_ORDER = " ORDER BY created_at DESC, id DESC"


class PostgresInstanceStore(InstanceStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, instances: Seq[Instance]) -> None:
        rows = [ROWS.instance_params(i) for i in instances]
        if not rows:
            return
        arrays = [list(column) for column in zip(*rows, strict=True)]
        await self._db.execute(
            INSERT,
            *arrays,
            conflict="instance id or idempotency key already exists, or unknown sequence",
        )

    async def get(self, instance_id: str) -> Instance | None:
        rows = await self._db.fetch(BY_ID, instance_id)
        return ROWS.instance_from_row(rows[0]) if rows else None

    async def find_by_idempotency_key(self, tenant_id: str, key: str) -> Instance | None:
        rows = await self._db.fetch(BY_IDEMPOTENCY_KEY, tenant_id, key)
        return ROWS.instance_from_row(rows[0]) if rows else None

    async def update_state(
        self,
        instance_id: str,
        expected: InstanceState,
        new: InstanceState,
        next_fire_at: datetime | None,
        now: datetime,
    ) -> None:
        rows = await self._db.fetch(
            UPDATE_STATE,
            instance_id,
            new.value,
            aware_or_none(next_fire_at),
            aware(now),
            expected.value,
            new.is_terminal,
        )
        if not rows:
            raise StaleWrite(f"instance {instance_id} is no longer {expected.value}")

    async def replace_context(
        self, instance_id: str, context: ExecutionContext, now: datetime
    ) -> None:
        rows = await self._db.fetch(REPLACE_CONTEXT, instance_id, dump_context(context), aware(now))
        if not rows:
            raise NotFound("instance", instance_id)
        if rows[0][0] == InstanceState.RUNNING.value:
            raise StaleWrite(f"instance {instance_id} is running")

    async def bulk_update_state(
        self, flt: InstanceFilter, new_state: InstanceState, now: datetime
    ) -> int:
        statement = bulk.BULK.update_state(flt, new_state, now)
        if statement is None:
            return 0
        sql, params = statement
        return rows_affected(await self._db.execute(sql, *params))

    async def bulk_reschedule(self, flt: InstanceFilter, offset_seconds: int, now: datetime) -> int:
        statement = bulk.BULK.reschedule(flt, offset_seconds, now)
        if statement is None:
            return 0
        sql, params = statement
        return rows_affected(await self._db.execute(sql, *params))

    async def has_due_higher_priority(self, priority: Priority, now: datetime) -> bool:
        return bool(await self._db.fetch(HIGHER_DUE, int(priority), aware(now)))

    async def wake_due_waiting(self, now: datetime) -> int:
        return rows_affected(await self._db.execute(WAKE_DUE_WAITING, aware(now)))

    async def query(self, flt: InstanceFilter, page: Page) -> list[Instance]:
        sql, params = query_sql(_QUERY_HEAD, _QUERY_ORDER, flt, page, bulk.PLACEHOLDERS)
        return [ROWS.instance_from_row(r) for r in await self._db.fetch(sql, *params)]

    async def claim_due(self, now: datetime, limit: int) -> list[Instance]:
        if limit <= 0:
            return []
        return await claim.claim_due(self._db, now, limit)

    async def recover_stale(self, stale_before: datetime, now: datetime) -> int:
        status = await self._db.execute(RECOVER, aware(now), aware(stale_before))
        return rows_affected(status)

    async def heartbeat(self, instance_ids: Seq[str], now: datetime) -> None:
        if not instance_ids:
            return
        await self._db.execute(HEARTBEAT, aware(now), list(instance_ids))

    async def wake_parents_of_finished_children(self, now: datetime) -> int:
        return rows_affected(await self._db.execute(WAKE_PARENTS, aware(now)))
