"""`parallel` and `race`: branches that progress side by side."""

from __future__ import annotations

from typing import Any

from attrs import evolve

from orch8.domain.evaluator.tree import BlockDriver, Tree
from orch8.domain.evaluator.walk import ACTIVE, DONE, Progress, Status, Walk, failed
from orch8.domain.sequence import Block, ParallelBlock, RaceBlock, RaceSemantics
from orch8.domain.tree import Node, NodeState


def _cancel_all(w: Walk, branches: tuple[tuple[Block, ...], ...]) -> None:
    for branch in branches:
        w.cancel(branch)


def drive_parallel(w: Walk, block: Block, node: Node, tree: Tree) -> Progress:
    """Done when every branch is; fails (cancelling the others) when any fails."""
    assert isinstance(block, ParallelBlock)
    node = w.start(node)
    progress = [tree.drive_list(w, b, block.id, i) for i, b in enumerate(block.branches)]
    for p in progress:
        if p.status is Status.FAILED:
            _cancel_all(w, block.branches)
            w.finish(node, NodeState.FAILED, p.error)
            return failed(p.error or "branch failed", p.block_id)
    if all(p.status is Status.DONE for p in progress):
        w.finish(node, NodeState.COMPLETED)
        return DONE
    return ACTIVE


def drive_race(w: Walk, block: Block, node: Node, tree: Tree) -> Progress:
    """The first branch to finish wins and the rest are cancelled.

    first_to_resolve: a branch failing before any wins fails the race.
    first_to_succeed: failures are ignored until every branch has failed.
    Branches that settle in the same evaluation are ranked by position.
    """
    assert isinstance(block, RaceBlock)
    node = w.start(node)
    progress = [tree.drive_list(w, b, block.id, i) for i, b in enumerate(block.branches)]
    resolve = block.semantics is RaceSemantics.FIRST_TO_RESOLVE
    for index, p in enumerate(progress):
        if p.status is Status.DONE:
            _cancel_all(w, block.branches)
            w.finish(evolve(node, branch=index), NodeState.COMPLETED)
            w.emit(block.id, {"winner": index})
            return DONE
        if p.status is Status.FAILED and resolve:
            _cancel_all(w, block.branches)
            w.finish(node, NodeState.FAILED, p.error)
            return failed(p.error or "branch failed", p.block_id)
    if all(p.status is Status.FAILED for p in progress):
        error = "every branch of the race failed"
        w.finish(node, NodeState.FAILED, error)
        return failed(error, block.id)
    return ACTIVE


# The block types this module drives (the driver merges every module's table).
DRIVERS: dict[type[Any], BlockDriver] = {
    ParallelBlock: drive_parallel,
    RaceBlock: drive_race,
}
