"""`sub_sequence`: a child instance, started and awaited."""

from __future__ import annotations

from typing import Any

from attrs import evolve

from orch8.domain.errors import DomainError
from orch8.domain.evaluator.decisions import StartChild
from orch8.domain.evaluator.tree import BlockDriver, Tree
from orch8.domain.evaluator.walk import ACTIVE, DONE, Progress, Walk, failed
from orch8.domain.sequence import Block, SubSequenceBlock
from orch8.domain.templates import render
from orch8.domain.tree import Node, NodeState


def drive_sub_sequence(w: Walk, block: Block, node: Node, tree: Tree) -> Progress:
    """Pending: ask the engine to start the child; the node waits, and the engine
    writes the child in the same transaction. Waiting: end as the child ended."""
    assert isinstance(block, SubSequenceBlock)
    if node.state is NodeState.PENDING:
        try:
            child_input = render(dict(block.input), w.scope())
        except DomainError as exc:
            error = f"input: {exc}"
            w.finish(node, NodeState.FAILED, error)
            return failed(error, block.id)
        w.put(evolve(node, state=NodeState.WAITING, started_at=w.now))
        w.children.append(StartChild(block, child_input))
        w.waiting = True
        return ACTIVE
    result = w.child_results.get(block.id)
    if result is None:
        w.waiting = True
        return ACTIVE
    if result.state == "completed":
        w.finish(node, NodeState.COMPLETED)
        w.emit(block.id, result.output)
        return DONE
    error = f"child instance {node.ref} ended {result.state}"
    w.finish(node, NodeState.FAILED, error)
    return failed(error, block.id)


# The block types this module drives (the driver merges every module's table).
DRIVERS: dict[type[Any], BlockDriver] = {
    SubSequenceBlock: drive_sub_sequence,
}
