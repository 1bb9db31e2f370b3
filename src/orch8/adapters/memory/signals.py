"""Signals in memory: the reference behaviour of `SignalInbox`.

Enqueueing wakes the instance in the same call, so a signal is never left
waiting behind a sleeping instance.
"""

from __future__ import annotations

from attrs import evolve

from orch8.adapters.memory.state import MemoryState
from orch8.application.errors import Conflict, InstanceTerminal, NotFound
from orch8.application.ports.storage import SignalInbox
from orch8.domain.instance import InstanceState
from orch8.domain.signals import Signal, SignalKind


class MemorySignalInbox(SignalInbox):
    def __init__(self, state: MemoryState) -> None:
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
