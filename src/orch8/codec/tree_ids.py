"""Deterministic execution-tree node ids for the wire.

Orch8's `ExecutionNode` has its own UUID and points at its parent by that id.
orch8 keys nodes by (instance, block) and stores no separate id, so the wire id
is derived: uuid5 of the block id inside a namespace derived from the instance
id. The same node always gets the same id (clients can diff trees across
polls), and nesting the namespaces keeps ("a/b", "c") and ("a", "b/c") apart.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from attrs import evolve

from orch8.codec.wire import node_to_json
from orch8.domain.tree import Node

_ROOT = uuid.UUID("6f2c8d0e-4b1a-5c3e-9a7f-0d8e1b2c3a4f")


def node_id(instance_id: str, block_id: str) -> str:
    """The wire id of the node for `block_id` in instance `instance_id`."""
    return str(uuid.uuid5(uuid.uuid5(_ROOT, instance_id), block_id))


def tree_to_json(nodes: Iterable[Node], instance_id: str) -> list[dict[str, Any]]:
    """Nodes (whose `parent_id` is the parent *block* id) as Orch8 `ExecutionNode`s."""
    out: list[dict[str, Any]] = []
    for node in nodes:
        parent = None if node.parent_id is None else node_id(instance_id, node.parent_id)
        out.append(
            node_to_json(
                evolve(node, parent_id=parent),
                node_id=node_id(instance_id, node.block_id),
                instance_id=instance_id,
            )
        )
    return out
