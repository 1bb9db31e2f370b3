"""The full execution tree of an instance, for display.

Storage holds only nodes that have changed; a reader wants every block, so the
missing ones are filled in as pending, each with its parent and branch index.
"""

from __future__ import annotations

from collections.abc import Mapping

from attrs import evolve

from orch8.domain.sequence import (
    AbSplitBlock,
    Block,
    RouterBlock,
    Sequence,
    block_type,
    child_lists,
)
from orch8.domain.tree import Node, NodeState

_CHOOSERS = (RouterBlock, AbSplitBlock)


def full_tree(sequence: Sequence, stored: Mapping[str, Node]) -> list[Node]:
    """Every block as a node; branches a router or A/B split did not take show as skipped."""
    out: list[Node] = []

    def visit(
        blocks: tuple[Block, ...], parent: str | None, branch: int | None, skipped: bool
    ) -> None:
        for block in blocks:
            node = stored.get(block.id) or Node(
                block.id,
                block_type(block),
                state=NodeState.SKIPPED if skipped else NodeState.PENDING,
            )
            out.append(evolve(node, parent_id=parent, branch_index=branch))
            chosen = node.branch if isinstance(block, _CHOOSERS) else None
            decided = isinstance(block, _CHOOSERS) and (
                node.branch is not None or node.state.is_terminal
            )
            for index, children in enumerate(child_lists(block)):
                visit(children, block.id, index, skipped or (decided and index != chosen))

    visit(sequence.blocks, None, None, False)
    return out
