"""The insert of new worker tasks inside a snapshot write, and its notifications."""

from __future__ import annotations

import re

from orch8.adapters.sql.task_rows import RERUN_SET

# Every notification names the handler whose tasks appeared (or came back to pending).
CHANNEL = "orch8_tasks"

# A task already stored under its (instance, block, attempt) is left alone while it is
# open; a finished one is replaced (a loop's next iteration runs the step afresh).
_TASKS = f""", new_tasks AS (
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
        {RERUN_SET}
    WHERE worker_tasks.state IN ('completed', 'failed', 'cancelled')
    RETURNING handler_name
), notified AS (
    SELECT pg_notify('orch8_tasks', h.handler_name)
    FROM (SELECT DISTINCT handler_name FROM new_tasks) AS h
)"""  # noqa: S608 - constant fragments
# The applied ids, reading `notified` so that its notifications are sent
# (a CTE without data modification runs only when something reads it).
NOTIFYING_RESULT = """
SELECT id, (SELECT count(*) FROM notified) AS notified FROM applied
"""
_PLACEHOLDER = re.compile(r"\$t(\d+)")


def tasks_fragment(first: int) -> str:
    """The new-tasks CTEs with their 20 array parameters numbered from `first`."""
    return _PLACEHOLDER.sub(lambda m: f"${first + int(m.group(1)) - 1}", _TASKS)
