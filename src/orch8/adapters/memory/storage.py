"""Dict-backed storage. Single event loop, so every method is trivially atomic:
there is no await between reading and writing shared state."""

from __future__ import annotations

from collections.abc import Sequence as Seq
from datetime import datetime, timedelta

from attrs import evolve

from orch8.adapters.memory.cron import MemoryCronStore
from orch8.adapters.memory.rate_limits import MemoryRateLimitStore
from orch8.adapters.memory.tasks import MemoryTaskQueue, TaskTable
from orch8.application.errors import Conflict, InstanceTerminal, NotFound, StaleWrite
from orch8.application.ports.storage import (
    CAP_DEFERRAL,
    EARLIEST_FIRE,
    LATEST_FIRE,
    InstanceFilter,
    InstanceStore,
    OutputStore,
    Page,
    RateLimitStore,
    SequenceFilter,
    SequenceStore,
    SignalInbox,
    SnapshotStore,
    SnapshotWrite,
    Storage,
    movable_to,
    reschedulable,
)
from orch8.domain.context import ExecutionContext
from orch8.domain.instance import Instance, InstanceState, Priority
from orch8.domain.outputs import BlockOutput
from orch8.domain.sequence import Sequence
from orch8.domain.signals import Signal, SignalKind
from orch8.domain.tree import Node, NodeState


class _State:
    def __init__(self) -> None:
        self.sequences: dict[str, Sequence] = {}
        self.instances: dict[str, Instance] = {}
        self.nodes: dict[str, dict[str, Node]] = {}
        self.outputs: dict[str, list[BlockOutput]] = {}
        self.signals: dict[str, list[Signal]] = {}
        self.tasks = TaskTable()


class MemorySequenceStore(SequenceStore):
    def __init__(self, state: _State) -> None:
        self._s = state

    async def create(self, sequence: Sequence) -> None:
        if sequence.id in self._s.sequences:
            raise Conflict(f"sequence {sequence.id} already exists")
        for other in self._s.sequences.values():
            if (other.tenant_id, other.namespace, other.name, other.version) == (
                sequence.tenant_id,
                sequence.namespace,
                sequence.name,
                sequence.version,
            ):
                raise Conflict(
                    f"sequence '{sequence.name}' version {sequence.version} already exists"
                )
        self._s.sequences[sequence.id] = sequence

    async def get(self, sequence_id: str) -> Sequence | None:
        return self._s.sequences.get(sequence_id)

    async def get_by_name(
        self, tenant_id: str, namespace: str, name: str, version: int | None = None
    ) -> Sequence | None:
        versions = await self.versions(tenant_id, namespace, name)
        if version is not None:
            return next((s for s in versions if s.version == version), None)
        return next((s for s in versions if not s.deprecated), None)

    async def versions(self, tenant_id: str, namespace: str, name: str) -> list[Sequence]:
        found = [
            s
            for s in self._s.sequences.values()
            if (s.tenant_id, s.namespace, s.name) == (tenant_id, namespace, name)
        ]
        return sorted(found, key=lambda s: s.version, reverse=True)

    async def query(self, flt: SequenceFilter, page: Page) -> list[Sequence]:
        found = [
            s
            for s in self._s.sequences.values()
            if (flt.tenant_id is None or s.tenant_id == flt.tenant_id)
            and (flt.namespace is None or s.namespace == flt.namespace)
            and (flt.name is None or s.name == flt.name)
        ]
        found.sort(key=lambda s: (s.created_at, s.id), reverse=True)
        return found[page.offset : page.offset + page.limit]

    async def deprecate(self, sequence_id: str) -> bool:
        seq = self._s.sequences.get(sequence_id)
        if seq is None:
            return False
        self._s.sequences[sequence_id] = evolve(seq, deprecated=True)
        return True

    async def delete(self, sequence_id: str) -> bool:
        if sequence_id not in self._s.sequences:
            return False
        if any(i.sequence_id == sequence_id for i in self._s.instances.values()):
            raise Conflict(f"sequence {sequence_id} still has instances")
        del self._s.sequences[sequence_id]
        return True


def _matches(inst: Instance, flt: InstanceFilter) -> bool:
    return (
        (flt.tenant_id is None or inst.tenant_id == flt.tenant_id)
        and (flt.namespace is None or inst.namespace == flt.namespace)
        and (flt.sequence_id is None or inst.sequence_id == flt.sequence_id)
        and (not flt.states or inst.state in flt.states)
    )


_WAKEABLE = (InstanceState.WAITING, InstanceState.SCHEDULED)


def _shifted(fire: datetime, seconds: int) -> datetime:
    span = int((LATEST_FIRE - EARLIEST_FIRE).total_seconds())
    shift = timedelta(seconds=max(-span, min(span, seconds)))
    try:
        moved = fire + shift
    except OverflowError:
        return LATEST_FIRE if seconds > 0 else EARLIEST_FIRE
    return min(max(moved, EARLIEST_FIRE), LATEST_FIRE)


