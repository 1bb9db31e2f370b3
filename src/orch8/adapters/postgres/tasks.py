"""Worker tasks in PostgreSQL: the worker protocol's side of the TaskQueue port.

New tasks are inserted by the snapshot write that parks their step
(snapshot_writes.py, with new_tasks.tasks_fragment), which also sends
`NOTIFY orch8_tasks, '<handler_name>'` (task_listener.py wakes long-polls).

Every method is one statement, so one atomic unit. The poll is Orch8's claim:
`UPDATE ... WHERE id IN (SELECT id ... ORDER BY created_at LIMIT n FOR UPDATE
SKIP LOCKED) RETURNING ...`, so concurrent polls (in any process) take
disjoint tasks without waiting for each other, plus the upsert of the worker's
registration. A report (heartbeat, complete, fail) is one guarded UPDATE
(`state = 'claimed' AND worker_id = $ AND claim_epoch = $`) which, for
complete and fail, makes the instance due in the same statement; when the
guard matches nothing the row is read to tell an unknown task (NotFound) from
a repeated report (answered with the task) from a lost claim (Conflict).
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from datetime import datetime
from typing import Any

from orch8.adapters.postgres.connection import Database, Record, rows_affected
from orch8.adapters.postgres.rows import TASK_ROWS, VALUES, aware
from orch8.adapters.sql.task_rows import COLUMNS, refused_report, task_stats
from orch8.adapters.sql.values import dump_json
from orch8.application.ports.storage import Page, TaskFilter, TaskQueue, TaskStats, WorkerSeen
from orch8.domain.task_claims import TIMED_OUT, UNSCOPED
from orch8.domain.tasks import TaskState, WorkerTask

GET = f"SELECT {COLUMNS} FROM worker_tasks WHERE id = $1"  # noqa: S608 - constant columns
# $1 handler, $2 worker, $3 now, $4 queue (NULL: any), $5 tenant (NULL: any),
# $6 the registration's tenant ('' when unscoped), $7 limit. The literal
# 'pending' lets the planner use idx_worker_tasks_pending, whose shape is the ORDER BY.
CLAIM = f"""
WITH seen AS (
    INSERT INTO worker_registrations (worker_id, handler_name, tenant_id, queue_name, last_seen_at)
    VALUES ($2, $1, $6, $4, $3)
    ON CONFLICT (worker_id, handler_name, tenant_id) DO UPDATE SET
        queue_name = EXCLUDED.queue_name, last_seen_at = EXCLUDED.last_seen_at
)
UPDATE worker_tasks
SET state = 'claimed', worker_id = $2, claimed_at = $3, heartbeat_at = $3,
    claim_epoch = claim_epoch + 1
WHERE id IN (
    SELECT id FROM worker_tasks
    WHERE handler_name = $1 AND state = 'pending'
      AND ($4::text IS NULL OR queue_name = $4) AND ($5::text IS NULL OR tenant_id = $5)
    ORDER BY created_at, insert_order
    LIMIT $7
    FOR UPDATE SKIP LOCKED
)
RETURNING {COLUMNS}, insert_order
"""  # noqa: S608 - constant columns
# The claim fence: still claimed, by this worker ($2), at this epoch ($3; NULL: any).
_HELD = """id = $1 AND state = 'claimed' AND worker_id = $2
    AND ($3::bigint IS NULL OR claim_epoch = $3)"""
# Due now ($4) unless due earlier (LEAST skips a NULL fire time); other states stay.
_WAKE = """, woken AS (
    UPDATE task_instances AS i
    SET state = 'scheduled', next_fire_at = LEAST(i.next_fire_at, $4), updated_at = $4
    FROM done WHERE i.id = done.instance_id AND i.state IN ('waiting', 'scheduled')
)
SELECT * FROM done
"""
HEARTBEAT = f"""
UPDATE worker_tasks SET heartbeat_at = $4 WHERE {_HELD} RETURNING {COLUMNS}
"""  # noqa: S608 - constant fragments
COMPLETE = f"""
WITH done AS (
    UPDATE worker_tasks SET state = 'completed', output = $5::jsonb, completed_at = $4
    WHERE {_HELD} RETURNING {COLUMNS}
){_WAKE}"""  # noqa: S608 - constant fragments
FAIL = f"""
WITH done AS (
    UPDATE worker_tasks
    SET state = 'failed', error_message = $5, error_retryable = $6, completed_at = $4
    WHERE {_HELD} RETURNING {COLUMNS}
){_WAKE}"""  # noqa: S608 - constant fragments
QUERY = f"""
SELECT {COLUMNS} FROM worker_tasks
WHERE ($1::text IS NULL OR tenant_id = $1) AND ($2::text IS NULL OR handler_name = $2)
  AND ($3::text IS NULL OR state = $3) AND ($4::text IS NULL OR instance_id = $4)
