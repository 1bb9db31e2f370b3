"""Task instances in SQLite: creation, listing, the claim, recovery, heartbeats,
and the operator's single and bulk state changes.

The claim (claim.py) is the hot path; bulk statements are in bulk.py. Every
write is one BEGIN IMMEDIATE transaction on the single write connection, so a
guarded update's check and write cannot be split by another writer.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from datetime import datetime
from typing import Any

import aiosqlite

from orch8.adapters.sql.columns import INSTANCE
from orch8.adapters.sql.filters import query_sql
from orch8.adapters.sql.values import dump_context
from orch8.adapters.sqlite import bulk
from orch8.adapters.sqlite.claim import claim
from orch8.adapters.sqlite.connection import Database, fetch_all
from orch8.adapters.sqlite.rows import ROWS, VALUES, to_us
from orch8.application.errors import NotFound, StaleWrite
from orch8.application.ports.storage import InstanceFilter, InstanceStore, Page
from orch8.domain.context import ExecutionContext
from orch8.domain.instance import Instance, InstanceState, Priority

INSERT = f"""
INSERT INTO task_instances ({INSTANCE})
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""  # noqa: S608 - constant columns
BY_ID = f"SELECT {INSTANCE} FROM task_instances WHERE id = ?"  # noqa: S608 - constant columns
# Served by the unique index idx_task_instances_idempotency.
BY_IDEMPOTENCY_KEY = f"""
SELECT {INSTANCE} FROM task_instances WHERE tenant_id = ? AND idempotency_key = ?
"""  # noqa: S608 - constant columns
UPDATE_STATE = """
UPDATE task_instances SET state = ?, next_fire_at = ?, updated_at = ?
WHERE id = ? AND state = ?
RETURNING parent_instance_id
"""
# A parent is made due now (?2) unless it was due earlier; other states stay.
WAKE_PARENT = """
UPDATE task_instances
SET state = 'scheduled', next_fire_at = min(coalesce(next_fire_at, ?2), ?2), updated_at = ?2
WHERE id = ?1 AND state IN ('waiting', 'scheduled')
"""
REPLACE_CONTEXT = """
UPDATE task_instances SET context = ?, updated_at = ?
WHERE id = ? AND state <> 'running'
RETURNING id
"""
STATE_OF = "SELECT state FROM task_instances WHERE id = ?"
# The literals match the partial index idx_task_instances_waiting_due.
HIGHER_DUE = """
SELECT 1 FROM task_instances
WHERE state = 'scheduled' AND priority > ?1 AND (next_fire_at IS NULL OR next_fire_at <= ?2)
LIMIT 1
"""
WAKE_DUE_WAITING = """
UPDATE task_instances SET state = 'scheduled', updated_at = ?1
WHERE state = 'waiting' AND next_fire_at IS NOT NULL AND next_fire_at <= ?1
"""
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

# Listing: the filter's conditions (adapters/sql/filters.py) go between head and order.
_QUERY_HEAD = f"SELECT {INSTANCE} FROM task_instances"  # noqa: S608 - constant columns
_QUERY_ORDER = " ORDER BY created_at DESC, id DESC"


class SqliteInstanceStore(InstanceStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, instances: Seq[Instance]) -> None:
        rows = [ROWS.instance_params(i) for i in instances]
        if not rows:
            return

        async def insert(conn: aiosqlite.Connection) -> None:
            await conn.executemany(INSERT, rows)

        await self._db.write(
            insert, conflict="instance id or idempotency key already exists, or unknown sequence"
        )

    async def get(self, instance_id: str) -> Instance | None:
        rows = await self._db.read(BY_ID, (instance_id,))
        return ROWS.instance_from_row(rows[0]) if rows else None

    async def find_by_idempotency_key(self, tenant_id: str, key: str) -> Instance | None:
        rows = await self._db.read(BY_IDEMPOTENCY_KEY, (tenant_id, key))
        return ROWS.instance_from_row(rows[0]) if rows else None

    async def update_state(
        self,
        instance_id: str,
        expected: InstanceState,
        new: InstanceState,
        next_fire_at: datetime | None,
        now: datetime,
    ) -> None:
        now_us = to_us(now)
        params = (new.value, VALUES.time_or_none(next_fire_at), now_us, instance_id, expected.value)

        async def move(conn: aiosqlite.Connection) -> None:
            rows = await fetch_all(conn, UPDATE_STATE, params)
            if not rows:
                raise StaleWrite(f"instance {instance_id} is no longer {expected.value}")
            parent = rows[0][0]
            if new.is_terminal and parent is not None:
                await conn.execute(WAKE_PARENT, (parent, now_us))

        await self._db.write(move)

    async def replace_context(
        self, instance_id: str, context: ExecutionContext, now: datetime
    ) -> None:
        params = (dump_context(context), to_us(now), instance_id)

        async def replace(conn: aiosqlite.Connection) -> None:
            if await fetch_all(conn, REPLACE_CONTEXT, params):
                return
            if not await fetch_all(conn, STATE_OF, (instance_id,)):
                raise NotFound("instance", instance_id)
            raise StaleWrite(f"instance {instance_id} is running")

        await self._db.write(replace)

    async def bulk_update_state(
        self, flt: InstanceFilter, new_state: InstanceState, now: datetime
    ) -> int:
        statement = bulk.BULK.update_state(flt, new_state, now)
        return 0 if statement is None else await self._execute(*statement)

    async def bulk_reschedule(self, flt: InstanceFilter, offset_seconds: int, now: datetime) -> int:
        statement = bulk.BULK.reschedule(flt, offset_seconds, now)
        return 0 if statement is None else await self._execute(*statement)

    async def has_due_higher_priority(self, priority: Priority, now: datetime) -> bool:
        return bool(await self._db.read(HIGHER_DUE, (int(priority), to_us(now))))

    async def wake_due_waiting(self, now: datetime) -> int:
        return await self._execute(WAKE_DUE_WAITING, (to_us(now),))

    async def _execute(self, sql: str, params: Any) -> int:
        async def run(conn: aiosqlite.Connection) -> int:
            cursor = await conn.execute(sql, params)
            return cursor.rowcount

        return await self._db.write(run)

    async def query(self, flt: InstanceFilter, page: Page) -> list[Instance]:
        sql, params = query_sql(_QUERY_HEAD, _QUERY_ORDER, flt, page, bulk.PLACEHOLDERS)
        return [ROWS.instance_from_row(r) for r in await self._db.read(sql, params)]

    async def claim_due(self, now: datetime, limit: int) -> list[Instance]:
        if limit <= 0:
            return []

        async def take(conn: aiosqlite.Connection) -> list[Instance]:
            return await claim(conn, now, limit)

        return await self._db.write(take)

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
