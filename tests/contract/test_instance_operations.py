"""InstanceStore operations behind the operator API (idempotency lookups, guarded
state and context changes, bulk changes, concurrency caps at claim), run against
every backend."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from attrs import evolve

from orch8.application.errors import Conflict, NotFound, StaleWrite
from orch8.application.ports.storage import (
    CAP_DEFERRAL,
    EARLIEST_FIRE,
    LATEST_FIRE,
    InstanceFilter,
    Page,
    Storage,
    movable_to,
)
from orch8.domain.instance import ALLOWED_TRANSITIONS, Instance, InstanceState, Priority
from orch8.domain.sequence import Sequence
from tests.contract.builders import at, make_context, make_instance, make_sequence, new_id

S = InstanceState


async def _sequence(storage: Storage, **kwargs: Any) -> Sequence:
    seq = make_sequence(new_id("seq"), **kwargs)
    await storage.sequences.create(seq)
    return seq


async def _get(storage: Storage, inst: Instance) -> Instance:
    found = await storage.instances.get(inst.id)
    assert found is not None
    return found


# idempotency ---------------------------------------------------------------


async def test_find_by_idempotency_key_is_per_tenant(storage: Storage) -> None:
    acme = await _sequence(storage)
    globex = await _sequence(storage, tenant_id="globex")
    mine = make_instance(acme, idempotency_key="order-1")
    theirs = make_instance(globex, idempotency_key="order-1")
    await storage.instances.create([mine, theirs, make_instance(acme)])
    assert await storage.instances.find_by_idempotency_key("acme", "order-1") == mine
    assert await storage.instances.find_by_idempotency_key("globex", "order-1") == theirs
    assert await storage.instances.find_by_idempotency_key("acme", "order-2") is None
    assert await storage.instances.find_by_idempotency_key("initech", "order-1") is None


async def test_concurrent_creates_with_one_key_store_exactly_one(storage: Storage) -> None:
    seq = await _sequence(storage)
    racers = [make_instance(seq, idempotency_key="once") for _ in range(50)]
    results = await asyncio.gather(
        *(storage.instances.create([r]) for r in racers), return_exceptions=True
    )
    winners = [r for r, outcome in zip(racers, results, strict=True) if outcome is None]
    losers = [outcome for outcome in results if outcome is not None]
    assert len(winners) == 1
    assert len(losers) == 49
    assert all(isinstance(e, Conflict) for e in losers)
    stored = await storage.instances.query(InstanceFilter(), Page(0, 100))
    assert stored == winners
    assert await storage.instances.find_by_idempotency_key("acme", "once") == winners[0]


# update_state ----------------------------------------------------------------


async def test_update_state_moves_a_guarded_instance(storage: Storage) -> None:
    seq = await _sequence(storage)
    inst = make_instance(seq, state=S.SCHEDULED, next_fire_at=at(5))
    await storage.instances.create([inst])
    await storage.instances.update_state(inst.id, S.SCHEDULED, S.PAUSED, at(7), at(9))
    assert await _get(storage, inst) == evolve(
        inst, state=S.PAUSED, next_fire_at=at(7), updated_at=at(9)
    )
    await storage.instances.update_state(inst.id, S.PAUSED, S.SCHEDULED, None, at(10))
    assert await _get(storage, inst) == evolve(
        inst, state=S.SCHEDULED, next_fire_at=None, updated_at=at(10)
    )


async def test_update_state_from_a_state_it_left_is_stale(storage: Storage) -> None:
    seq = await _sequence(storage)
    inst = make_instance(seq, state=S.RUNNING)
    await storage.instances.create([inst])
    with pytest.raises(StaleWrite):
        await storage.instances.update_state(inst.id, S.SCHEDULED, S.PAUSED, None, at(9))
    with pytest.raises(StaleWrite):
        await storage.instances.update_state("nope", S.SCHEDULED, S.PAUSED, None, at(9))
    assert await _get(storage, inst) == inst


async def test_concurrent_guarded_moves_apply_once(storage: Storage) -> None:
    seq = await _sequence(storage)
    inst = make_instance(seq, state=S.PAUSED)
    await storage.instances.create([inst])
    results = await asyncio.gather(
        *(
            storage.instances.update_state(inst.id, S.PAUSED, S.SCHEDULED, at(n), at(n))
            for n in range(10)
        ),
        return_exceptions=True,
    )
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, StaleWrite) for r in results if r is not None)


@pytest.mark.parametrize("target", [S.CANCELLED, S.FAILED, S.COMPLETED])
async def test_ending_a_child_wakes_its_waiting_parent(
    storage: Storage, target: InstanceState
) -> None:
    seq = await _sequence(storage)
    parent = make_instance(seq, state=S.WAITING, next_fire_at=None)
    child = make_instance(seq, state=S.RUNNING, parent_instance_id=parent.id)
    await storage.instances.create([parent, child])
    await storage.instances.update_state(child.id, S.RUNNING, target, None, at(30))
    assert await _get(storage, parent) == evolve(
        parent, state=S.SCHEDULED, next_fire_at=at(30), updated_at=at(30)
    )


async def test_a_non_terminal_move_or_a_busy_parent_wakes_nothing(storage: Storage) -> None:
    seq = await _sequence(storage)
    waiting = make_instance(seq, state=S.WAITING)
    running = make_instance(seq, state=S.RUNNING)
    first = make_instance(seq, state=S.RUNNING, parent_instance_id=waiting.id)
    second = make_instance(seq, state=S.RUNNING, parent_instance_id=running.id)
    await storage.instances.create([waiting, running, first, second])
    await storage.instances.update_state(first.id, S.RUNNING, S.PAUSED, None, at(30))
    await storage.instances.update_state(second.id, S.RUNNING, S.CANCELLED, None, at(30))
    assert await _get(storage, waiting) == waiting
    assert await _get(storage, running) == running


# replace_context -------------------------------------------------------------


@pytest.mark.parametrize("state", [s for s in S if s is not S.RUNNING])
async def test_replace_context_replaces_it_whole(storage: Storage, state: InstanceState) -> None:
    seq = await _sequence(storage)
    inst = make_instance(seq, state=state, context=make_context(old=True, keep="no"))
    await storage.instances.create([inst])
    fresh = make_context(new=[1, 2])
    await storage.instances.replace_context(inst.id, fresh, at(40))
    assert await _get(storage, inst) == evolve(inst, context=fresh, updated_at=at(40))


async def test_replace_context_of_a_running_instance_is_stale(storage: Storage) -> None:
    seq = await _sequence(storage)
    inst = make_instance(seq, state=S.RUNNING, context=make_context(old=True))
    await storage.instances.create([inst])
    with pytest.raises(StaleWrite):
        await storage.instances.replace_context(inst.id, make_context(new=True), at(40))
    assert await _get(storage, inst) == inst


async def test_replace_context_of_unknown_instance_is_not_found(storage: Storage) -> None:
    with pytest.raises(NotFound):
        await storage.instances.replace_context("nope", make_context(), at(40))


# bulk_update_state -----------------------------------------------------------


async def _one_of_each_state(storage: Storage, seq: Sequence, **kwargs: Any) -> list[Instance]:
    insts = [make_instance(seq, state=s, next_fire_at=at(500), **kwargs) for s in S]
    await storage.instances.create(insts)
    return insts


@pytest.mark.parametrize("target", list(S))
async def test_bulk_update_state_moves_only_along_allowed_transitions(
    storage: Storage, target: InstanceState
) -> None:
    seq = await _sequence(storage)
    insts = await _one_of_each_state(storage, seq)
    moved = await storage.instances.bulk_update_state(InstanceFilter(), target, at(60))
    movable = [i for i in insts if target in ALLOWED_TRANSITIONS[i.state] and i.state != S.FAILED]
    assert moved == len(movable)
    for inst in insts:
        found = await _get(storage, inst)
        if inst in movable:
            fire = at(60) if target is S.SCHEDULED else inst.next_fire_at
            assert found == evolve(inst, state=target, next_fire_at=fire, updated_at=at(60))
        else:
            assert found == inst


async def test_bulk_update_state_keeps_to_its_filter(storage: Storage) -> None:
    acme = await _sequence(storage)
    acme_other = await _sequence(storage, namespace="billing")
    globex = await _sequence(storage, tenant_id="globex")
    a1 = await _one_of_each_state(storage, acme)
    a2 = await _one_of_each_state(storage, acme_other)
    g = await _one_of_each_state(storage, globex)
    flt = InstanceFilter(tenant_id="acme", namespace="default", states=(S.SCHEDULED, S.FAILED))
    assert await storage.instances.bulk_update_state(flt, S.CANCELLED, at(60)) == 1
    cancelled = [i for i in [*a1, *a2, *g] if (await _get(storage, i)).state != i.state]
    assert [(i.id, i.state) for i in cancelled] == [(a1[0].id, S.SCHEDULED)]
    by_sequence = InstanceFilter(sequence_id=acme_other.id)
    assert await storage.instances.bulk_update_state(by_sequence, S.PAUSED, at(61)) == 2
    assert [(await _get(storage, i)).state for i in a2[:4]] == [
        S.PAUSED,
        S.PAUSED,
        S.WAITING,
        S.PAUSED,
    ]


def test_movable_states_follow_the_lifecycle_without_failed() -> None:
    assert movable_to(S.SCHEDULED) == (S.RUNNING, S.WAITING, S.PAUSED)
    assert movable_to(S.CANCELLED, (S.PAUSED, S.COMPLETED)) == (S.PAUSED,)
    assert movable_to(S.RUNNING, (S.FAILED,)) == ()


# bulk_reschedule -------------------------------------------------------------


async def test_bulk_reschedule_shifts_scheduled_and_paused(storage: Storage) -> None:
    seq = await _sequence(storage)
    insts = await _one_of_each_state(storage, seq)
    unset = make_instance(seq, state=S.SCHEDULED, next_fire_at=None)
    await storage.instances.create([unset])
    assert await storage.instances.bulk_reschedule(InstanceFilter(), 3600, at(60)) == 3
    for inst in insts:
        found = await _get(storage, inst)
        if inst.state in (S.SCHEDULED, S.PAUSED):
            assert found == evolve(inst, next_fire_at=at(500 + 3600), updated_at=at(60))
        else:
            assert found == inst
    assert await _get(storage, unset) == evolve(unset, next_fire_at=at(3660), updated_at=at(60))
    only_paused = InstanceFilter(states=(S.PAUSED, S.RUNNING))
    assert await storage.instances.bulk_reschedule(only_paused, -100, at(70)) == 1
    assert (await _get(storage, insts[3])).next_fire_at == at(500 + 3600 - 100)


async def test_bulk_reschedule_clamps_into_the_storable_range(storage: Storage) -> None:
    seq = await _sequence(storage)
    late, early = (make_instance(seq, next_fire_at=at(0)) for _ in range(2))
    await storage.instances.create([late, early])
    years = 365 * 24 * 3600
    flt = InstanceFilter(sequence_id=seq.id)
    await storage.instances.bulk_reschedule(flt, 9000 * years, at(1))
    assert (await _get(storage, late)).next_fire_at == LATEST_FIRE
    await storage.instances.bulk_reschedule(flt, -(2**62), at(2))
    assert (await _get(storage, early)).next_fire_at == EARLIEST_FIRE


# concurrency caps at claim ---------------------------------------------------


async def test_claim_takes_no_more_than_the_cap(storage: Storage) -> None:
    seq = await _sequence(storage)
    clock = itertools.count()
    capped = [
        make_instance(
            seq,
            next_fire_at=at(0),
            created_at=at(next(clock)),
            concurrency_key="user-1",
            max_concurrency=2,
        )
        for _ in range(5)
    ]
    free = [make_instance(seq, next_fire_at=at(0), created_at=at(next(clock))) for _ in range(2)]
    await storage.instances.create([*capped, *free])
    claimed = await storage.instances.claim_due(at(1), 10)
    assert [i.id for i in claimed] == [i.id for i in [*capped[:2], *free]]
    for inst in capped[2:]:
        assert await _get(storage, inst) == evolve(inst, next_fire_at=at(1) + CAP_DEFERRAL)
    # Nothing runs out of turn: still capped a moment later, free once a slot frees.
    assert await storage.instances.claim_due(at(1) + CAP_DEFERRAL, 10) == []
    await storage.instances.update_state(claimed[0].id, S.RUNNING, S.COMPLETED, None, at(2))
    [next_one] = await storage.instances.claim_due(at(3), 10)
    assert next_one.id == capped[2].id


async def test_claim_respects_the_running_count_and_priority(storage: Storage) -> None:
    seq = await _sequence(storage)
    key: dict[str, Any] = {"concurrency_key": "k", "max_concurrency": 2}
    already = make_instance(seq, state=S.RUNNING, **key)
    low = make_instance(seq, next_fire_at=at(0), priority=Priority.LOW, **key)
    high = make_instance(seq, next_fire_at=at(5), priority=Priority.HIGH, **key)
    other_key = make_instance(seq, next_fire_at=at(0), concurrency_key="other", max_concurrency=1)
    only_key = make_instance(seq, next_fire_at=at(0), concurrency_key="k")  # no cap
    await storage.instances.create([already, low, high, other_key, only_key])
    claimed = await storage.instances.claim_due(at(10), 10)
    assert [i.id for i in claimed] == [high.id, other_key.id, only_key.id]
    assert (await _get(storage, low)).state is S.SCHEDULED


async def test_concurrent_claimers_never_exceed_a_cap(storage: Storage) -> None:
    seq = await _sequence(storage)
    caps = {"a": 1, "b": 3, "c": 5}
    insts = [
        make_instance(seq, next_fire_at=at(0), concurrency_key=key, max_concurrency=cap)
        for key, cap in caps.items()
        for _ in range(12)
    ]
    insts += [make_instance(seq, next_fire_at=at(0)) for _ in range(10)]
    await storage.instances.create(insts)
    done = 0
    seen: set[str] = set()
    for round_ in range(12):
        now = at(100 * (round_ + 1))
        batches = await asyncio.gather(*(storage.instances.claim_due(now, 7) for _ in range(4)))
        claimed = [i for batch in batches for i in batch]
        assert len({i.id for i in claimed}) == len(claimed)
        assert not seen.intersection(i.id for i in claimed)
        seen.update(i.id for i in claimed)
        running = await storage.instances.query(InstanceFilter(states=(S.RUNNING,)), Page(0, 100))
        for key, cap in caps.items():
            assert sum(i.concurrency_key == key for i in running) <= cap, (round_, key)
        # Half of what runs finishes before the next round.
        for inst in running[::2]:
            await storage.instances.update_state(inst.id, S.RUNNING, S.COMPLETED, None, now)
            done += 1
    assert done > len(caps)
