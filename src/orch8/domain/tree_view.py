"""The full execution tree of an instance, for display.

Storage holds only nodes that have changed; a reader wants every block, so the
missing ones are filled in as pending, each with its parent and branch index.
"""

from __future__ import annotations

from collections.abc import Mapping

from attrs import evolve

from orch8.domain.sequence import Block, Sequence, block_type, child_lists
from orch8.domain.tree import Node


def full_tree(sequence: Sequence, stored: Mapping[str, Node]) -> list[Node]:
    out: list[Node] = []

    def visit(blocks: tuple[Block, ...], parent: str | None, branch: int | None) -> None:
        for block in blocks:
            node = stored.get(block.id) or Node(block.id, block_type(block))
            out.append(evolve(node, parent_id=parent, branch_index=branch))
            for index, children in enumerate(child_lists(block)):
                visit(children, block.id, index)

    visit(sequence.blocks, None, None)
    return out
