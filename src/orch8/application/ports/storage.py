"""Storage ports: role-sized Protocols whose docstrings are the contract.

Every adapter (memory, SQLite, PostgreSQL) implements all of them and is held
to the same contract test suite. Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from datetime import datetime
from typing import Protocol

from attrs import frozen

from orch8.domain.context import ExecutionContext
from orch8.domain.instance import Instance, InstanceState
from orch8.domain.outputs import BlockOutput
from orch8.domain.sequence import Sequence
from orch8.domain.tree import Node


@frozen
class SequenceFilter:
    tenant_id: str | None = None
    namespace: str | None = None
    name: str | None = None


@frozen
class InstanceFilter:
    tenant_id: str | None = None
    namespace: str | None = None
    sequence_id: str | None = None
    states: tuple[InstanceState, ...] = ()


@frozen
class Page:
    offset: int = 0
    limit: int = 100


class SequenceStore(Protocol):
    async def create(self, sequence: Sequence) -> None:
        """Insert a sequence version.

        Raises Conflict when the id exists, or when (tenant, namespace, name,
        version) is taken.
        """
        ...

    async def get(self, sequence_id: str) -> Sequence | None: ...

    async def get_by_name(
        self, tenant_id: str, namespace: str, name: str, version: int | None = None
    ) -> Sequence | None:
        """The given version, or with version None the highest non-deprecated one."""
        ...

    async def versions(self, tenant_id: str, namespace: str, name: str) -> list[Sequence]:
        """Every version of a name, highest first."""
        ...

    async def query(self, flt: SequenceFilter, page: Page) -> list[Sequence]:
        """Newest first (created_at, then id, descending)."""
        ...

    async def deprecate(self, sequence_id: str) -> bool:
        """Mark deprecated; False when there is no such sequence."""
        ...

    async def delete(self, sequence_id: str) -> bool:
        """Remove a sequence; False when absent. Raises Conflict if instances use it."""
        ...


class InstanceStore(Protocol):
    async def create(self, instances: Seq[Instance]) -> None:
        """Insert instances atomically: all or none.

        Raises Conflict on a duplicate id, a duplicate (tenant_id, idempotency_key),
        or a sequence_id that does not exist.
        """
        ...

    async def get(self, instance_id: str) -> Instance | None: ...

    async def query(self, flt: InstanceFilter, page: Page) -> list[Instance]:
        """Newest first (created_at, then id, descending)."""
        ...

    async def claim_due(self, now: datetime, limit: int) -> list[Instance]:
        """Atomically take up to `limit` scheduled instances whose fire time has come.

        Order: priority descending, then next_fire_at ascending, ties in creation
        order. A limit of zero or less claims nothing. Each returned
        instance is already `running` with updated_at = now in storage; two
        concurrent callers (threads, processes) never receive the same instance.
        """
        ...

    async def recover_stale(self, stale_before: datetime, now: datetime) -> int:
        """Return instances `running` and not updated since `stale_before` to `scheduled`
        (next_fire_at = now); the count moved."""
        ...

    async def heartbeat(self, instance_ids: Seq[str], now: datetime) -> None:
        """Refresh updated_at of running instances so recovery does not steal them."""
        ...

    async def wake_parents_of_finished_children(self, now: datetime) -> int:
        """Make due every `waiting` instance that has a `waiting` tree node whose `ref`
        names an instance in a terminal state; returns how many were woken.

        The safety net behind `SnapshotWrite.wake_parent`, for a parent that was
        still running when its child finished and then went to wait.
        """
        ...


@frozen
class SnapshotWrite:
    """One step's effects, written atomically with the instance's state transition.

    The write applies only if the instance is still in `expected_state`: a
    process that lost its claim must not overwrite newer state.

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


class OutputStore(Protocol):
    async def list_for_instance(self, instance_id: str) -> list[BlockOutput]:
        """Every output row of an instance, oldest first (created_at, then write order)."""
        ...

    async def latest(self, instance_id: str, block_ids: Seq[str]) -> dict[str, BlockOutput]:
        """The newest successful output (output_ref None) of each named block that has one.

        What templates read as `outputs.<block_id>`: its cost depends on the
        blocks named, never on how many steps the instance has run.
        """
        ...


class Storage(Protocol):
    """The whole storage of one backend; what the composition root hands the engine."""

    @property
    def sequences(self) -> SequenceStore: ...

    @property
    def instances(self) -> InstanceStore: ...

    @property
    def snapshots(self) -> SnapshotStore: ...

    @property
    def outputs(self) -> OutputStore: ...

    async def migrate(self) -> None:
        """Bring the schema to the latest version; safe to run repeatedly."""
        ...

    async def ping(self) -> None:
        """Raise if the backend cannot serve requests (used by /health/ready)."""
        ...

    async def close(self) -> None:
        """Finish queued writes and release connections; safe to call twice."""
        ...
