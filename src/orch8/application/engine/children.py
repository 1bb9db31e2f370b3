"""Starting sub_sequence children and reading how they ended."""

from __future__ import annotations

from typing import Any

from attrs import evolve

from orch8.application.ports.clock import IdGenerator
from orch8.application.ports.storage import Storage
from orch8.domain.context import ExecutionContext
from orch8.domain.evaluator import ChildResult, StartChild
from orch8.domain.instance import Instance, InstanceState
from orch8.domain.tree import Node, NodeState

MAX_DEPTH = 16
DEPTH_KEY = "_sub_sequence_depth"


async def build_child(
    storage: Storage, ids: IdGenerator, parent: Instance, start: StartChild, now: Any
) -> Instance | str:
    """The child instance to insert, or an error saying why there is none."""
    depth = parent.metadata.get(DEPTH_KEY, 0)
    depth = depth if isinstance(depth, int) else 0
    if depth + 1 > MAX_DEPTH:
        return f"sub_sequence nesting exceeds {MAX_DEPTH} levels"
    block = start.block
    seq = await storage.sequences.get_by_name(
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


async def child_results(storage: Storage, nodes: list[Node]) -> dict[str, ChildResult]:
    """Results of the finished children that waiting sub_sequence nodes wait for."""
    results: dict[str, ChildResult] = {}
    for node in nodes:
        if node.state is not NodeState.WAITING or node.block_type != "sub_sequence" or not node.ref:
            continue
        child = await storage.instances.get(node.ref)
        if child is None:
            results[node.block_id] = ChildResult("failed")
        elif child.state.is_terminal:
            output: Any = None
            if child.state is InstanceState.COMPLETED:
                output = [
                    {"block_id": o.block_id, "output": o.output}
                    for o in await storage.outputs.list_for_instance(child.id)
                    if o.output_ref is None
                ]
            results[node.block_id] = ChildResult(child.state.value, output)
    return results


def with_ref(node: Node, child_id: str) -> Node:
    return evolve(node, ref=child_id)
