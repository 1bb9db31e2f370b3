"""What the engine persists after every step, and all it needs to resume."""

from __future__ import annotations

from collections.abc import Mapping

from attrs import evolve, field, frozen

from orch8.domain.context import ExecutionContext
from orch8.domain.tree import Node


@frozen
class Snapshot:
    """An instance's context plus its execution-tree nodes keyed by block id.

    A block with no node yet is pending: nodes are materialised only when
    they change, so a fresh instance of a 5 000-block sequence costs nothing.
    """

    context: ExecutionContext = field(factory=ExecutionContext)
    nodes: Mapping[str, Node] = field(factory=dict)

    def with_node(self, node: Node) -> Snapshot:
        return evolve(self, nodes={**self.nodes, node.block_id: node})

    def changed_nodes(self, before: Snapshot) -> tuple[Node, ...]:
        """Nodes that differ from `before`: what a commit must write."""
        return tuple(n for key, n in self.nodes.items() if before.nodes.get(key) != n)
