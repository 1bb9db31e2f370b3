"""The column lists of the tables the shared mappers read and write, in table order.

The mappers read rows by position and write parameters in this order, so
every statement of either dialect that feeds or is fed by a mapper names its
columns from here: a column added to a mapper and to its list reaches every
such statement at once, and the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable

INSTANCE = """id, sequence_id, tenant_id, namespace, state, next_fire_at, priority, timezone,
    metadata, context, concurrency_key, max_concurrency, idempotency_key,
    parent_instance_id, created_at, updated_at"""
# execution_tree's own columns, after its (instance_id, tenant_id).
NODE = """block_id, block_type, state, parent_id, branch_index, attempts,
    not_before, started_at, completed_at, error, iteration, branch, ref, reserved_at"""
SEQUENCE = "id, tenant_id, namespace, name, version, deprecated, definition, created_at"
SCHEDULE = """id, tenant_id, namespace, sequence_id, cron_expr, timezone, metadata, enabled,
    overlap_policy, next_fire_at, last_triggered_at, skipped_fires, last_skipped_at,
    created_at, updated_at"""
RATE_LIMIT = "tenant_id, resource_key, max_count, window_seconds, created_at, updated_at"
API_KEY = """id, tenant_id, name, capabilities, key_hash, created_at, expires_at, last_used_at,
    revoked_at"""
TASK = """id, instance_id, tenant_id, block_id, handler_name, queue_name, params, context,
    attempt, timeout_ms, state, worker_id, claimed_at, heartbeat_at, claim_epoch, output,
    error_message, error_retryable, created_at, completed_at"""


def names(columns: str) -> list[str]:
    return [name.strip() for name in columns.split(",")]


def prefixed(columns: str, alias: str) -> str:
    """`columns`, each qualified by a table alias (`c.id, c.tenant_id, ...`)."""
    return ", ".join(f"{alias}.{name}" for name in names(columns))


def set_from_excluded(columns: str, *, key: Iterable[str] = ()) -> str:
    """The SET list of an upsert that overwrites `columns` but `key` with the new row's
    values (`excluded`, in both SQLite and PostgreSQL)."""
    kept = set(key)
    return ",\n    ".join(f"{c} = excluded.{c}" for c in names(columns) if c not in kept)