class MemoryInstanceStore(InstanceStore):
    def __init__(self, state: _State) -> None:
        self._s = state

    async def create(self, instances: Seq[Instance]) -> None:
        ids = [i.id for i in instances]
        if len(set(ids)) != len(ids) or any(i in self._s.instances for i in ids):
            raise Conflict("instance id already exists")
        keys = [(i.tenant_id, i.idempotency_key) for i in instances if i.idempotency_key]
        taken = {
            (i.tenant_id, i.idempotency_key)
            for i in self._s.instances.values()
            if i.idempotency_key
        }
        if len(set(keys)) != len(keys) or taken.intersection(keys):
            raise Conflict("idempotency key already used")
        if any(i.sequence_id not in self._s.sequences for i in instances):
            raise Conflict("unknown sequence")
        for inst in instances:
            self._s.instances[inst.id] = inst

    async def get(self, instance_id: str) -> Instance | None:
        return self._s.instances.get(instance_id)

    async def find_by_idempotency_key(self, tenant_id: str, key: str) -> Instance | None:
        return next(
            (
                i
                for i in self._s.instances.values()
                if i.tenant_id == tenant_id and i.idempotency_key == key
            ),
            None,
        )

    async def update_state(
        self,
        instance_id: str,
        expected: InstanceState,
        new: InstanceState,
        next_fire_at: datetime | None,
        now: datetime,
    ) -> None:
        inst = self._s.instances.get(instance_id)
        if inst is None or inst.state is not expected:
            raise StaleWrite(f"instance {instance_id} is no longer {expected.value}")
        self._s.instances[instance_id] = evolve(
            inst, state=new, next_fire_at=next_fire_at, updated_at=now
        )
        parent = self._s.instances.get(inst.parent_instance_id or "")
        if new.is_terminal and parent is not None and parent.state in _WAKEABLE:
            fire = now if parent.next_fire_at is None else min(parent.next_fire_at, now)
            self._s.instances[parent.id] = evolve(
                parent, state=InstanceState.SCHEDULED, next_fire_at=fire, updated_at=now
            )

    async def replace_context(
        self, instance_id: str, context: ExecutionContext, now: datetime
    ) -> None:
        inst = self._s.instances.get(instance_id)
        if inst is None:
            raise NotFound("instance", instance_id)
        if inst.state is InstanceState.RUNNING:
            raise StaleWrite(f"instance {instance_id} is running")
        self._s.instances[instance_id] = evolve(inst, context=context, updated_at=now)

    async def bulk_update_state(
        self, flt: InstanceFilter, new_state: InstanceState, now: datetime
    ) -> int:
        sources = movable_to(new_state, flt.states)
        moved = 0
        for inst in list(self._s.instances.values()):
            if inst.state in sources and _matches(inst, evolve(flt, states=())):
                fire = now if new_state is InstanceState.SCHEDULED else inst.next_fire_at
                self._s.instances[inst.id] = evolve(
                    inst, state=new_state, next_fire_at=fire, updated_at=now
                )
                moved += 1
        return moved

    async def bulk_reschedule(self, flt: InstanceFilter, offset_seconds: int, now: datetime) -> int:
        sources = reschedulable(flt.states)
        moved = 0
        for inst in list(self._s.instances.values()):
            if inst.state in sources and _matches(inst, evolve(flt, states=())):
                self._s.instances[inst.id] = evolve(
                    inst,
                    next_fire_at=_shifted(inst.next_fire_at or now, offset_seconds),
                    updated_at=now,
                )
                moved += 1
        return moved

    async def query(self, flt: InstanceFilter, page: Page) -> list[Instance]:
        found = [i for i in self._s.instances.values() if _matches(i, flt)]
        found.sort(key=lambda i: (i.created_at, i.id), reverse=True)
        return found[page.offset : page.offset + page.limit]

    async def claim_due(self, now: datetime, limit: int) -> list[Instance]:
        due = [
            i
            for i in self._s.instances.values()
            if i.state is InstanceState.SCHEDULED
            and (i.next_fire_at is None or i.next_fire_at <= now)
        ]
        if limit <= 0:
            return []
        due.sort(
            key=lambda i: (
                -i.priority,
                i.next_fire_at or datetime.min.replace(tzinfo=now.tzinfo),
                i.created_at,
                i.id,
            )
        )
        running_by_key: dict[str, int] = {}
        for other in self._s.instances.values():
            held = other.concurrency_key
            if other.state is InstanceState.RUNNING and held is not None:
                running_by_key[held] = running_by_key.get(held, 0) + 1
        claimed = []
        for inst in due[:limit]:
            key, cap = inst.concurrency_key, inst.max_concurrency
            if key is not None:
                if cap is not None and running_by_key.get(key, 0) >= cap:
                    self._s.instances[inst.id] = evolve(inst, next_fire_at=now + CAP_DEFERRAL)
                    continue
                running_by_key[key] = running_by_key.get(key, 0) + 1
            running = evolve(inst, state=InstanceState.RUNNING, updated_at=now)
            self._s.instances[inst.id] = running
            claimed.append(running)
        return claimed

    async def recover_stale(self, stale_before: datetime, now: datetime) -> int:
        moved = 0
        for inst in list(self._s.instances.values()):
            if inst.state is InstanceState.RUNNING and inst.updated_at < stale_before:
                self._s.instances[inst.id] = evolve(
                    inst, state=InstanceState.SCHEDULED, next_fire_at=now, updated_at=now
                )
                moved += 1
        return moved

    async def heartbeat(self, instance_ids: Seq[str], now: datetime) -> None:
        for iid in instance_ids:
            inst = self._s.instances.get(iid)
            if inst is not None and inst.state is InstanceState.RUNNING:
                self._s.instances[iid] = evolve(inst, updated_at=now)

    async def has_due_higher_priority(self, priority: Priority, now: datetime) -> bool:
        return any(
            i.state is InstanceState.SCHEDULED
            and i.priority > priority
            and (i.next_fire_at is None or i.next_fire_at <= now)
            for i in self._s.instances.values()
        )

    async def wake_due_waiting(self, now: datetime) -> int:
        woken = 0
        for inst in list(self._s.instances.values()):
            due = inst.next_fire_at is not None and inst.next_fire_at <= now
            if inst.state is InstanceState.WAITING and due:
                self._s.instances[inst.id] = evolve(
                    inst, state=InstanceState.SCHEDULED, updated_at=now
                )
                woken += 1
        return woken

    async def wake_parents_of_finished_children(self, now: datetime) -> int:
        woken = 0
        for iid, nodes in self._s.nodes.items():
            parent = self._s.instances.get(iid)
            if parent is None or parent.state is not InstanceState.WAITING:
                continue
            for node in nodes.values():
                child = self._s.instances.get(node.ref) if node.ref else None
                if node.state is NodeState.WAITING and child and child.state.is_terminal:
                    self._s.instances[iid] = evolve(
                        parent, state=InstanceState.SCHEDULED, next_fire_at=now, updated_at=now
                    )
                    woken += 1
                    break
        return woken


