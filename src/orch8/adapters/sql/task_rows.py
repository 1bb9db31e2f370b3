"""Row <-> WorkerTask conversions, and the answers the task queue builds from rows.

Both schemas hold worker_tasks and worker_registrations with the same columns;
`Values` says how each stores times, flags and error text (a worker's message
may hold a NUL character, which PostgreSQL text refuses).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from itertools import islice
from typing import Any

from attrs import frozen

from orch8.adapters.sql import columns
from orch8.adapters.sql.rows import Row
from orch8.adapters.sql.values import Values, dump_json, json_or_none, load_json_or_none
from orch8.application.errors import Conflict, NotFound
from orch8.application.ports.storage import TaskStats, WorkerSeen
from orch8.domain.task_claims import lost_claim, repeated
from orch8.domain.tasks import TaskState, WorkerTask

# worker_tasks in table order; every query that feeds `TaskRows.task_from_row` selects these.
COLUMNS = columns.TASK
WIDTH = len(columns.names(COLUMNS))
# What a new task's insert overwrites when a finished task holds its (instance,
# block, attempt): every column but that key, so a loop's next iteration runs afresh.
RERUN_SET = columns.set_from_excluded(COLUMNS, key=("instance_id", "block_id", "attempt"))


@frozen
class TaskRows:
    """The task mappers of one dialect."""

    values: Values

    def task_params(self, task: WorkerTask) -> tuple[Any, ...]:
        """Parameters in COLUMNS order."""
        v = self.values
        return (
            task.id,
            task.instance_id,
            task.tenant_id,
            task.block_id,
            task.handler_name,
            task.queue_name,
            dump_json(dict(task.params)),
            dump_json(dict(task.context)),
            task.attempt,
            task.timeout_ms,
            task.state.value,
            task.worker_id,
            v.time_or_none(task.claimed_at),
            v.time_or_none(task.heartbeat_at),
            task.claim_epoch,
            json_or_none(task.output),
            v.error_text_or_none(task.error_message),
            v.flag_or_none(task.error_retryable),
            v.time(task.created_at),
            v.time_or_none(task.completed_at),
        )

    def task_from_row(self, row: Row) -> WorkerTask:
        """A row of COLUMNS (possibly followed by more columns)."""
        (
            tid,
            instance_id,
            tenant_id,
            block_id,
            handler_name,
            queue_name,
            params,
            context,
            attempt,
            timeout_ms,
            state,
            worker_id,
            claimed_at,
            heartbeat_at,
            claim_epoch,
            output,
            error_message,
            error_retryable,
            created_at,
            completed_at,
        ) = islice(row, WIDTH)
        v = self.values
        return WorkerTask(
            id=tid,
            instance_id=instance_id,
            tenant_id=tenant_id,
            block_id=block_id,
            handler_name=handler_name,
            attempt=int(attempt),
            created_at=v.read_time(created_at),
            params=json.loads(params),
            context=json.loads(context),
            queue_name=queue_name,
            timeout_ms=None if timeout_ms is None else int(timeout_ms),
            state=TaskState(state),
            worker_id=worker_id,
            claimed_at=v.read_time_or_none(claimed_at),
            heartbeat_at=v.read_time_or_none(heartbeat_at),
            claim_epoch=int(claim_epoch),
            output=load_json_or_none(output),
            error_message=v.read_error_text_or_none(error_message),
            error_retryable=None if error_retryable is None else bool(error_retryable),
            completed_at=v.read_time_or_none(completed_at),
        )

    def workers_seen(
        self, registrations: Iterable[Row], in_flight: Iterable[Row]
    ) -> list[WorkerSeen]:
        """Registrations (worker_id, handler_name, tenant_id, queue_name, last_seen_at),
        each with its count from `in_flight` (worker_id, handler_name, count)."""
        held = {(w, h): int(n) for w, h, n in in_flight}
        return [
            WorkerSeen(
                worker_id=w,
                handler_name=h,
                tenant_id=t,
                queue_name=q,
                last_seen_at=self.values.read_time(seen),
                in_flight=held.get((w, h), 0),
            )
            for w, h, t, q, seen in registrations
        ]


def task_stats(counts: Iterable[Row], active: Iterable[Row]) -> TaskStats:
    """From (handler_name, state, count) rows and (worker_id,) rows, in a stable order."""
    ordered = sorted((str(h), str(s), int(n)) for h, s, n in counts)
    return TaskStats(
        counts=tuple((h, TaskState(s), n) for h, s, n in ordered),
        active_workers=tuple(sorted(str(w) for (w,) in active)),
    )


def refused_report(
    task: WorkerTask | None,
    task_id: str,
    final: TaskState | None,
    worker_id: str,
    claim_epoch: int | None,
) -> WorkerTask:
    """After a guarded report matched nothing: the task when this is a repeat of the
    report that finished it (`final`), else NotFound or Conflict."""
    if task is None:
        raise NotFound("worker task", task_id)
    if final is not None and repeated(task, final, worker_id, claim_epoch):
        return task
    raise Conflict(lost_claim(task, worker_id, claim_epoch))
