"""InstanceStore contract, run against every backend."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from orch8.application.errors import Conflict
from orch8.application.ports.storage import InstanceFilter, Page, Storage
from orch8.domain.instance import Instance, InstanceState, Priority
from orch8.domain.sequence import Sequence
from tests.contract.builders import at, make_context, make_instance, make_sequence

S = InstanceState


async def _sequence(storage: Storage, **kwargs: object) -> Sequence:
    seq = make_sequence(**kwargs)  # type: ignore[arg-type]
    await storage.sequences.create(seq)
    return seq


async def _states(storage: Storage, instances: list[Instance]) -> list[InstanceState]:
    found = [await storage.instances.get(i.id) for i in instances]
    return [f.state for f in found if f is not None]


async def test_create_then_get_round_trips_every_field(storage: Storage) -> None:
    seq = await _sequence(storage)
    inst = make_instance(
        seq,
        next_fire_at=at(30),
        priority=Priority.CRITICAL,
        created_at=at(1),
        updated_at=at(2),
        metadata={"campaign": "spring", "tags": ["a", "b"], "n": 3},
        context=make_context(name="Ada", count=2, nested={"deep": [1, None, True]}),
        concurrency_key="user-42",
        max_concurrency=2,
        idempotency_key="req-1",
        parent_instance_id="parent-1",
    )
    await storage.instances.create([inst])
    assert await storage.instances.get(inst.id) == inst


async def test_get_unknown_is_none(storage: Storage) -> None:
    assert await storage.instances.get("nope") is None


async def test_create_nothing_is_a_no_op(storage: Storage) -> None:
    await storage.instances.create([])
    assert await storage.instances.query(InstanceFilter(), Page()) == []


async def test_create_duplicate_within_a_batch_inserts_none(storage: Storage) -> None:
    seq = await _sequence(storage)
    first = make_instance(seq, id="i-1")
    batch = [first, make_instance(seq, id="i-2"), make_instance(seq, id="i-1")]
    with pytest.raises(Conflict):
        await storage.instances.create(batch)
    assert await storage.instances.query(InstanceFilter(), Page()) == []


async def test_create_duplicate_of_stored_id_inserts_none(storage: Storage) -> None:
    seq = await _sequence(storage)
    stored = make_instance(seq, id="i-1")
    await storage.instances.create([stored])
    with pytest.raises(Conflict):
        await storage.instances.create([make_instance(seq, id="i-2"), make_instance(seq, id="i-1")])
    assert await storage.instances.get("i-2") is None
    assert await storage.instances.get("i-1") == stored


async def test_query_filters(storage: Storage) -> None:
    seq_a = await _sequence(storage, name="a")
    seq_b = await _sequence(storage, name="b", tenant_id="globex")
    clock = itertools.count()
    a1 = make_instance(seq_a, created_at=at(next(clock)))
    a2 = make_instance(seq_a, state=S.RUNNING, created_at=at(next(clock)))
    a3 = make_instance(seq_a, state=S.COMPLETED, namespace="ops", created_at=at(next(clock)))
    b1 = make_instance(seq_b, state=S.RUNNING, created_at=at(next(clock)))
    b2 = make_instance(seq_b, tenant_id="acme", state=S.FAILED, created_at=at(next(clock)))
    await storage.instances.create([a1, a2, a3, b1, b2])

    async def q(**kwargs: object) -> list[Instance]:
        return await storage.instances.query(InstanceFilter(**kwargs), Page())  # type: ignore[arg-type]

    assert await q() == [b2, b1, a3, a2, a1]
    assert await q(tenant_id="acme") == [b2, a3, a2, a1]
    assert await q(tenant_id="globex") == [b1]
    assert await q(namespace="ops") == [a3]
    assert await q(sequence_id=seq_b.id) == [b2, b1]
    assert await q(states=(S.RUNNING,)) == [b1, a2]
    assert await q(states=(S.RUNNING, S.FAILED, S.COMPLETED)) == [b2, b1, a3, a2]
    assert await q(tenant_id="acme", namespace="default", states=(S.RUNNING, S.SCHEDULED)) == [
        a2,
        a1,
    ]
    assert await q(tenant_id="acme", sequence_id=seq_b.id, states=(S.FAILED,)) == [b2]
    assert await q(states=(S.PAUSED,)) == []
    assert await q(tenant_id="initech") == []


async def test_query_orders_newest_first_then_id_descending_and_pages(storage: Storage) -> None:
    seq = await _sequence(storage)
    insts = [make_instance(seq, id=f"i-{n:02d}", created_at=at(n // 3)) for n in range(8)]
    await storage.instances.create(insts)
    expected = sorted(insts, key=lambda i: (i.created_at, i.id), reverse=True)
    assert await storage.instances.query(InstanceFilter(), Page()) == expected
    pages = [
        await storage.instances.query(InstanceFilter(), Page(offset=o, limit=3)) for o in (0, 3, 6)
    ]
    assert pages == [expected[0:3], expected[3:6], expected[6:8]]
    assert await storage.instances.query(InstanceFilter(), Page(offset=8)) == []


async def test_claim_order_is_priority_then_fire_time(storage: Storage) -> None:
    seq = await _sequence(storage)
    low_early = make_instance(seq, priority=Priority.LOW, next_fire_at=at(-50))
    normal_late = make_instance(seq, priority=Priority.NORMAL, next_fire_at=at(-1))
    normal_early = make_instance(seq, priority=Priority.NORMAL, next_fire_at=at(-20))
    normal_unset = make_instance(seq, priority=Priority.NORMAL, next_fire_at=None)
    critical = make_instance(seq, priority=Priority.CRITICAL, next_fire_at=at(-5))
    high = make_instance(seq, priority=Priority.HIGH, next_fire_at=at(0))
    await storage.instances.create(
        [low_early, normal_late, normal_early, normal_unset, critical, high]
    )
    claimed = await storage.instances.claim_due(at(0), 10)
    assert [c.id for c in claimed] == [
        critical.id,
        high.id,
        normal_unset.id,
        normal_early.id,
        normal_late.id,
        low_early.id,
    ]


async def test_claim_returns_running_instances_stored_as_running(storage: Storage) -> None:
    seq = await _sequence(storage)
    inst = make_instance(seq, next_fire_at=at(-1), context=make_context(name="Ada"))
    await storage.instances.create([inst])
    now = at(5)
    [claimed] = await storage.instances.claim_due(now, 1)
    assert claimed.id == inst.id
    assert claimed.state is S.RUNNING
    assert claimed.updated_at == now
    assert claimed.context == inst.context
    assert claimed.next_fire_at == inst.next_fire_at
    assert await storage.instances.get(inst.id) == claimed


async def test_claim_skips_future_and_non_scheduled(storage: Storage) -> None:
    seq = await _sequence(storage)
    due = make_instance(seq, next_fire_at=at(0))
    future = make_instance(seq, next_fire_at=at(0.000001))
    others = [
        make_instance(seq, state=state, next_fire_at=at(-10))
        for state in InstanceState
        if state is not S.SCHEDULED
    ]
    await storage.instances.create([due, future, *others])
    claimed = await storage.instances.claim_due(at(0), 100)
    assert [c.id for c in claimed] == [due.id]
    assert await storage.instances.claim_due(at(0), 100) == []
    assert [c.id for c in await storage.instances.claim_due(at(1), 100)] == [future.id]
    assert await _states(storage, others) == [o.state for o in others]


async def test_claim_respects_limit(storage: Storage) -> None:
    seq = await _sequence(storage)
    insts = [make_instance(seq, next_fire_at=at(-i)) for i in range(5)]
    await storage.instances.create(insts)
    assert await storage.instances.claim_due(at(0), 0) == []
    first = await storage.instances.claim_due(at(0), 2)
    second = await storage.instances.claim_due(at(0), 2)
    third = await storage.instances.claim_due(at(0), 2)
    assert [len(first), len(second), len(third)] == [2, 2, 1]
    assert [i.id for i in first + second + third] == [i.id for i in reversed(insts)]


async def test_concurrent_claimers_never_share_an_instance(storage: Storage) -> None:
    seq = await _sequence(storage)
    insts = [make_instance(seq, next_fire_at=at(-i), priority=Priority(i % 4)) for i in range(60)]
    await storage.instances.create(insts)
    batches = await asyncio.gather(*(storage.instances.claim_due(at(0), 7) for _ in range(12)))
    ids = [i.id for batch in batches for i in batch]
    assert len(ids) == len(set(ids)) == 60
    assert set(await _states(storage, insts)) == {S.RUNNING}


async def test_recover_stale_moves_only_old_running_instances(storage: Storage) -> None:
    seq = await _sequence(storage)
    stale = make_instance(seq, state=S.RUNNING, updated_at=at(-100))
    edge = make_instance(seq, state=S.RUNNING, updated_at=at(-60))
    fresh = make_instance(seq, state=S.RUNNING, updated_at=at(-1))
    waiting = make_instance(seq, state=S.WAITING, updated_at=at(-100))
    await storage.instances.create([stale, edge, fresh, waiting])
    now = at(0)
    assert await storage.instances.recover_stale(at(-60), now) == 1
    moved = await storage.instances.get(stale.id)
    assert moved is not None
    assert (moved.state, moved.next_fire_at, moved.updated_at) == (S.SCHEDULED, now, now)
    assert await storage.instances.get(edge.id) == edge
    assert await storage.instances.get(fresh.id) == fresh
    assert await storage.instances.get(waiting.id) == waiting
    assert await storage.instances.recover_stale(at(-60), now) == 0
    [reclaimed] = await storage.instances.claim_due(now, 10)
    assert reclaimed.id == stale.id


async def test_heartbeat_refreshes_running_instances_only(storage: Storage) -> None:
    seq = await _sequence(storage)
    running = make_instance(seq, state=S.RUNNING, updated_at=at(-100))
    scheduled = make_instance(seq, state=S.SCHEDULED, updated_at=at(-100))
    await storage.instances.create([running, scheduled])
    await storage.instances.heartbeat([running.id, scheduled.id, "unknown"], at(0))
    beaten = await storage.instances.get(running.id)
    assert beaten is not None
    assert beaten.updated_at == at(0)
    assert await storage.instances.get(scheduled.id) == scheduled
    assert await storage.instances.recover_stale(at(-50), at(1)) == 0
    await storage.instances.heartbeat([], at(2))
