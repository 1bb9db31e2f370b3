"""Task instances in SQLite: creation, listing, the claim, recovery and heartbeats.

The claim is the hot path. It runs as BEGIN IMMEDIATE (which takes SQLite's
single write lock at once, so two claimers in different processes serialise
instead of both reading the same rows), one ordered SELECT served by the
partial index `idx_task_instances_due`, and an UPDATE of exactly the rows read.
Ties in (priority, next_fire_at) go to the older row (rowid, the insertion
order), which is also the index's own order, so no sort step is needed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence as Seq
from datetime import datetime
from typing import Any

import aiosqlite
from attrs import evolve

from orch8.adapters.sqlite.connection import Database, fetch_all
from orch8.adapters.sqlite.rows import instance_from_row, instance_params, to_us
from orch8.application.ports.storage import InstanceFilter, InstanceStore, Page
from orch8.domain.instance import Instance, InstanceState

INSERT = """
INSERT INTO task_instances (
    id, sequence_id, tenant_id, namespace, state, next_fire_at, priority, timezone,
    metadata, context, concurrency_key, max_concurrency, idempotency_key,
    parent_instance_id, created_at, updated_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
BY_ID = """
SELECT id, sequence_id, tenant_id, namespace, state, next_fire_at, priority, timezone,
       metadata, context, concurrency_key, max_concurrency, idempotency_key,
       parent_instance_id, created_at, updated_at
FROM task_instances WHERE id = ?
"""

# The literal 'scheduled' (not a parameter) is what lets SQLite match the partial index.
CLAIM_SELECT = """
SELECT id, sequence_id, tenant_id, namespace, state, next_fire_at, priority, timezone,
       metadata, context, concurrency_key, max_concurrency, idempotency_key,
       parent_instance_id, created_at, updated_at
FROM task_instances
WHERE state = 'scheduled' AND (next_fire_at IS NULL OR next_fire_at <= ?)
ORDER BY priority DESC, next_fire_at ASC, rowid ASC
LIMIT ?
"""
CLAIM_UPDATE = (
    "UPDATE task_instances SET state = 'running', updated_at = ? "
    "WHERE id = ? AND state = 'scheduled'"
)
RECOVER = (
    "UPDATE task_instances SET state = 'scheduled', next_fire_at = :now, updated_at = :now "
    "WHERE state = 'running' AND updated_at < :stale_before"
)
HEARTBEAT = "UPDATE task_instances SET updated_at = ? WHERE id = ? AND state = 'running'"
# Parents waiting on a child that has finished. The literals `state = 'waiting'
# AND ref IS NOT NULL` match the partial index idx_execution_tree_waiting_ref,
# which holds only nodes waiting for something right now: the sweep reads those,
# looks each child up by id, and each parent to wake by id.
WAKE_PARENTS = """
UPDATE task_instances
SET state = 'scheduled', next_fire_at = ?1, updated_at = ?1
WHERE state = 'waiting' AND id IN (
    SELECT node.instance_id
    FROM execution_tree AS node
    JOIN task_instances AS child ON child.id = node.ref
    WHERE node.state = 'waiting' AND node.ref IS NOT NULL
      AND child.state IN ('completed', 'failed', 'cancelled')
)
"""

# Query filters: each is a constant fragment, chosen by which filter fields are set,
# so SQLite can pick the tenant/state or sequence index for the statement it is given.
_FILTERS = {
    "tenant_id": "tenant_id = :tenant_id",
    "namespace": "namespace = :namespace",
    "sequence_id": "sequence_id = :sequence_id",
    "states": "state IN (SELECT value FROM json_each(:states))",
}
_QUERY_HEAD = """
SELECT id, sequence_id, tenant_id, namespace, state, next_fire_at, priority, timezone,
       metadata, context, concurrency_key, max_concurrency, idempotency_key,
       parent_instance_id, created_at, updated_at
FROM task_instances"""
_QUERY_TAIL = " ORDER BY created_at DESC, id DESC LIMIT :limit OFFSET :offset"


def query_sql(flt: InstanceFilter) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {
        "tenant_id": flt.tenant_id,
        "namespace": flt.namespace,
        "sequence_id": flt.sequence_id,
        "states": json.dumps([s.value for s in flt.states]) if flt.states else None,
    }
    where = [_FILTERS[key] for key, value in params.items() if value is not None]
    # Only the constant fragments above are joined; every value is a bound parameter.
    sql = _QUERY_HEAD + (" WHERE " + " AND ".join(where) if where else "") + _QUERY_TAIL
    return sql, params


class SqliteInstanceStore(InstanceStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, instances: Seq[Instance]) -> None:
        rows = [instance_params(i) for i in instances]
        if not rows:
            return

        async def insert(conn: aiosqlite.Connection) -> None:
            await conn.executemany(INSERT, rows)

        await self._db.write(
            insert, conflict="instance id or idempotency key already exists, or unknown sequence"
        )

    async def get(self, instance_id: str) -> Instance | None:
        rows = await self._db.read(BY_ID, (instance_id,))
        return instance_from_row(rows[0]) if rows else None

    async def query(self, flt: InstanceFilter, page: Page) -> list[Instance]:
        sql, params = query_sql(flt)
        params.update(limit=max(page.limit, 0), offset=max(page.offset, 0))
        return [instance_from_row(r) for r in await self._db.read(sql, params)]

    async def claim_due(self, now: datetime, limit: int) -> list[Instance]:
        if limit <= 0:
            return []
        now_us = to_us(now)

        async def claim(conn: aiosqlite.Connection) -> list[Instance]:
            rows = await fetch_all(conn, CLAIM_SELECT, (now_us, limit))
            if not rows:
                return []
            await conn.executemany(CLAIM_UPDATE, [(now_us, row[0]) for row in rows])
            return [
                evolve(instance_from_row(row), state=InstanceState.RUNNING, updated_at=now)
                for row in rows
            ]

        return await self._db.write(claim)

    async def recover_stale(self, stale_before: datetime, now: datetime) -> int:
        params = {"now": to_us(now), "stale_before": to_us(stale_before)}

        async def recover(conn: aiosqlite.Connection) -> int:
            cursor = await conn.execute(RECOVER, params)
            return cursor.rowcount

        return await self._db.write(recover)

    async def heartbeat(self, instance_ids: Seq[str], now: datetime) -> None:
        if not instance_ids:
            return
        now_us = to_us(now)
        params = [(now_us, iid) for iid in instance_ids]

        async def beat(conn: aiosqlite.Connection) -> None:
            await conn.executemany(HEARTBEAT, params)

        await self._db.write(beat)

    async def wake_parents_of_finished_children(self, now: datetime) -> int:
        params = (to_us(now),)

        async def wake(conn: aiosqlite.Connection) -> int:
            cursor = await conn.execute(WAKE_PARENTS, params)
            return cursor.rowcount

        return await self._db.write(wake)
