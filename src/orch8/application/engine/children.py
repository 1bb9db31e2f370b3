"""Starting sub_sequence children, reading how they ended, and cancelling them.

A child is inserted in the same write as its parent's node (the runner holds
it until then), so a crash never leaves a child without a parent that waits
for it, nor a parent waiting for a child never created.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from attrs import evolve, frozen

from orch8.application.engine.bell import SignalBell
from orch8.application.errors import InstanceTerminal, NotFound
from orch8.application.ports.clock import Clock, IdGenerator
from orch8.application.ports.storage import InstanceStore, OutputStore, SequenceStore, SignalInbox
from orch8.domain.context import ExecutionContext
from orch8.domain.evaluator import ChildResult, Snapshot, StartChild
from orch8.domain.instance import Instance, InstanceState
from orch8.domain.signals import Signal, SignalKind
from orch8.domain.tree import Node, NodeState

MAX_DEPTH = 16
DEPTH_KEY = "_sub_sequence_depth"


async def build_child(
    sequences: SequenceStore, ids: IdGenerator, parent: Instance, start: StartChild, now: Any
) -> Instance | str:
    """The child instance to insert, or an error saying why there is none."""
    depth = parent.metadata.get(DEPTH_KEY, 0)
    depth = depth if isinstance(depth, int) else 0
    if depth + 1 > MAX_DEPTH:
        return f"sub_sequence nesting exceeds {MAX_DEPTH} levels"
    block = start.block
    seq = await sequences.get_by_name(
        parent.tenant_id, parent.namespace, block.sequence_name, block.version
    )
    if seq is None:
        version = "" if block.version is None else f" version {block.version}"
        return f"no sequence named '{block.sequence_name}'{version}"
    return Instance(
        id=ids.new_id(),
        sequence_id=seq.id,
        tenant_id=parent.tenant_id,
        namespace=parent.namespace,
        state=InstanceState.SCHEDULED,
        next_fire_at=now,
        priority=parent.priority,
        timezone=parent.timezone,
        created_at=now,
        updated_at=now,
        metadata={DEPTH_KEY: depth + 1, "_parent_block_id": block.id},
        context=ExecutionContext(data=dict(start.input), config=parent.context.config),
        parent_instance_id=parent.id,
    )


async def child_results(
    instances: InstanceStore, outputs: OutputStore, nodes: list[Node]
) -> dict[str, ChildResult]:
    """Results of the finished children that waiting sub_sequence nodes wait for."""
    results: dict[str, ChildResult] = {}
    for node in nodes:
        if node.state is not NodeState.WAITING or node.block_type != "sub_sequence" or not node.ref:
            continue
        child = await instances.get(node.ref)
        if child is None:
            results[node.block_id] = ChildResult("failed")
        elif child.state.is_terminal:
            output: Any = None
            if child.state is InstanceState.COMPLETED:
                output = [
                    {"block_id": o.block_id, "output": o.output}
                    for o in await outputs.list_for_instance(child.id)
                    if o.output_ref is None
                ]
            results[node.block_id] = ChildResult(child.state.value, output)
    return results


def with_ref(node: Node, child_id: str) -> Node:
    return evolve(node, ref=child_id)


@frozen
class Started:
    """The snapshot with each started child's id on its node (or the node failed when
    the child could not be built), and the children to insert."""

    snapshot: Snapshot
    children: tuple[Instance, ...]
    refused: bool


async def start_children(
    sequences: SequenceStore,
    ids: IdGenerator,
    parent: Instance,
    starts: Sequence[StartChild],
    snapshot: Snapshot,
    now: datetime,
) -> Started:
    children: list[Instance] = []
    refused = False
    for start in starts:
        built = await build_child(sequences, ids, parent, start, now)
        node = snapshot.nodes[start.block.id]
        if isinstance(built, str):
            failed = evolve(node, state=NodeState.FAILED, error=built, completed_at=now)
            snapshot = snapshot.with_node(failed)
            refused = True
        else:
            children.append(built)
            snapshot = snapshot.with_node(with_ref(node, built.id))
    return Started(snapshot, tuple(children), refused)


def children_to_cancel(snapshot: Snapshot, committed: Snapshot) -> list[str]:
    """Children of sub_sequence nodes cancelled since the last commit."""
    return [
        n.ref
        for n in snapshot.nodes.values()
        if n.block_type == "sub_sequence"
        and n.ref
        and n.state is NodeState.CANCELLED
        and committed.nodes.get(n.block_id, n).state is not NodeState.CANCELLED
    ]


async def cancel_children(
    signals: SignalInbox,
    ids: IdGenerator,
    clock: Clock,
    bell: SignalBell,
    tenant_id: str,
    child_ids: Sequence[str],
) -> None:
    """Send each child a cancel signal; a child already gone or ended is skipped."""
    for child_id in child_ids:
        signal = Signal(
            id=ids.new_id(),
            instance_id=child_id,
            tenant_id=tenant_id,
            kind=SignalKind.CANCEL,
            created_at=clock.now(),
        )
        try:
            await signals.enqueue(signal)
        except (NotFound, InstanceTerminal):
            continue
        bell.ring(child_id)
