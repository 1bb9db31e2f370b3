"""What a run has changed since its last commit, and the guarded write that saves it.

Every step's effects — the nodes that moved, the context, its output rows, new
children and worker tasks, the signals acted on — must land in one transaction
with the instance's state, or a crash could record an output without the node
that produced it. The runner gathers them here between commits.
"""

from __future__ import annotations

from datetime import datetime

from orch8.application.ports.storage import SnapshotWrite
from orch8.domain.evaluator import Snapshot
from orch8.domain.instance import Instance, InstanceState
from orch8.domain.outputs import BlockOutput
from orch8.domain.tasks import WorkerTask
from orch8.domain.tree import NodeState


class PendingWrite:
    def __init__(self, instance: Instance, committed: Snapshot) -> None:
        self.instance = instance
        self.committed = committed
        self.rows: list[BlockOutput] = []
        self.children: list[Instance] = []
        self.tasks: list[WorkerTask] = []
        self.delivered: list[str] = []

    def build(
        self,
        snapshot: Snapshot,
        state: InstanceState,
        next_fire_at: datetime | None,
        now: datetime,
        *,
        wake_parent: bool = False,
    ) -> SnapshotWrite | None:
        """The write taking the instance from `running` to `state` with `snapshot`;
        None for a `running` write that would change nothing."""
        committed = self.committed
        nodes = snapshot.changed_nodes(committed)
        context_changed = snapshot.context != committed.context
        if state is InstanceState.RUNNING and not (
            nodes or context_changed or self.rows or self.children or self.delivered or self.tasks
        ):
            return None
        return SnapshotWrite(
            instance_id=self.instance.id,
            expected_state=InstanceState.RUNNING,
            state=state,
            next_fire_at=next_fire_at,
            updated_at=now,
            context=snapshot.context if context_changed else None,
            nodes=nodes,
            outputs=tuple(self.rows),
            children=tuple(self.children),
            wake_parent=self.instance.parent_instance_id if wake_parent else None,
            delivered_signals=tuple(self.delivered),
            tasks=tuple(self.tasks),
        )

    def abandoned(self, write: SnapshotWrite) -> list[str]:
        """Step nodes the write cancels while they waited on a worker task (asked before
        it is committed): the task must be cancelled too, or a worker would go on
        with work nobody waits for."""
        committed = self.committed.nodes
        return [
            n.block_id
            for n in write.nodes
            if n.state is NodeState.CANCELLED
            and n.ref is not None
            and n.block_type == "step"
            and (old := committed.get(n.block_id)) is not None
            and old.state is NodeState.WAITING
        ]

    def committed_as(self, snapshot: Snapshot) -> None:
        """The write was committed with `snapshot`: start gathering afresh."""
        self.committed = snapshot
        self.rows = []
        self.children = []
        self.tasks = []
        self.delivered = []
