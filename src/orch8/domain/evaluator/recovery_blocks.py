"""`try_catch` and `saga`: blocks that react to a failure inside them."""

from __future__ import annotations

from typing import Any

from attrs import evolve

from orch8.domain.evaluator.tree import BlockDriver, Tree
from orch8.domain.evaluator.walk import ACTIVE, DONE, Progress, Status, Walk, failed
from orch8.domain.sequence import Block, SagaBlock, TryCatchBlock, walk
from orch8.domain.tree import Node, NodeState

TRY, CATCH, FINALLY = 0, 1, 2


def drive_try_catch(w: Walk, block: Block, node: Node, tree: Tree) -> Progress:
    """try → (on failure: `context.data._error`, then catch) → finally.

    The block succeeds when try or catch succeeded and finally (if any) did too.
    While finally runs, `node.error` holds the failure still to report.
    """
    assert isinstance(block, TryCatchBlock)
    if node.state is NodeState.PENDING:
        node = w.put(evolve(w.start(node), branch=TRY))
    if node.branch == TRY:
        progress = tree.drive_list(w, block.try_block, block.id, TRY)
        if progress.status is Status.ACTIVE:
            return ACTIVE
        if progress.status is Status.FAILED:
            failed_blocks = [
                b.id
                for b, _ in walk(block.try_block)
                if (n := w.nodes.get(b.id)) is not None and n.state is NodeState.FAILED
            ]
            w.set_data(
                "_error",
                {
                    "message": progress.error,
                    "failed_blocks": failed_blocks,
                    "source": "try_catch",
                    "block_id": block.id,
                },
            )
            node = w.put(evolve(node, branch=CATCH))
        else:
            node = w.put(evolve(node, branch=FINALLY, error=None))
    if node.branch == CATCH:
        progress = tree.drive_list(w, block.catch_block, block.id, CATCH)
        if progress.status is Status.ACTIVE:
            return ACTIVE
        error = progress.error if progress.status is Status.FAILED else None
        node = w.put(evolve(node, branch=FINALLY, error=error))
    pending_error = node.error
    if block.finally_block is not None:
        progress = tree.drive_list(w, block.finally_block, block.id, FINALLY)
        if progress.status is Status.ACTIVE:
            return ACTIVE
        if progress.status is Status.FAILED:
            pending_error = progress.error or "finally failed"
    if pending_error is not None:
        w.finish(node, NodeState.FAILED, pending_error)
        return failed(pending_error, block.id)
    w.finish(node, NodeState.COMPLETED)
    return DONE


def drive_saga(w: Walk, block: Block, node: Node, tree: Tree) -> Progress:
    """Actions in order; when one fails, the compensations of the steps before it run
    in reverse (best effort: a failing compensation does not stop the others), and
    the saga ends failed. `node.branch` is the step whose predecessors remain to undo."""
    assert isinstance(block, SagaBlock)
    node = w.start(node)
    if node.branch is None:
        for index, step in enumerate(block.steps):
            progress = tree.drive(w, step.action, block.id, index)
            if progress.status is Status.ACTIVE:
                return ACTIVE
            if progress.status is Status.FAILED:
                node = w.put(evolve(node, branch=index, error=progress.error))
                break
        else:
            w.finish(node, NodeState.COMPLETED)
            return DONE
    assert node.branch is not None
    while node.branch > 0:
        step = block.steps[node.branch - 1]
        if step.compensation is not None:
            progress = tree.drive(w, step.compensation, block.id, node.branch - 1)
            if progress.status is Status.ACTIVE:
                return ACTIVE
        node = w.put(evolve(node, branch=node.branch - 1))
    error = node.error or "saga step failed"
    w.finish(node, NodeState.FAILED, error)
    return failed(error, block.id)


# The block types this module drives (the driver merges every module's table).
DRIVERS: dict[type[Any], BlockDriver] = {
    TryCatchBlock: drive_try_catch,
    SagaBlock: drive_saga,
}
