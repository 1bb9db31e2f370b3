"""Small builders for storage contract tests: valid objects with overridable fields."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from orch8.application.ports.storage import SnapshotWrite
from orch8.domain.context import ExecutionContext
from orch8.domain.instance import Instance, InstanceState, Priority
from orch8.domain.outputs import BlockOutput
from orch8.domain.sequence import Sequence, StepBlock
from orch8.domain.tree import Node, NodeState

_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}-{next(_ids):06d}"


def now() -> datetime:
    """Now, in UTC. Python datetimes stop at microseconds, which every backend keeps."""
    return datetime.now(UTC)


# The suite's reference instant; tests place everything relative to it.
T0 = now()


def at(seconds: float, base: datetime | None = None) -> datetime:
    return (base or T0) + timedelta(seconds=seconds)


def make_sequence(
    name: str = "welcome",
    version: int = 1,
    *,
    tenant_id: str = "acme",
    namespace: str = "default",
    created_at: datetime | None = None,
    deprecated: bool = False,
    id: str | None = None,
) -> Sequence:
    return Sequence(
        id=id or new_id("seq"),
        tenant_id=tenant_id,
        namespace=namespace,
        name=name,
        version=version,
        blocks=(
            StepBlock(id="greet", handler="log", params={"message": "hi {{ data.name }}"}),
            StepBlock(id="done", handler="noop"),
        ),
        created_at=created_at or T0,
        deprecated=deprecated,
        input_schema={"type": "object"},
    )


def make_instance(
    sequence: Sequence,
    *,
    id: str | None = None,
    state: InstanceState = InstanceState.SCHEDULED,
    next_fire_at: datetime | None = None,
    priority: Priority = Priority.NORMAL,
    created_at: datetime | None = None,
    updated_at: datetime | None = None,
    tenant_id: str | None = None,
    namespace: str | None = None,
    **extra: Any,
) -> Instance:
    created = created_at or T0
    return Instance(
        id=id or new_id("inst"),
        sequence_id=sequence.id,
        tenant_id=tenant_id or sequence.tenant_id,
        namespace=namespace or sequence.namespace,
        state=state,
        next_fire_at=next_fire_at,
        priority=priority,
        timezone="Europe/Berlin",
        created_at=created,
        updated_at=updated_at or created,
        **extra,
    )


def make_context(**data: Any) -> ExecutionContext:
    return ExecutionContext(
        data=data,
        config={"channel": "email"},
        audit=({"event": "started", "at": "2026-03-02T09:00:00Z"},),
        runtime={"step": 1},
    )


def make_node(block_id: str = "greet", **fields: Any) -> Node:
    fields.setdefault("block_type", "step")
    return Node(block_id=block_id, **fields)


def full_node(block_id: str, when: datetime) -> Node:
    """A node with every optional field set, so a round trip checks them all."""
    return Node(
        block_id=block_id,
        block_type="step",
        state=NodeState.FAILED,
        parent_id="root",
        branch_index=2,
        attempts=3,
        not_before=when + timedelta(seconds=5),
        started_at=when,
        completed_at=when + timedelta(milliseconds=1, microseconds=7),
        error="boom: handler failed",
        iteration=4,
        branch=1,
        ref="child-7",
        reserved_at=when + timedelta(seconds=9, microseconds=3),
    )


def make_output(
    instance_id: str,
    block_id: str = "greet",
    *,
    output: Any = None,
    attempt: int = 1,
    created_at: datetime | None = None,
    id: str | None = None,
    **fields: Any,
) -> BlockOutput:
    return BlockOutput(
        id=id or new_id("out"),
        instance_id=instance_id,
        block_id=block_id,
        output={"sent": True} if output is None else output,
        attempt=attempt,
        created_at=created_at or T0,
        **fields,
    )


def make_write(
    instance: Instance,
    *,
    expected_state: InstanceState = InstanceState.RUNNING,
    state: InstanceState = InstanceState.COMPLETED,
    next_fire_at: datetime | None = None,
    updated_at: datetime | None = None,
    context: ExecutionContext | None = None,
    nodes: tuple[Node, ...] = (),
    outputs: tuple[BlockOutput, ...] = (),
) -> SnapshotWrite:
    return SnapshotWrite(
        instance_id=instance.id,
        expected_state=expected_state,
        state=state,
        next_fire_at=next_fire_at,
        updated_at=updated_at or at(60),
        context=context,
        nodes=nodes,
        outputs=outputs,
    )
