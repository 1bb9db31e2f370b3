"""`router`, `ab_split` and `cancellation_scope`: one list of blocks, chosen or fixed."""

from __future__ import annotations

import hashlib
from typing import Any

from attrs import evolve

from orch8.domain.evaluator.tree import BlockDriver, Tree
from orch8.domain.evaluator.walk import DONE, Progress, Status, Walk
from orch8.domain.sequence import (
    AbSplitBlock,
    Block,
    CancellationScopeBlock,
    RouterBlock,
    Variant,
    child_lists,
)
from orch8.domain.tree import Node, NodeState


def _run_chosen(
    w: Walk, block: Block, node: Node, tree: Tree, blocks: tuple[Block, ...]
) -> Progress:
    progress = tree.drive_list(w, blocks, block.id, node.branch)
    if progress.status is Status.DONE:
        w.finish(node, NodeState.COMPLETED)
    elif progress.status is Status.FAILED:
        w.finish(node, NodeState.FAILED, progress.error)
    return progress


def drive_router(w: Walk, block: Block, node: Node, tree: Tree) -> Progress:
    """The first route whose condition holds runs; otherwise `default`, or nothing."""
    assert isinstance(block, RouterBlock)
    if node.state is NodeState.PENDING:
        choice = next(
            (i for i, route in enumerate(block.routes) if w.condition(route.condition)),
            len(block.routes) if block.default is not None else None,
        )
        node = w.put(evolve(w.start(node), branch=choice))
        if choice is None:
            w.finish(node, NodeState.COMPLETED)
            return DONE
    assert node.branch is not None
    return _run_chosen(w, block, node, tree, child_lists(block)[node.branch])


def pick_variant(instance_id: str, block_id: str, variants: tuple[Variant, ...]) -> int:
    """Deterministic per (instance, block), as Orch8 does: the first 8 bytes of
    SHA-256(instance_id ‖ 0x00 ‖ block_id) modulo the total weight."""
    digest = hashlib.sha256(instance_id.encode() + b"\x00" + block_id.encode()).digest()
    point = int.from_bytes(digest[:8], "big") % sum(v.weight for v in variants)
    for index, variant in enumerate(variants):
        if point < variant.weight:
            return index
        point -= variant.weight
    raise AssertionError("weights are validated positive")  # pragma: no cover


def drive_ab_split(w: Walk, block: Block, node: Node, tree: Tree) -> Progress:
    assert isinstance(block, AbSplitBlock)
    if node.state is NodeState.PENDING:
        index = pick_variant(w.instance_id, block.id, block.variants)
        node = w.put(evolve(w.start(node), branch=index))
        w.emit(block.id, {"variant": block.variants[index].name, "variant_index": index})
    assert node.branch is not None
    return _run_chosen(w, block, node, tree, block.variants[node.branch].blocks)


def drive_scope(w: Walk, block: Block, node: Node, tree: Tree) -> Progress:
    """Runs its blocks in order; what makes it special is how cancel treats it."""
    assert isinstance(block, CancellationScopeBlock)
    node = w.put(evolve(w.start(node), branch=0))
    return _run_chosen(w, block, node, tree, block.blocks)


# The block types this module drives (the driver merges every module's table).
DRIVERS: dict[type[Any], BlockDriver] = {
    RouterBlock: drive_router,
    AbSplitBlock: drive_ab_split,
    CancellationScopeBlock: drive_scope,
}
