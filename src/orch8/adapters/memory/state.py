"""The tables every in-memory store shares.

The stores are views over one set of dicts, as the SQL stores are over one
database: a snapshot commit, a signal or a finished task changes rows that
another role reads, and sharing the dicts keeps those changes visible at once.
"""

from __future__ import annotations

from orch8.adapters.memory.tasks import TaskTable
from orch8.domain.instance import Instance
from orch8.domain.outputs import BlockOutput
from orch8.domain.sequence import Sequence
from orch8.domain.signals import Signal
from orch8.domain.tree import Node


class MemoryState:
    """The rows of one `MemoryStorage`, by id (nodes, outputs, signals by instance)."""

    def __init__(self) -> None:
        self.sequences: dict[str, Sequence] = {}
        self.instances: dict[str, Instance] = {}
        self.nodes: dict[str, dict[str, Node]] = {}
        self.outputs: dict[str, list[BlockOutput]] = {}
        self.signals: dict[str, list[Signal]] = {}
        self.tasks = TaskTable()
