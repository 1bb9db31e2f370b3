"""SignalInbox contract, and delivery through snapshot writes, run against every backend."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest
from attrs import evolve

from orch8.application.errors import Conflict, InstanceTerminal, NotFound, StaleWrite
from orch8.application.ports.storage import SnapshotWrite, Storage
from orch8.domain.instance import Instance, InstanceState
from orch8.domain.signals import Signal, SignalKind
from tests.contract.builders import at, make_instance, make_sequence, new_id

S = InstanceState
K = SignalKind


def make_signal(
    inst: Instance,
    kind: SignalKind = K.CUSTOM,
    *,
    created_at: datetime | None = None,
    payload: Any = None,
    name: str | None = None,
    id: str | None = None,
) -> Signal:
    return Signal(
        id=id or new_id("sig"),
        instance_id=inst.id,
        tenant_id=inst.tenant_id,
        kind=kind,
        created_at=created_at or at(10),
        payload=payload,
        name=name if name is not None or kind is not K.CUSTOM else "ping",
    )


async def _instance(storage: Storage, **kwargs: Any) -> Instance:
    seq = make_sequence(new_id("seq"))
    await storage.sequences.create(seq)
    inst = make_instance(seq, **kwargs)
    await storage.instances.create([inst])
    return inst


async def _get(storage: Storage, inst: Instance) -> Instance:
    found = await storage.instances.get(inst.id)
    assert found is not None
    return found


def _delivering(inst: Instance, *signal_ids: str, **fields: Any) -> SnapshotWrite:
    return SnapshotWrite(
        instance_id=inst.id,
        expected_state=fields.pop("expected_state", S.RUNNING),
        state=fields.pop("state", S.RUNNING),
        next_fire_at=None,
        updated_at=fields.pop("updated_at", at(20)),
        delivered_signals=signal_ids,
        **fields,
    )


async def test_enqueued_signals_round_trip_in_order(storage: Storage) -> None:
    inst = await _instance(storage, state=S.RUNNING)
    signals = [
        make_signal(inst, K.UPDATE_CONTEXT, created_at=at(5), payload={"data": {"a": [1, None]}}),
        make_signal(inst, K.CUSTOM, created_at=at(3), name="human_input:gate", payload="yes"),
        make_signal(inst, K.PAUSE, created_at=at(5)),  # ties with the first: enqueue order
        make_signal(inst, K.CANCEL, created_at=at(9), payload={"reason": "ünïcode ✓"}),
    ]
    for signal in signals:
        await storage.signals.enqueue(signal)
    assert await storage.signals.pending(inst.id) == [
        signals[1],
        signals[0],
        signals[2],
        signals[3],
    ]


async def test_pending_of_an_instance_without_signals_is_empty(storage: Storage) -> None:
    inst = await _instance(storage)
    assert await storage.signals.pending(inst.id) == []
    assert await storage.signals.pending("nope") == []


async def test_signal_to_unknown_instance_is_not_found(storage: Storage) -> None:
    inst = await _instance(storage)
    ghost = evolve(inst, id="ghost")
    with pytest.raises(NotFound):
        await storage.signals.enqueue(make_signal(ghost))


@pytest.mark.parametrize("state", [S.COMPLETED, S.FAILED, S.CANCELLED])
async def test_signal_to_ended_instance_is_refused_and_not_stored(
    storage: Storage, state: InstanceState
) -> None:
    inst = await _instance(storage, state=state, next_fire_at=at(100))
    with pytest.raises(InstanceTerminal) as info:
        await storage.signals.enqueue(make_signal(inst, K.RESUME))
    assert info.value.state == state.value
    assert await storage.signals.pending(inst.id) == []
    assert await _get(storage, inst) == inst


async def test_duplicate_signal_id_conflicts(storage: Storage) -> None:
    inst = await _instance(storage, state=S.RUNNING)
    first = make_signal(inst)
    await storage.signals.enqueue(first)
    with pytest.raises(Conflict):
        await storage.signals.enqueue(make_signal(inst, K.PAUSE, id=first.id))
    assert await storage.signals.pending(inst.id) == [first]


WAKES = [
    (S.SCHEDULED, K.PAUSE),
    (S.SCHEDULED, K.CUSTOM),
    (S.WAITING, K.UPDATE_CONTEXT),
    (S.WAITING, K.CANCEL),
    (S.PAUSED, K.RESUME),
    (S.PAUSED, K.CANCEL),
]
STAYS = [
    (S.RUNNING, K.PAUSE),
    (S.RUNNING, K.CANCEL),
    (S.PAUSED, K.PAUSE),
    (S.PAUSED, K.UPDATE_CONTEXT),
    (S.PAUSED, K.CUSTOM),
]


@pytest.mark.parametrize(("state", "kind"), WAKES)
async def test_a_signal_makes_a_sleeping_instance_due_at_once(
    storage: Storage, state: InstanceState, kind: SignalKind
) -> None:
    inst = await _instance(storage, state=state, next_fire_at=at(3600), updated_at=at(1))
    await storage.signals.enqueue(make_signal(inst, kind, created_at=at(10)))
    assert await _get(storage, inst) == evolve(inst, state=S.SCHEDULED, next_fire_at=at(10))


async def test_a_wake_keeps_an_earlier_fire_time(storage: Storage) -> None:
    inst = await _instance(storage, state=S.SCHEDULED, next_fire_at=at(2))
    await storage.signals.enqueue(make_signal(inst, created_at=at(10)))
    assert await _get(storage, inst) == inst


async def test_a_wake_gives_a_missing_fire_time_the_signals(storage: Storage) -> None:
    inst = await _instance(storage, state=S.WAITING, next_fire_at=None)
    await storage.signals.enqueue(make_signal(inst, created_at=at(10)))
    assert await _get(storage, inst) == evolve(inst, state=S.SCHEDULED, next_fire_at=at(10))


@pytest.mark.parametrize(("state", "kind"), STAYS)
async def test_other_signals_leave_the_instance_alone(
    storage: Storage, state: InstanceState, kind: SignalKind
) -> None:
    inst = await _instance(storage, state=state, next_fire_at=at(3600))
    signal = make_signal(inst, kind)
    await storage.signals.enqueue(signal)
    assert await _get(storage, inst) == inst
    assert await storage.signals.pending(inst.id) == [signal]


async def test_a_snapshot_write_delivers_the_signals_it_names(storage: Storage) -> None:
    inst = await _instance(storage, state=S.RUNNING)
    first, second, third = (make_signal(inst, created_at=at(n)) for n in (1, 2, 3))
    for signal in (first, second, third):
        await storage.signals.enqueue(signal)
    await storage.snapshots.commit(_delivering(inst, first.id, third.id, updated_at=at(20)))
    assert await storage.signals.pending(inst.id) == [second]
    # Delivering again (a replay) or naming another instance's signal changes nothing.
    other = await _instance(storage, state=S.RUNNING)
    foreign = make_signal(other)
    await storage.signals.enqueue(foreign)
    await storage.snapshots.commit(_delivering(inst, first.id, foreign.id, updated_at=at(30)))
    assert await storage.signals.pending(inst.id) == [second]
    assert await storage.signals.pending(other.id) == [foreign]


async def test_a_stale_write_delivers_nothing(storage: Storage) -> None:
    inst = await _instance(storage, state=S.WAITING)
    signal = make_signal(inst)
    await storage.signals.enqueue(signal)  # wakes it: scheduled
    with pytest.raises(StaleWrite):
        await storage.snapshots.commit(_delivering(inst, signal.id))
    assert await storage.signals.pending(inst.id) == [signal]


async def test_a_failing_write_delivers_nothing(storage: Storage) -> None:
    inst = await _instance(storage, state=S.RUNNING)
    signal = make_signal(inst)
    await storage.signals.enqueue(signal)
    clash = evolve(inst, id=inst.id, idempotency_key=None)  # a child whose id is taken
    with pytest.raises(Conflict):
        await storage.snapshots.commit(_delivering(inst, signal.id, children=(clash,)))
    assert await storage.signals.pending(inst.id) == [signal]


async def test_group_committed_writes_each_deliver_their_own(storage: Storage) -> None:
    seq = make_sequence()
    await storage.sequences.create(seq)
    insts = [make_instance(seq, state=S.RUNNING) for _ in range(30)]
    await storage.instances.create(insts)
    signals = {i.id: [make_signal(i, created_at=at(n)) for n in range(3)] for i in insts}
    for batch in signals.values():
        for signal in batch:
            await storage.signals.enqueue(signal)
    writes = []
    for inst in insts:
        first, second, _ = signals[inst.id]
        writes.append(_delivering(inst, first.id, updated_at=at(20)))
        writes.append(_delivering(inst, second.id, updated_at=at(21)))
    # One instance's write is stale: only its deliveries stay pending.
    stale = insts[7]
    writes = [
        evolve(w, expected_state=S.WAITING) if w.instance_id == stale.id else w for w in writes
    ]
    results = await asyncio.gather(
        *(storage.snapshots.commit(w) for w in writes), return_exceptions=True
    )
    failures = [r for r in results if r is not None]
    assert len(failures) == 2
    assert all(isinstance(f, StaleWrite) for f in failures)
    for inst in insts:
        expected = signals[inst.id] if inst is stale else signals[inst.id][2:]
        assert await storage.signals.pending(inst.id) == expected, inst.id


async def test_a_signal_can_arrive_while_its_instance_runs(storage: Storage) -> None:
    """Enqueued between two writes of the runner: pending for the next one, not lost."""
    inst = await _instance(storage, state=S.RUNNING)
    early = make_signal(inst, created_at=at(1))
    await storage.signals.enqueue(early)
    await storage.snapshots.commit(_delivering(inst, early.id, updated_at=at(2)))
    late = make_signal(inst, created_at=at(3))
    await storage.signals.enqueue(late)
    assert await storage.signals.pending(inst.id) == [late]
    await storage.snapshots.commit(_delivering(inst, late.id, state=S.COMPLETED, updated_at=at(4)))
    assert await storage.signals.pending(inst.id) == []
    with pytest.raises(InstanceTerminal):
        await storage.signals.enqueue(make_signal(inst, created_at=at(5)))


async def test_wake_due_waiting_wakes_only_timed_out_waits(storage: Storage) -> None:
    seq = make_sequence()
    await storage.sequences.create(seq)
    due = make_instance(seq, state=S.WAITING, next_fire_at=at(5))
    later = make_instance(seq, state=S.WAITING, next_fire_at=at(50))
    forever = make_instance(seq, state=S.WAITING, next_fire_at=None)
    scheduled = make_instance(seq, state=S.SCHEDULED, next_fire_at=at(5))
    await storage.instances.create([due, later, forever, scheduled])
    assert await storage.instances.wake_due_waiting(at(10)) == 1
    assert await _get(storage, due) == evolve(due, state=S.SCHEDULED, updated_at=at(10))
    for untouched in (later, forever, scheduled):
        assert await _get(storage, untouched) == untouched
    assert await storage.instances.wake_due_waiting(at(10)) == 0
