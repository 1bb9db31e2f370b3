"""Worker tasks in SQLite: the worker protocol's side of the TaskQueue port.

New tasks are inserted by the snapshot write that parks their step
(snapshot_writes.py, with new_tasks.INSERT). Every change here is one
BEGIN IMMEDIATE transaction on the single writer, which is what makes a claim
disjoint: no two polls can take the same pending row, in this process or in
another sharing the file. A report (heartbeat, complete, fail) is one guarded
UPDATE (`state = 'claimed' AND worker_id = ? AND claim_epoch = ?`); when it
matches nothing, the row is read to tell an unknown task (NotFound) from a
repeated report (answered with the task) from a lost claim (Conflict).
Completing or failing a task makes its instance due in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence as Seq
from datetime import datetime
from typing import Any

import aiosqlite

from orch8.adapters.sql.task_rows import COLUMNS, refused_report, task_stats
from orch8.adapters.sql.values import dump_json
from orch8.adapters.sqlite.connection import Database, fetch_all
from orch8.adapters.sqlite.rows import TASK_ROWS, to_us
from orch8.application.ports.storage import Page, TaskFilter, TaskQueue, TaskStats, WorkerSeen
from orch8.domain.task_claims import TIMED_OUT, UNSCOPED
from orch8.domain.tasks import TaskState, WorkerTask

GET = f"SELECT {COLUMNS} FROM worker_tasks WHERE id = ?"  # noqa: S608 - constant columns
# The literal 'pending' lets SQLite use idx_worker_tasks_pending; the optional
# filters are `? IS NULL OR ...` so one statement serves every poll.
CLAIM = f"""
UPDATE worker_tasks
SET state = 'claimed', worker_id = :worker, claimed_at = :now, heartbeat_at = :now,
    claim_epoch = claim_epoch + 1
WHERE id IN (
    SELECT id FROM worker_tasks
    WHERE handler_name = :handler AND state = 'pending'
      AND (:queue IS NULL OR queue_name = :queue)
      AND (:tenant IS NULL OR tenant_id = :tenant)
    ORDER BY created_at, rowid
    LIMIT :limit
)
RETURNING {COLUMNS}, rowid
"""  # noqa: S608 - constant column list
SEEN = """
INSERT INTO worker_registrations (worker_id, handler_name, tenant_id, queue_name, last_seen_at)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (worker_id, handler_name, tenant_id) DO UPDATE SET
    queue_name = excluded.queue_name, last_seen_at = excluded.last_seen_at
"""
# The claim fence: still claimed, by this worker, at this epoch (NULL: any epoch).
_HELD = """id = :id AND state = 'claimed' AND worker_id = :worker
    AND (:epoch IS NULL OR claim_epoch = :epoch)"""
HEARTBEAT = f"""
UPDATE worker_tasks SET heartbeat_at = :now
WHERE {_HELD} RETURNING {COLUMNS}
"""  # noqa: S608 - constant fragments
COMPLETE = f"""
UPDATE worker_tasks SET state = 'completed', output = :output, completed_at = :now
WHERE {_HELD} RETURNING {COLUMNS}
"""  # noqa: S608 - constant fragments
FAIL = f"""
UPDATE worker_tasks
SET state = 'failed', error_message = :message, error_retryable = :retryable, completed_at = :now
WHERE {_HELD} RETURNING {COLUMNS}
"""  # noqa: S608 - constant fragments
# Due now unless due earlier (a NULL fire time counts as "now"); other states stay.
WAKE = """
UPDATE task_instances
SET state = 'scheduled', next_fire_at = min(coalesce(next_fire_at, ?2), ?2), updated_at = ?2
WHERE id = ?1 AND state IN ('waiting', 'scheduled')
"""
QUERY = f"""
SELECT {COLUMNS} FROM worker_tasks
WHERE (:tenant IS NULL OR tenant_id = :tenant)
  AND (:handler IS NULL OR handler_name = :handler)
  AND (:state IS NULL OR state = :state)
  AND (:instance IS NULL OR instance_id = :instance)
