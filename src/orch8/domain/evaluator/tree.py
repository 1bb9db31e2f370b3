"""Recursion over block lists, shared by every composite block's driver."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from orch8.domain.evaluator.walk import DONE, Progress, Status, Walk, failed
from orch8.domain.sequence import Block, every_block
from orch8.domain.tree import Node, NodeState


class BlockDriver(Protocol):
    def __call__(self, w: Walk, block: Block, node: Node, tree: Tree) -> Progress: ...


class Tree:
    """Drives blocks by type; block modules receive it so they can recurse.

    Refuses (TypeError) a driver table that misses a block type.
    """

    def __init__(self, drivers: Mapping[type[Any], BlockDriver]) -> None:
        self._drivers = every_block(drivers, "evaluator driver")

    @property
    def drivers(self) -> Mapping[type[Any], BlockDriver]:
        return self._drivers

    def drive(self, w: Walk, block: Block, parent: str | None, branch: int | None) -> Progress:
        node = w.node(block, parent, branch)
        if node.state.is_done:
            return DONE
        if node.state is NodeState.FAILED:
            return failed(node.error or "block failed", block.id)
        if node.state is NodeState.CANCELLED:
            return failed(node.error or "block cancelled", block.id)
        return self._drivers[type(block)](w, block, node, self)

    def drive_list(
        self, w: Walk, blocks: tuple[Block, ...], parent: str | None, branch: int | None
    ) -> Progress:
        """Sequential semantics: each block starts when the one before it is done."""
        for block in blocks:
            progress = self.drive(w, block, parent, branch)
            if progress.status is not Status.DONE:
                return progress
        return DONE
