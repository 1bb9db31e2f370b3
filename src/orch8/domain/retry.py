"""Retrying a failed instance: the execution-tree changes that let it run again.

A failed instance keeps its tree: what completed stays completed (its side
effects are not repeated), and only the failure is undone. `retry_nodes`
returns the nodes to write so that the next evaluation picks up where the
instance failed:

* a failed or cancelled step or sub_sequence becomes a fresh pending node
  (attempts reset, so its retry policy starts over; a sub_sequence starts a
  new child);
* a composite block on the way to such a node (or itself failed or cancelled)
  goes back to `running`, keeping its progress (a loop's iteration, a router's
  chosen route), with its error cleared;
* a `try_catch` resumes at the phase it stopped in, or at `try` again when its
  `catch` failed too; phases after the resumed one run again from scratch;
* a failed `saga` has already undone its earlier actions, so it runs again
  whole: every node below it becomes fresh;
* nothing below a completed or skipped block changes (a caught failure, a race
  already won), and running or waiting nodes are left alone.
"""

from __future__ import annotations

from collections.abc import Mapping

from attrs import evolve

from orch8.domain.sequence import Block, SagaBlock, Sequence, TryCatchBlock, child_lists, walk
from orch8.domain.tree import Node, NodeState

_UNDONE = (NodeState.FAILED, NodeState.CANCELLED)
_TRY = 0


def retry_nodes(sequence: Sequence, nodes: Mapping[str, Node]) -> tuple[Node, ...]:
    """The node updates that make a failed instance's tree runnable again."""
    out: dict[str, Node] = {}
    _retry_list(sequence.blocks, nodes, out)
    return tuple(node for block_id, node in out.items() if nodes.get(block_id) != node)


def fresh(node: Node) -> Node:
    """`node` as if its block had never started (its place in the tree kept)."""
    return Node(
        node.block_id, node.block_type, parent_id=node.parent_id, branch_index=node.branch_index
    )


def _retry_list(blocks: tuple[Block, ...], nodes: Mapping[str, Node], out: dict[str, Node]) -> bool:
    changed = False
    for block in blocks:
        changed = _retry_block(block, nodes, out) or changed
    return changed


def _reset_all(blocks: tuple[Block, ...], nodes: Mapping[str, Node], out: dict[str, Node]) -> bool:
    changed = False
    for block, _depth in walk(blocks):
        node = nodes.get(block.id)
        if node is not None:
            out[block.id] = fresh(node)
            changed = True
    return changed


def _retry_block(block: Block, nodes: Mapping[str, Node], out: dict[str, Node]) -> bool:
    """Undo the failure at or below `block`; True when any node changed."""
    node = nodes.get(block.id)
    if node is None or node.state.is_done:
        return False
    lists = child_lists(block)
    if not lists:
        if node.state in _UNDONE:
            out[block.id] = fresh(node)
            return True
        return False
    if isinstance(block, SagaBlock) and node.state in _UNDONE:
        return _reset_all((block,), nodes, out)
    branch = node.branch
    if isinstance(block, TryCatchBlock):
        branch, changed = _resume_try_catch(block, node, nodes, out)
    else:
        changed = False
        for children in lists:
            changed = _retry_list(children, nodes, out) or changed
    if changed or node.state in _UNDONE:
        out[block.id] = evolve(
            node, state=NodeState.RUNNING, error=None, completed_at=None, branch=branch
        )
        return True
    return False


def _resume_try_catch(
    block: TryCatchBlock, node: Node, nodes: Mapping[str, Node], out: dict[str, Node]
) -> tuple[int, bool]:
    """Reset the phases of a try_catch from the one it resumes at: that phase, and
    whether any node changed."""
    lists = child_lists(block)
    catch_failed = any(
        (n := nodes.get(b.id)) is not None and n.state in _UNDONE
        for b, _depth in walk(block.catch_block)
    )
    phase = _TRY if catch_failed or node.branch is None else node.branch
    changed = False
    for index in range(phase + 1, len(lists)):
        changed = _reset_all(lists[index], nodes, out) or changed
    changed = _retry_list(lists[phase], nodes, out) or changed
    return phase, changed