ORDER BY created_at DESC, rowid DESC
LIMIT :limit OFFSET :offset
"""  # noqa: S608 - constant fragments
RESULTS = f"""
SELECT {COLUMNS} FROM worker_tasks
WHERE instance_id = ? AND block_id IN (SELECT value FROM json_each(?))
ORDER BY created_at DESC, rowid DESC
"""  # noqa: S608 - constant fragments
CANCEL = """
UPDATE worker_tasks SET state = 'cancelled', completed_at = ?
WHERE instance_id = ? AND block_id IN (SELECT value FROM json_each(?))
  AND state IN ('pending', 'claimed')
"""
REAP = """
UPDATE worker_tasks
SET state = 'pending', worker_id = NULL, claimed_at = NULL, heartbeat_at = NULL
WHERE state = 'claimed' AND heartbeat_at < ?
"""
EXPIRE = """
UPDATE worker_tasks
SET state = 'failed', error_message = :message, error_retryable = 0, completed_at = :now
WHERE state IN ('pending', 'claimed') AND timeout_ms IS NOT NULL
  AND created_at + timeout_ms * 1000 <= :now
RETURNING instance_id
"""
REGISTRATIONS = """
SELECT worker_id, handler_name, tenant_id, queue_name, last_seen_at
FROM worker_registrations
WHERE :tenant IS NULL OR tenant_id IN (:tenant, '')
ORDER BY last_seen_at DESC, worker_id, handler_name, tenant_id
"""
IN_FLIGHT = """
SELECT worker_id, handler_name, count(*) FROM worker_tasks
WHERE state = 'claimed' AND (:tenant IS NULL OR tenant_id = :tenant)
GROUP BY worker_id, handler_name
"""
COUNTS = """
SELECT handler_name, state, count(*) FROM worker_tasks
WHERE :tenant IS NULL OR tenant_id = :tenant
GROUP BY handler_name, state
"""
ACTIVE = """
SELECT DISTINCT worker_id FROM worker_tasks
WHERE state = 'claimed' AND worker_id IS NOT NULL AND (:tenant IS NULL OR tenant_id = :tenant)
"""


async def _refused(
    conn: aiosqlite.Connection,
    task_id: str,
    final: TaskState | None,
    worker_id: str,
    claim_epoch: int | None,
) -> WorkerTask:
    rows = await fetch_all(conn, GET, (task_id,))
    task = TASK_ROWS.task_from_row(rows[0]) if rows else None
    return refused_report(task, task_id, final, worker_id, claim_epoch)


class SqliteTaskQueue(TaskQueue):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def poll(
        self,
        handler_name: str,
        worker_id: str,
        limit: int,
        now: datetime,
        *,
        queue_name: str | None = None,
        tenant_id: str | None = None,
    ) -> list[WorkerTask]:
        stamp = to_us(now)
        tenant = UNSCOPED if tenant_id is None else tenant_id
        claim = {
            "worker": worker_id,
            "now": stamp,
            "handler": handler_name,
            "queue": queue_name,
            "tenant": tenant_id,
            "limit": max(limit, 0),
        }

        async def take(conn: aiosqlite.Connection) -> list[tuple[Any, ...]]:
            await conn.execute(SEEN, (worker_id, handler_name, tenant, queue_name, stamp))
            return await fetch_all(conn, CLAIM, claim) if limit > 0 else []

        rows = await self._db.write(take)
        rows.sort(key=lambda r: (r[18], r[20]))  # RETURNING has no order: created_at, rowid
        return [TASK_ROWS.task_from_row(r) for r in rows]

    async def _report(
        self,
        sql: str,
        params: dict[str, Any],
        final: TaskState | None,
        now: datetime,
    ) -> WorkerTask:
        async def report(conn: aiosqlite.Connection) -> WorkerTask:
            rows = await fetch_all(conn, sql, params)
            if not rows:
                return await _refused(conn, params["id"], final, params["worker"], params["epoch"])
            task = TASK_ROWS.task_from_row(rows[0])
            if final is not None:
                await conn.execute(WAKE, (task.instance_id, to_us(now)))
            return task

        return await self._db.write(report)

    async def heartbeat(
        self, task_id: str, worker_id: str, claim_epoch: int | None, now: datetime
    ) -> WorkerTask:
        params = {"id": task_id, "worker": worker_id, "epoch": claim_epoch, "now": to_us(now)}
        return await self._report(HEARTBEAT, params, None, now)

    async def complete(
        self, task_id: str, worker_id: str, claim_epoch: int | None, output: Any, now: datetime
    ) -> WorkerTask:
        params = {
            "id": task_id,
            "worker": worker_id,
            "epoch": claim_epoch,
            "now": to_us(now),
            "output": dump_json(output),
        }
        return await self._report(COMPLETE, params, TaskState.COMPLETED, now)

    async def fail(
        self,
        task_id: str,
        worker_id: str,
        claim_epoch: int | None,
        message: str,
        retryable: bool,
        now: datetime,
    ) -> WorkerTask:
        params = {
            "id": task_id,
            "worker": worker_id,
            "epoch": claim_epoch,
            "now": to_us(now),
            "message": message,
            "retryable": int(retryable),
        }
        return await self._report(FAIL, params, TaskState.FAILED, now)

    async def get(self, task_id: str) -> WorkerTask | None:
        rows = await self._db.read(GET, (task_id,))
        return TASK_ROWS.task_from_row(rows[0]) if rows else None

    async def query(self, flt: TaskFilter, page: Page) -> list[WorkerTask]:
        params = {
            "tenant": flt.tenant_id,
            "handler": flt.handler_name,
            "state": None if flt.state is None else flt.state.value,
            "instance": flt.instance_id,
            "limit": page.limit,
            "offset": page.offset,
        }
        return [TASK_ROWS.task_from_row(r) for r in await self._db.read(QUERY, params)]

    async def results(self, instance_id: str, block_ids: Seq[str]) -> dict[str, WorkerTask]:
        newest: dict[str, WorkerTask] = {}
        for row in await self._db.read(RESULTS, (instance_id, json.dumps(list(block_ids)))):
            task = TASK_ROWS.task_from_row(row)
            newest.setdefault(task.block_id, task)  # rows come newest first
        return newest

    async def cancel_open(self, instance_id: str, block_ids: Seq[str], now: datetime) -> int:
        params = (to_us(now), instance_id, json.dumps(list(block_ids)))

        async def cancel(conn: aiosqlite.Connection) -> int:
            return (await conn.execute(CANCEL, params)).rowcount

        return await self._db.write(cancel)

    async def reap_stale(self, heartbeat_before: datetime, now: datetime) -> int:
        async def reap(conn: aiosqlite.Connection) -> int:
            return (await conn.execute(REAP, (to_us(heartbeat_before),))).rowcount

        return await self._db.write(reap)

    async def expire_timed_out(self, now: datetime) -> int:
        stamp = to_us(now)

        async def expire(conn: aiosqlite.Connection) -> int:
            rows = await fetch_all(conn, EXPIRE, {"message": TIMED_OUT, "now": stamp})
            instances = sorted({str(r[0]) for r in rows})
            if instances:
                await conn.executemany(WAKE, [(i, stamp) for i in instances])
            return len(rows)

        return await self._db.write(expire)

    async def workers(self, tenant_id: str | None) -> list[WorkerSeen]:
        scope = {"tenant": tenant_id}
        in_flight = await self._db.read(IN_FLIGHT, scope)
        return TASK_ROWS.workers_seen(await self._db.read(REGISTRATIONS, scope), in_flight)

    async def stats(self, tenant_id: str | None) -> TaskStats:
        scope = {"tenant": tenant_id}
        return task_stats(await self._db.read(COUNTS, scope), await self._db.read(ACTIVE, scope))
