"""`SnapshotStore`: one bounded read to resume, one guarded write per step."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from attrs import frozen

from orch8.domain.context import ExecutionContext
from orch8.domain.instance import Instance, InstanceState
from orch8.domain.outputs import BlockOutput
from orch8.domain.tasks import WorkerTask
from orch8.domain.tree import Node


@frozen
class SnapshotWrite:
    """One step's effects, written atomically with the instance's state transition.

    The write applies only if the instance is still in `expected_state`: a
    process that lost its claim must not overwrite newer state.

    `tasks` are new worker tasks, inserted with the write that parks their step. A
    task whose (instance, block, attempt) belongs to a task still open is ignored (it
    already exists); a finished one under that key is replaced (a loop's next
    iteration runs the step afresh).

    `delivered_signals` are marked delivered (delivered_at = updated_at) in the
    same transaction, so a signal is acted on exactly once.

    `children` are new instances (sub_sequence children) inserted in the same
    transaction as the node that waits for them, so a crash can neither lose a
    child nor start it twice. `wake_parent` names an instance to make due now if
    it is `waiting` or `scheduled` (a child reaching its end wakes its parent).
    """

    instance_id: str
    expected_state: InstanceState
    state: InstanceState
    next_fire_at: datetime | None
    updated_at: datetime
    context: ExecutionContext | None = None
    nodes: tuple[Node, ...] = ()
    outputs: tuple[BlockOutput, ...] = ()
    children: tuple[Instance, ...] = ()
    wake_parent: str | None = None
    delivered_signals: tuple[str, ...] = ()
    tasks: tuple[WorkerTask, ...] = ()


class SnapshotStore(Protocol):
    async def load(self, instance_id: str) -> tuple[Instance, list[Node]] | None:
        """The instance and its execution-tree nodes: one bounded read, whatever
        the number of steps already run."""
        ...

    async def commit(self, write: SnapshotWrite) -> None:
        """Apply `write` in one transaction; raises StaleWrite if the guard fails
        (and then writes nothing). Adapters may group concurrent commits into one
        transaction, but each write still lands whole or not at all, and commits
        from one process apply in call order. A caller cancelled while waiting
        may still see its write committed: once handed over, it is never torn.
        A duplicate output id raises Conflict for that write alone."""
        ...
