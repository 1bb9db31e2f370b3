"""Task instances in PostgreSQL: creation, listing, the claim, recovery and heartbeats.

The claim is the hot path, and the reason many orch8 processes can share one
database: one statement selects the due rows in claim order with `FOR UPDATE
SKIP LOCKED` (rows another claimer holds are passed over, not waited for, and
a row that stopped being scheduled while we looked is dropped) and marks
exactly those rows running. The partial index `idx_task_instances_due` has the
ORDER BY's exact shape, so the scan reads due rows in order and stops at
`limit`. Ties in (priority, next_fire_at) go to the older row (insert_order),
as they do in the other adapters.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from datetime import datetime
from typing import Any

from orch8.adapters.postgres.connection import Database, rows_affected
from orch8.adapters.postgres.rows import aware, instance_from_row, instance_params
from orch8.application.ports.storage import InstanceFilter, InstanceStore, Page
from orch8.domain.instance import Instance

# One statement for the whole batch (atomic, one round trip), inserted in list
# order so insert_order follows the caller's order.
INSERT = """
INSERT INTO task_instances (
    id, sequence_id, tenant_id, namespace, state, next_fire_at, priority, timezone,
    metadata, context, concurrency_key, max_concurrency, idempotency_key,
    parent_instance_id, created_at, updated_at
)
SELECT id, sequence_id, tenant_id, namespace, state, next_fire_at, priority, timezone,
       metadata, context, concurrency_key, max_concurrency, idempotency_key,
       parent_instance_id, created_at, updated_at
FROM unnest(
    $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[],
    $7::smallint[], $8::text[], $9::jsonb[], $10::jsonb[], $11::text[], $12::bigint[],
    $13::text[], $14::text[], $15::timestamptz[], $16::timestamptz[]
) WITH ORDINALITY AS batch (
    id, sequence_id, tenant_id, namespace, state, next_fire_at, priority, timezone,
    metadata, context, concurrency_key, max_concurrency, idempotency_key,
    parent_instance_id, created_at, updated_at, ordinality
)
ORDER BY ordinality
"""
BY_ID = """
SELECT id, sequence_id, tenant_id, namespace, state, next_fire_at, priority, timezone,
       metadata, context, concurrency_key, max_concurrency, idempotency_key,
       parent_instance_id, created_at, updated_at
FROM task_instances WHERE id = $1
"""

# The literal 'scheduled' (not a parameter) is what lets the planner use the
# partial index in a generic (prepared) plan.
CLAIM = """
WITH due AS (
    SELECT id FROM task_instances
    WHERE state = 'scheduled' AND (next_fire_at IS NULL OR next_fire_at <= $1)
    ORDER BY priority DESC, next_fire_at ASC NULLS FIRST, insert_order ASC
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE task_instances AS t SET state = 'running', updated_at = $1
    FROM due WHERE t.id = due.id
    RETURNING t.*
)
SELECT id, sequence_id, tenant_id, namespace, state, next_fire_at, priority, timezone,
       metadata, context, concurrency_key, max_concurrency, idempotency_key,
       parent_instance_id, created_at, updated_at
FROM claimed
ORDER BY priority DESC, next_fire_at ASC NULLS FIRST, insert_order ASC
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

# Query filters: each is a constant fragment, chosen by which filter fields are
# set, so the planner sees a statement it can match to the tenant/state or
# sequence index; every value is a bound parameter.
_FILTERS = {
    "tenant_id": "tenant_id = $",
    "namespace": "namespace = $",
    "sequence_id": "sequence_id = $",
    "states": "state = ANY($::text[])",
}
_QUERY_HEAD = """
SELECT id, sequence_id, tenant_id, namespace, state, next_fire_at, priority, timezone,
       metadata, context, concurrency_key, max_concurrency, idempotency_key,
       parent_instance_id, created_at, updated_at
FROM task_instances"""
_QUERY_ORDER = " ORDER BY created_at DESC, id DESC"


def query_sql(flt: InstanceFilter, page: Page) -> tuple[str, list[Any]]:
    values: dict[str, Any] = {
        "tenant_id": flt.tenant_id,
        "namespace": flt.namespace,
        "sequence_id": flt.sequence_id,
        "states": [s.value for s in flt.states] if flt.states else None,
    }
    where: list[str] = []
    params: list[Any] = []
    for key, value in values.items():
        if value is not None:
            params.append(value)
            where.append(_FILTERS[key].replace("$", f"${len(params)}"))
    params += [max(page.limit, 0), max(page.offset, 0)]
    page_sql = f" LIMIT ${len(params) - 1} OFFSET ${len(params)}"
    # Only the constant fragments above are joined; every value is a bound parameter.
    sql = _QUERY_HEAD + (" WHERE " + " AND ".join(where) if where else "") + _QUERY_ORDER
    return sql + page_sql, params


class PostgresInstanceStore(InstanceStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, instances: Seq[Instance]) -> None:
        rows = [instance_params(i) for i in instances]
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
        return instance_from_row(rows[0]) if rows else None

    async def query(self, flt: InstanceFilter, page: Page) -> list[Instance]:
        sql, params = query_sql(flt, page)
        return [instance_from_row(r) for r in await self._db.fetch(sql, *params)]

    async def claim_due(self, now: datetime, limit: int) -> list[Instance]:
        if limit <= 0:
            return []
        rows = await self._db.fetch(CLAIM, aware(now), limit)
        return [instance_from_row(r) for r in rows]

    async def recover_stale(self, stale_before: datetime, now: datetime) -> int:
        status = await self._db.execute(RECOVER, aware(now), aware(stale_before))
        return rows_affected(status)

    async def heartbeat(self, instance_ids: Seq[str], now: datetime) -> None:
        if not instance_ids:
            return
        await self._db.execute(HEARTBEAT, aware(now), list(instance_ids))

    async def wake_parents_of_finished_children(self, now: datetime) -> int:
        return rows_affected(await self._db.execute(WAKE_PARENTS, aware(now)))
