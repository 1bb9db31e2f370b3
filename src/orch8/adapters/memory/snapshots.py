"""Snapshot commits in memory: the reference behaviour of `SnapshotStore`.

A commit applies every part of the write (instance row, nodes, outputs, new
tasks and children, delivered signals, the parent's wake) in one call with no
await, so it is all-or-nothing as the SQL stores' one transaction is.
"""

from __future__ import annotations

from attrs import evolve

from orch8.adapters.memory.instances import MemoryInstanceStore
from orch8.adapters.memory.state import MemoryState
from orch8.application.errors import StaleWrite
from orch8.application.ports.storage import SnapshotStore, SnapshotWrite
from orch8.domain.instance import Instance, InstanceState
from orch8.domain.tree import Node


class MemorySnapshotStore(SnapshotStore):
    def __init__(self, state: MemoryState) -> None:
        self._s = state

    async def load(self, instance_id: str) -> tuple[Instance, list[Node]] | None:
        inst = self._s.instances.get(instance_id)
        if inst is None:
            return None
        return inst, list(self._s.nodes.get(instance_id, {}).values())

    async def commit(self, write: SnapshotWrite) -> None:
        inst = self._s.instances.get(write.instance_id)
        if inst is None or inst.state is not write.expected_state:
            raise StaleWrite(
                f"instance {write.instance_id} is no longer {write.expected_state.value}"
            )
        changes: dict[str, object] = {
            "state": write.state,
            "next_fire_at": write.next_fire_at,
            "updated_at": write.updated_at,
        }
        if write.context is not None:
            changes["context"] = write.context
        if write.children:
            await MemoryInstanceStore(self._s).create(write.children)
        self._s.instances[write.instance_id] = evolve(inst, **changes)  # type: ignore[arg-type]
        nodes = self._s.nodes.setdefault(write.instance_id, {})
        for node in write.nodes:
            nodes[node.block_id] = node
        self._s.outputs.setdefault(write.instance_id, []).extend(write.outputs)
        self._s.tasks.insert(write.tasks)
        if write.delivered_signals:
            done = set(write.delivered_signals)
            self._s.signals[write.instance_id] = [
                evolve(s, delivered_at=write.updated_at) if s.id in done else s
                for s in self._s.signals.get(write.instance_id, [])
            ]
        parent = self._s.instances.get(write.wake_parent) if write.wake_parent else None
        if parent is not None and parent.state in (InstanceState.WAITING, InstanceState.SCHEDULED):
            fire = write.updated_at
            if parent.next_fire_at is not None and parent.next_fire_at < fire:
                fire = parent.next_fire_at
            self._s.instances[parent.id] = evolve(
                parent,
                state=InstanceState.SCHEDULED,
                next_fire_at=fire,
                updated_at=write.updated_at,
            )
