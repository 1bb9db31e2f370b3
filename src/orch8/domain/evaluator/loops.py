"""`loop` and `for_each`: a body run again and again, reset between rounds."""

from __future__ import annotations

from typing import Any

from attrs import evolve

from orch8.domain.evaluator.tree import BlockDriver, Tree
from orch8.domain.evaluator.walk import ACTIVE, DONE, Progress, Status, Walk, failed
from orch8.domain.sequence import Block, ForEachBlock, LoopBlock
from orch8.domain.tree import Node, NodeState


def drive_loop(w: Walk, block: Block, node: Node, tree: Tree) -> Progress:
    """While `condition` holds (checked before each round), run the body; `break_on` is
    checked after each round; `max_iterations` ends the loop normally. A failing body
    fails the loop unless `continue_on_error`."""
    assert isinstance(block, LoopBlock)
    if node.state is NodeState.PENDING:
        node = w.start(node)
        if not w.condition(block.condition):
            return _loop_done(w, node)
    while True:
        progress = tree.drive_list(w, block.body, block.id, 0)
        if progress.status is Status.ACTIVE:
            return ACTIVE
        if progress.status is Status.FAILED and not block.continue_on_error:
            w.finish(node, NodeState.FAILED, progress.error)
            return failed(progress.error or "loop body failed", progress.block_id)
        node = w.put(evolve(node, iteration=node.iteration + 1))
        if block.break_on is not None and w.condition(block.break_on):
            break
        if node.iteration >= block.max_iterations or not w.condition(block.condition):
            break
        w.reset(block.body)
    return _loop_done(w, node)


def _loop_done(w: Walk, node: Node) -> Progress:
    w.finish(node, NodeState.COMPLETED)
    w.emit(node.block_id, {"_iterations": node.iteration})
    return DONE


def drive_for_each(w: Walk, block: Block, node: Node, tree: Tree) -> Progress:
    """One item at a time: `context.data[item_var]` holds the current item while the
    body runs and is removed afterwards. A missing, non-array or empty collection
    completes at once; at most `max_iterations` items are visited."""
    assert isinstance(block, ForEachBlock)
    node = w.start(node)
    items = w.collection(block.collection)
    if not isinstance(items, list):
        items = []
    limit = min(len(items), block.max_iterations)
    while node.iteration < limit:
        w.set_data(block.item_var, items[node.iteration])
        progress = tree.drive_list(w, block.body, block.id, 0)
        if progress.status is Status.ACTIVE:
            return ACTIVE
        if progress.status is Status.FAILED:
            w.drop_data(block.item_var)
            w.finish(node, NodeState.FAILED, progress.error)
            return failed(progress.error or "for_each body failed", progress.block_id)
        node = w.put(evolve(node, iteration=node.iteration + 1))
        if node.iteration < limit:
            w.reset(block.body)
    w.drop_data(block.item_var)
    w.finish(node, NodeState.COMPLETED)
    w.emit(block.id, {"_index": node.iteration, "_total": len(items), "_item_var": block.item_var})
    return DONE


# The block types this module drives (the driver merges every module's table).
DRIVERS: dict[type[Any], BlockDriver] = {
    LoopBlock: drive_loop,
    ForEachBlock: drive_for_each,
}
