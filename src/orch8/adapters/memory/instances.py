"""Instances in memory: the reference behaviour of `InstanceStore`.

Single event loop, so every method is atomic: there is no await between reading
and writing shared state, which the SQL stores get from one statement or
transaction.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from datetime import datetime, timedelta

from attrs import evolve

from orch8.adapters.memory.state import MemoryState
from orch8.application.errors import Conflict, NotFound, StaleWrite
from orch8.application.ports.storage import (
    CAP_DEFERRAL,
    EARLIEST_FIRE,
    LATEST_FIRE,
    InstanceFilter,
    InstanceStore,
    Page,
    movable_to,
    reschedulable,
)
from orch8.domain.context import ExecutionContext
from orch8.domain.instance import Instance, InstanceState, Priority
from orch8.domain.tree import NodeState


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
    def __init__(self, state: MemoryState) -> None:
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
