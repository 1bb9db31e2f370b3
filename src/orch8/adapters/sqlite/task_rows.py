"""Row <-> WorkerTask conversions and the insert that snapshot writes use for new tasks."""

from __future__ import annotations

import json
from collections.abc import Sequence as Seq
from typing import Any

from orch8.adapters.sqlite.rows import dump_json, from_us, from_us_or_none, to_us, to_us_or_none
from orch8.domain.tasks import TaskState, WorkerTask

COLUMNS = """id, instance_id, tenant_id, block_id, handler_name, queue_name, params, context,
    attempt, timeout_ms, state, worker_id, claimed_at, heartbeat_at, claim_epoch, output,
    error_message, error_retryable, created_at, completed_at"""

# A task already stored under its (instance, block, attempt) is left alone while it is
# open; a finished one is replaced (a loop's next iteration runs the step afresh, with
# its attempt count starting again). A task stored under the same id is left alone.
INSERT = f"""
INSERT INTO worker_tasks ({COLUMNS})
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (instance_id, block_id, attempt) DO UPDATE SET
    id = excluded.id,
    tenant_id = excluded.tenant_id,
    handler_name = excluded.handler_name,
    queue_name = excluded.queue_name,
    params = excluded.params,
    context = excluded.context,
    timeout_ms = excluded.timeout_ms,
    state = excluded.state,
    worker_id = excluded.worker_id,
    claimed_at = excluded.claimed_at,
    heartbeat_at = excluded.heartbeat_at,
    claim_epoch = excluded.claim_epoch,
    output = excluded.output,
    error_message = excluded.error_message,
    error_retryable = excluded.error_retryable,
    created_at = excluded.created_at,
    completed_at = excluded.completed_at
WHERE worker_tasks.state IN ('completed', 'failed', 'cancelled')
ON CONFLICT DO NOTHING
"""  # noqa: S608 - constant column list


def _json_or_none(value: Any) -> str | None:
    return None if value is None else dump_json(value)


def task_params(task: WorkerTask) -> tuple[Any, ...]:
    """Parameters in COLUMNS order."""
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
        to_us_or_none(task.claimed_at),
        to_us_or_none(task.heartbeat_at),
        task.claim_epoch,
        _json_or_none(task.output),
        task.error_message,
        None if task.error_retryable is None else int(task.error_retryable),
        to_us(task.created_at),
        to_us_or_none(task.completed_at),
    )


def task_from_row(row: Seq[Any]) -> WorkerTask:
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
    ) = row[:20]
    return WorkerTask(
        id=tid,
        instance_id=instance_id,
        tenant_id=tenant_id,
        block_id=block_id,
        handler_name=handler_name,
        attempt=attempt,
        created_at=from_us(created_at),
        params=json.loads(params),
        context=json.loads(context),
        queue_name=queue_name,
        timeout_ms=timeout_ms,
        state=TaskState(state),
        worker_id=worker_id,
        claimed_at=from_us_or_none(claimed_at),
        heartbeat_at=from_us_or_none(heartbeat_at),
        claim_epoch=claim_epoch,
        output=None if output is None else json.loads(output),
        error_message=error_message,
        error_retryable=None if error_retryable is None else bool(error_retryable),
        completed_at=from_us_or_none(completed_at),
    )