class MemorySnapshotStore(SnapshotStore):
    def __init__(self, state: _State) -> None:
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


class MemorySignalInbox(SignalInbox):
    def __init__(self, state: _State) -> None:
        self._s = state

    async def enqueue(self, signal: Signal) -> None:
        inst = self._s.instances.get(signal.instance_id)
        if inst is None:
            raise NotFound("instance", signal.instance_id)
        if inst.state.is_terminal:
            raise InstanceTerminal(inst.id, inst.state.value)
        if any(s.id == signal.id for queue in self._s.signals.values() for s in queue):
            raise Conflict(f"signal {signal.id} already exists")
        self._s.signals.setdefault(inst.id, []).append(signal)
        wakes = inst.state in (InstanceState.SCHEDULED, InstanceState.WAITING) or (
            inst.state is InstanceState.PAUSED
            and signal.kind in (SignalKind.RESUME, SignalKind.CANCEL)
        )
        if wakes:
            fire = signal.created_at
            if inst.next_fire_at is not None and inst.next_fire_at < fire:
                fire = inst.next_fire_at
            self._s.instances[inst.id] = evolve(
                inst, state=InstanceState.SCHEDULED, next_fire_at=fire
            )

    async def pending(self, instance_id: str) -> list[Signal]:
        waiting = [s for s in self._s.signals.get(instance_id, []) if s.delivered_at is None]
        return sorted(waiting, key=lambda s: s.created_at)  # stable: ties keep enqueue order


class MemoryOutputStore(OutputStore):
    def __init__(self, state: _State) -> None:
        self._s = state

    async def list_for_instance(self, instance_id: str) -> list[BlockOutput]:
        return sorted(self._s.outputs.get(instance_id, []), key=lambda o: o.created_at)

    async def latest(self, instance_id: str, block_ids: Seq[str]) -> dict[str, BlockOutput]:
        wanted = set(block_ids)
        found: dict[str, BlockOutput] = {}
        for out in await self.list_for_instance(instance_id):
            if out.block_id in wanted and out.output_ref is None:
                found[out.block_id] = out
        return found


class MemoryStorage(Storage):
    def __init__(self) -> None:
        state = _State()
        self._sequences = MemorySequenceStore(state)
        self._instances = MemoryInstanceStore(state)
        self._snapshots = MemorySnapshotStore(state)
        self._outputs = MemoryOutputStore(state)
        self._signals = MemorySignalInbox(state)
        self._tasks = MemoryTaskQueue(state.tasks, state.instances)
        self._cron = MemoryCronStore(state.instances)
        self._rate_limits = MemoryRateLimitStore()

    @property
    def sequences(self) -> SequenceStore:
        return self._sequences

    @property
    def instances(self) -> InstanceStore:
        return self._instances

    @property
    def snapshots(self) -> SnapshotStore:
        return self._snapshots

    @property
    def outputs(self) -> OutputStore:
        return self._outputs

    @property
    def signals(self) -> SignalInbox:
        return self._signals

    @property
    def tasks(self) -> MemoryTaskQueue:
        return self._tasks

    @property
    def rate_limits(self) -> RateLimitStore:
        return self._rate_limits

    @property
    def cron(self) -> MemoryCronStore:
        return self._cron

    async def migrate(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
