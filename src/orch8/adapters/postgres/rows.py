"""Row <-> domain conversions for the PostgreSQL schema.

Kept apart from the stores so each store module holds only its queries and
transaction logic. Times are timestamptz (asyncpg hands back UTC-aware
datetimes; naive ones are refused on the way in, never guessed at). JSON
documents travel as compact text and are parsed here, so every JSONB value
round-trips through the same `json` module the other adapters use.
"""

from __future__ import annotations

import json
from collections.abc import Sequence as Seq
from datetime import datetime
from typing import Any

from orch8.adapters.postgres.connection import Record
from orch8.codec.wire import context_from_json, context_to_json
from orch8.domain.context import ExecutionContext
from orch8.domain.instance import Instance, InstanceState, Priority
from orch8.domain.outputs import BlockOutput
from orch8.domain.signals import Signal, SignalKind
from orch8.domain.tree import Node, NodeState


def aware(value: datetime) -> datetime:
    """`value` itself, once checked to carry a timezone."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"storage needs timezone-aware datetimes, got naive {value!r}")
    return value


def aware_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else aware(value)


def dump_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def dump_context(ctx: ExecutionContext) -> str:
    return dump_json(context_to_json(ctx))


def load_context(text: str) -> ExecutionContext:
    return context_from_json(json.loads(text))


def encode_error(error: str | None) -> bytes | None:
    return None if error is None else error.encode("utf-8")


def decode_error(error: bytes | None) -> str | None:
    return None if error is None else bytes(error).decode("utf-8")


def instance_params(inst: Instance) -> tuple[Any, ...]:
    """Parameters in task_instances column order (see instances.INSERT)."""
    return (
        inst.id,
        inst.sequence_id,
        inst.tenant_id,
        inst.namespace,
        inst.state.value,
        aware_or_none(inst.next_fire_at),
        int(inst.priority),
        inst.timezone,
        dump_json(dict(inst.metadata)),
        dump_context(inst.context),
        inst.concurrency_key,
        inst.max_concurrency,
        inst.idempotency_key,
        inst.parent_instance_id,
        aware(inst.created_at),
        aware(inst.updated_at),
    )


def instance_from_row(row: Record) -> Instance:
    """A task_instances row: id .. updated_at, in table order (then maybe more)."""
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
    ) = row[:16]
    return Instance(
        id=iid,
        sequence_id=sequence_id,
        tenant_id=tenant_id,
        namespace=namespace,
        state=InstanceState(state),
        next_fire_at=next_fire_at,
        priority=Priority(priority),
        timezone=timezone,
        metadata=json.loads(metadata),
        context=load_context(context),
        concurrency_key=concurrency_key,
        max_concurrency=max_concurrency,
        idempotency_key=idempotency_key,
        parent_instance_id=parent_instance_id,
        created_at=created_at,
        updated_at=updated_at,
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
        aware_or_none(node.not_before),
        aware_or_none(node.started_at),
        aware_or_none(node.completed_at),
        encode_error(node.error),
        node.iteration,
        node.branch,
        node.ref,
        aware_or_none(node.reserved_at),
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
        not_before=not_before,
        started_at=started_at,
        completed_at=completed_at,
        error=decode_error(error),
        iteration=iteration,
        branch=branch,
        ref=ref,
        reserved_at=reserved_at,
    )


def output_params(out: BlockOutput) -> tuple[Any, ...]:
    """block_outputs columns id .. created_at, in table order."""
    return (
        out.id,
        out.instance_id,
        out.block_id,
        dump_json(out.output),
        out.output_ref,
        out.output_size,
        out.attempt,
        aware(out.created_at),
    )


def output_from_row(row: Record) -> BlockOutput:
    """block_outputs columns id .. created_at, in table order."""
    oid, instance_id, block_id, output, output_ref, output_size, attempt, created_at = row
    return BlockOutput(
        id=oid,
        instance_id=instance_id,
        block_id=block_id,
        output=json.loads(output),
        output_ref=output_ref,
        output_size=output_size,
        attempt=attempt,
        created_at=created_at,
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
        aware(signal.created_at),
        aware_or_none(signal.delivered_at),
    )


def signal_from_row(row: Record) -> Signal:
    """signal_inbox columns id .. delivered_at, in table order."""
    sid, instance_id, tenant_id, kind, name, payload, created_at, delivered_at = row
    return Signal(
        id=sid,
        instance_id=instance_id,
        tenant_id=tenant_id,
        kind=SignalKind(kind),
        created_at=created_at,
        payload=json.loads(payload),
        name=name,
        delivered_at=delivered_at,
    )