ORDER BY created_at DESC, insert_order DESC
LIMIT $5 OFFSET $6
"""  # noqa: S608 - constant columns
RESULTS = f"""
SELECT DISTINCT ON (block_id) {COLUMNS} FROM worker_tasks
WHERE instance_id = $1 AND block_id = ANY($2::text[])
ORDER BY block_id, created_at DESC, insert_order DESC
"""  # noqa: S608 - constant columns
CANCEL = """
UPDATE worker_tasks SET state = 'cancelled', completed_at = $3
WHERE instance_id = $1 AND block_id = ANY($2::text[]) AND state IN ('pending', 'claimed')
"""
REAP_BATCH = 1000
# A batch of stale claims back to pending, skipping rows a concurrent reaper holds,
# and a notification per handler so that waiting long-polls try again.
REAP = """
WITH stale AS (
    SELECT id FROM worker_tasks
    WHERE state = 'claimed' AND heartbeat_at < $1
    ORDER BY heartbeat_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), reaped AS (
    UPDATE worker_tasks AS t
    SET state = 'pending', worker_id = NULL, claimed_at = NULL, heartbeat_at = NULL
    FROM stale WHERE t.id = stale.id
    RETURNING t.handler_name
), notified AS (
    SELECT pg_notify('orch8_tasks', h.handler_name)
    FROM (SELECT DISTINCT handler_name FROM reaped) AS h
)
SELECT (SELECT count(*) FROM reaped) AS reaped, (SELECT count(*) FROM notified) AS notified
"""
EXPIRE = """
WITH expired AS (
    UPDATE worker_tasks
    SET state = 'failed', error_message = $2, error_retryable = FALSE, completed_at = $1
    WHERE state IN ('pending', 'claimed') AND timeout_ms IS NOT NULL
      AND created_at + timeout_ms * INTERVAL '1 millisecond' <= $1
    RETURNING instance_id
), woken AS (
    UPDATE task_instances AS i
    SET state = 'scheduled', next_fire_at = LEAST(i.next_fire_at, $1), updated_at = $1
    WHERE i.id IN (SELECT instance_id FROM expired) AND i.state IN ('waiting', 'scheduled')
)
SELECT count(*) FROM expired
"""
REGISTRATIONS = """
SELECT worker_id, handler_name, tenant_id, queue_name, last_seen_at
FROM worker_registrations
WHERE $1::text IS NULL OR tenant_id IN ($1, '')
ORDER BY last_seen_at DESC, worker_id, handler_name, tenant_id
"""
IN_FLIGHT = """
SELECT worker_id, handler_name, count(*) FROM worker_tasks
WHERE state = 'claimed' AND ($1::text IS NULL OR tenant_id = $1)
GROUP BY worker_id, handler_name
"""
COUNTS = """
SELECT handler_name, state, count(*) FROM worker_tasks
WHERE $1::text IS NULL OR tenant_id = $1
GROUP BY handler_name, state
"""
ACTIVE = """
SELECT DISTINCT worker_id FROM worker_tasks
WHERE state = 'claimed' AND worker_id IS NOT NULL AND ($1::text IS NULL OR tenant_id = $1)
"""


class PostgresTaskQueue(TaskQueue):
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
        seen_as = UNSCOPED if tenant_id is None else tenant_id
        rows = await self._db.fetch(
            CLAIM,
            handler_name,
            worker_id,
            aware(now),
            queue_name,
            tenant_id,
            seen_as,
            max(limit, 0),
        )
        rows.sort(key=lambda r: (r["created_at"], r["insert_order"]))  # RETURNING has no order
        return [TASK_ROWS.task_from_row(r) for r in rows]

    async def _report(
        self, sql: str, args: list[Any], final: TaskState | None, worker_id: str
    ) -> WorkerTask:
        task_id, epoch = str(args[0]), args[2]
        rows = await self._db.fetch(sql, *args)
        if rows:
            return TASK_ROWS.task_from_row(rows[0])
        return refused_report(await self.get(task_id), task_id, final, worker_id, epoch)

    async def heartbeat(
        self, task_id: str, worker_id: str, claim_epoch: int | None, now: datetime
    ) -> WorkerTask:
        args = [task_id, worker_id, claim_epoch, aware(now)]
        return await self._report(HEARTBEAT, args, None, worker_id)

    async def complete(
        self, task_id: str, worker_id: str, claim_epoch: int | None, output: Any, now: datetime
    ) -> WorkerTask:
        args = [task_id, worker_id, claim_epoch, aware(now), dump_json(output)]
        return await self._report(COMPLETE, args, TaskState.COMPLETED, worker_id)

    async def fail(
        self,
        task_id: str,
        worker_id: str,
        claim_epoch: int | None,
        message: str,
        retryable: bool,
        now: datetime,
    ) -> WorkerTask:
        args = [task_id, worker_id, claim_epoch, aware(now), VALUES.error_text(message), retryable]
        return await self._report(FAIL, args, TaskState.FAILED, worker_id)

    async def get(self, task_id: str) -> WorkerTask | None:
        rows = await self._db.fetch(GET, task_id)
        return TASK_ROWS.task_from_row(rows[0]) if rows else None

    async def query(self, flt: TaskFilter, page: Page) -> list[WorkerTask]:
        state = None if flt.state is None else flt.state.value
        rows = await self._db.fetch(
            QUERY,
            flt.tenant_id,
            flt.handler_name,
            state,
            flt.instance_id,
            page.limit,
            page.offset,
        )
        return [TASK_ROWS.task_from_row(r) for r in rows]

    async def results(self, instance_id: str, block_ids: Seq[str]) -> dict[str, WorkerTask]:
        rows = await self._db.fetch(RESULTS, instance_id, list(block_ids))
        return {str(r["block_id"]): TASK_ROWS.task_from_row(r) for r in rows}

    async def cancel_open(self, instance_id: str, block_ids: Seq[str], now: datetime) -> int:
        status = await self._db.execute(CANCEL, instance_id, list(block_ids), aware(now))
        return rows_affected(status)

    async def reap_stale(self, heartbeat_before: datetime, now: datetime) -> int:
        total = 0
        while True:
            rows: list[Record] = await self._db.fetch(REAP, aware(heartbeat_before), REAP_BATCH)
            reaped = int(rows[0]["reaped"])
            total += reaped
            if reaped < REAP_BATCH:
                return total

    async def expire_timed_out(self, now: datetime) -> int:
        rows = await self._db.fetch(EXPIRE, aware(now), VALUES.error_text(TIMED_OUT))
        return int(rows[0][0])

    async def workers(self, tenant_id: str | None) -> list[WorkerSeen]:
        in_flight = await self._db.fetch(IN_FLIGHT, tenant_id)
        return TASK_ROWS.workers_seen(await self._db.fetch(REGISTRATIONS, tenant_id), in_flight)

    async def stats(self, tenant_id: str | None) -> TaskStats:
        return task_stats(
            await self._db.fetch(COUNTS, tenant_id), await self._db.fetch(ACTIVE, tenant_id)
        )
