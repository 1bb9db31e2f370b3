"""Row <-> domain conversions for the SQLite schema.

Kept apart from the stores so each store module holds only its queries and
transaction logic. Times become INTEGER microseconds since the epoch (UTC), so
that ordering and the claim's `next_fire_at <= now` are integer comparisons;
JSON documents become compact TEXT.
"""

from __future__ import annotations

import json
from collections.abc import Sequence as Seq
from datetime import UTC, datetime, timedelta
from typing import Any

from orch8.codec.wire import context_from_json, context_to_json
from orch8.domain.context import ExecutionContext
from orch8.domain.instance import Instance, InstanceState, Priority
from orch8.domain.outputs import BlockOutput
from orch8.domain.signals import Signal, SignalKind
from orch8.domain.tree import Node, NodeState

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_us(value: datetime) -> int:
    """Microseconds since the epoch; naive datetimes are refused, not guessed at."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"storage needs timezone-aware datetimes, got naive {value!r}")
    return (value - _EPOCH) // _MICROSECOND


def to_us_or_none(value: datetime | None) -> int | None:
    return None if value is None else to_us(value)


def from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def from_us_or_none(value: int | None) -> datetime | None:
    return None if value is None else from_us(value)


def dump_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def dump_context(ctx: ExecutionContext) -> str:
    return dump_json(context_to_json(ctx))


def load_context(text: str) -> ExecutionContext:
    return context_from_json(json.loads(text))


def instance_params(inst: Instance) -> tuple[Any, ...]:
    """Parameters in task_instances column order (see instances.INSERT)."""
    return (
        inst.id,
        inst.sequence_id,
        inst.tenant_id,
        inst.namespace,
        inst.state.value,
        to_us_or_none(inst.next_fire_at),
        int(inst.priority),
        inst.timezone,
        dump_json(dict(inst.metadata)),
        dump_context(inst.context),
        inst.concurrency_key,
        inst.max_concurrency,
        inst.idempotency_key,
        inst.parent_instance_id,
        to_us(inst.created_at),
        to_us(inst.updated_at),
    )


def instance_from_row(row: Seq[Any]) -> Instance:
    """A task_instances row, every column in table order."""
    (
        iid,
        sequence_id,
        tenant_id,
        namespace,
        state,
        next_fire_at,
        priority,
        timezone,
        metadata,
        context,
        concurrency_key,
        max_concurrency,
        idempotency_key,
        parent_instance_id,
        created_at,
        updated_at,
    ) = row
    return Instance(
        id=iid,
        sequence_id=sequence_id,
        tenant_id=tenant_id,
        namespace=namespace,
        state=InstanceState(state),
        next_fire_at=from_us_or_none(next_fire_at),
        priority=Priority(priority),
        timezone=timezone,
        metadata=json.loads(metadata),
        context=load_context(context),
        concurrency_key=concurrency_key,
        max_concurrency=max_concurrency,
        idempotency_key=idempotency_key,
        parent_instance_id=parent_instance_id,
        created_at=from_us(created_at),
        updated_at=from_us(updated_at),
    )


def node_params(node: Node) -> tuple[Any, ...]:
    """execution_tree columns block_id .. error, then iteration, branch, ref, reserved_at."""
    return (
        node.block_id,
        node.block_type,
        node.state.value,
        node.parent_id,
        node.branch_index,
        node.attempts,
        to_us_or_none(node.not_before),
        to_us_or_none(node.started_at),
        to_us_or_none(node.completed_at),
        node.error,
        node.iteration,
        node.branch,
        node.ref,
        to_us_or_none(node.reserved_at),
    )


def node_from_row(row: Seq[Any]) -> Node:
    """execution_tree columns block_id .. error, then iteration, branch, ref, reserved_at."""
    (
        block_id,
        block_type,
        state,
        parent_id,
        branch_index,
        attempts,
        not_before,
        started_at,
        completed_at,
        error,
        iteration,
        branch,
        ref,
        reserved_at,
    ) = row
    return Node(
        block_id=block_id,
        block_type=block_type,
        state=NodeState(state),
        parent_id=parent_id,
        branch_index=branch_index,
        attempts=attempts,
        not_before=from_us_or_none(not_before),
        started_at=from_us_or_none(started_at),
        completed_at=from_us_or_none(completed_at),
        error=error,
        iteration=iteration,
        branch=branch,
        ref=ref,
        reserved_at=from_us_or_none(reserved_at),
    )


def output_params(out: BlockOutput) -> tuple[Any, ...]:
    """block_outputs columns except tenant_id, in table order."""
    return (
        out.id,
        out.instance_id,
        out.block_id,
        dump_json(out.output),
        out.output_ref,
        out.output_size,
        out.attempt,
        to_us(out.created_at),
    )


def output_from_row(row: Seq[Any]) -> BlockOutput:
    """block_outputs columns except tenant_id, in table order."""
    oid, instance_id, block_id, output, output_ref, output_size, attempt, created_at = row
    return BlockOutput(
        id=oid,
        instance_id=instance_id,
        block_id=block_id,
        output=json.loads(output),
        output_ref=output_ref,
        output_size=output_size,
        attempt=attempt,
        created_at=from_us(created_at),
    )


def signal_params(signal: Signal) -> tuple[Any, ...]:
    """signal_inbox columns id .. delivered_at, in table order."""
    return (
        signal.id,
        signal.instance_id,
        signal.tenant_id,
        signal.kind.value,
        signal.name,
        dump_json(signal.payload),
        to_us(signal.created_at),
        to_us_or_none(signal.delivered_at),
    )


def signal_from_row(row: Seq[Any]) -> Signal:
    """signal_inbox columns id .. delivered_at, in table order."""
    sid, instance_id, tenant_id, kind, name, payload, created_at, delivered_at = row
    return Signal(
        id=sid,
        instance_id=instance_id,
        tenant_id=tenant_id,
        kind=SignalKind(kind),
        created_at=from_us(created_at),
        payload=json.loads(payload),
        name=name,
        delivered_at=from_us_or_none(delivered_at),
    )
