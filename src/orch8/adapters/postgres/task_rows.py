"""Row <-> WorkerTask conversions, and the insert of new tasks inside a snapshot write."""

from __future__ import annotations

import json
import re
from typing import Any

from orch8.adapters.postgres.connection import Record
from orch8.adapters.postgres.rows import (
    aware,
    aware_or_none,
    decode_error,
    dump_json,
    encode_error,
)
from orch8.domain.tasks import TaskState, WorkerTask

# Every notification names the handler whose tasks appeared (or came back to pending).
CHANNEL = "orch8_tasks"

COLUMNS = """id, instance_id, tenant_id, block_id, handler_name, queue_name, params, context,
    attempt, timeout_ms, state, worker_id, claimed_at, heartbeat_at, claim_epoch, output,
    error_message, error_retryable, created_at, completed_at"""
WIDTH = 20

# New tasks of the writes whose guard held (`applied`, from snapshot_writes), and a
# notification per handler that got any. `$tN` are renumbered by `tasks_fragment`.
# A task already stored under its (instance, block, attempt) is left alone while it is
# open; a finished one is replaced (a loop's next iteration runs the step afresh).
_TASKS = """, new_tasks AS (
    INSERT INTO worker_tasks (
        id, instance_id, tenant_id, block_id, handler_name, queue_name, params, context,
        attempt, timeout_ms, state, worker_id, claimed_at, heartbeat_at, claim_epoch, output,
        error_message, error_retryable, created_at, completed_at
    )
    SELECT DISTINCT ON (k.instance_id, k.block_id, k.attempt)
           k.id, k.instance_id, k.tenant_id, k.block_id, k.handler_name, k.queue_name,
           k.params, k.context, k.attempt, k.timeout_ms, k.state, k.worker_id, k.claimed_at,
           k.heartbeat_at, k.claim_epoch, k.output, k.error_message, k.error_retryable,
           k.created_at, k.completed_at
    FROM unnest(
        $t1::text[], $t2::text[], $t3::text[], $t4::text[], $t5::text[], $t6::text[],
        $t7::jsonb[], $t8::jsonb[], $t9::bigint[], $t10::bigint[], $t11::text[], $t12::text[],
        $t13::timestamptz[], $t14::timestamptz[], $t15::bigint[], $t16::jsonb[], $t17::bytea[],
        $t18::boolean[], $t19::timestamptz[], $t20::timestamptz[]
    ) WITH ORDINALITY AS k (
        id, instance_id, tenant_id, block_id, handler_name, queue_name, params, context,
        attempt, timeout_ms, state, worker_id, claimed_at, heartbeat_at, claim_epoch, output,
        error_message, error_retryable, created_at, completed_at, ordinality
    )
    JOIN applied AS a ON a.id = k.instance_id
    -- one row per key: a statement's upsert may not touch the same row twice
    ORDER BY k.instance_id, k.block_id, k.attempt, k.ordinality
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
    RETURNING handler_name
), notified AS (
    SELECT pg_notify('orch8_tasks', h.handler_name)
    FROM (SELECT DISTINCT handler_name FROM new_tasks) AS h
)"""
# The applied ids, reading `notified` so that its notifications are sent
# (a CTE without data modification runs only when something reads it).
NOTIFYING_RESULT = """
SELECT id, (SELECT count(*) FROM notified) AS notified FROM applied
"""
_PLACEHOLDER = re.compile(r"\$t(\d+)")


def tasks_fragment(first: int) -> str:
    """The new-tasks CTEs with their 20 array parameters numbered from `first`."""
    return _PLACEHOLDER.sub(lambda m: f"${first + int(m.group(1)) - 1}", _TASKS)


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
        aware_or_none(task.claimed_at),
        aware_or_none(task.heartbeat_at),
        task.claim_epoch,
        _json_or_none(task.output),
        encode_error(task.error_message),
        task.error_retryable,
        aware(task.created_at),
        aware_or_none(task.completed_at),
    )


def task_from_row(row: Record) -> WorkerTask:
    output = row["output"]
    return WorkerTask(
        id=row["id"],
        instance_id=row["instance_id"],
        tenant_id=row["tenant_id"],
        block_id=row["block_id"],
        handler_name=row["handler_name"],
        attempt=int(row["attempt"]),
        created_at=row["created_at"],
        params=json.loads(row["params"]),
        context=json.loads(row["context"]),
        queue_name=row["queue_name"],
        timeout_ms=None if row["timeout_ms"] is None else int(row["timeout_ms"]),
        state=TaskState(row["state"]),
        worker_id=row["worker_id"],
        claimed_at=row["claimed_at"],
        heartbeat_at=row["heartbeat_at"],
        claim_epoch=int(row["claim_epoch"]),
        output=None if output is None else json.loads(output),
        error_message=decode_error(row["error_message"]),
        error_retryable=row["error_retryable"],
        completed_at=row["completed_at"],
    )
