"""What composite blocks and sub_sequence children need from storage, run against
every backend: the node fields that hold composite progress, children inserted
with the write that waits for them, waking a parent, the newest output per
block, and the sweep that wakes parents whose child has finished."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from attrs import evolve

from orch8.application.errors import Conflict, StaleWrite
from orch8.application.ports.storage import SnapshotWrite, Storage
from orch8.domain.instance import Instance, InstanceState
from orch8.domain.outputs import ERROR_REF
from orch8.domain.sequence import Sequence
from orch8.domain.tree import Node, NodeState
from tests.contract.builders import (
    at,
    make_context,
    make_instance,
    make_node,
    make_output,
    make_sequence,
    make_write,
)

S = InstanceState


async def _sequence(storage: Storage) -> Sequence:
    seq = make_sequence()
    await storage.sequences.create(seq)
    return seq


async def _instance(storage: Storage, seq: Sequence, **fields: object) -> Instance:
    inst = make_instance(seq, **fields)  # type: ignore[arg-type]
    await storage.instances.create([inst])
    return inst


async def _get(storage: Storage, instance_id: str) -> Instance:
    found = await storage.instances.get(instance_id)
    assert found is not None, instance_id
    return found


async def _with_nodes(storage: Storage, inst: Instance, *nodes: Node) -> Instance:
    """Store `nodes` for `inst` without changing its state; the instance as stored."""
    await storage.snapshots.commit(
        make_write(inst, expected_state=inst.state, state=inst.state, updated_at=at(1), nodes=nodes)
    )
    return await _get(storage, inst.id)


def _waiting_on(
    child_id: str | None, block_id: str = "sub", state: NodeState = NodeState.WAITING
) -> Node:
    return make_node(block_id, block_type="sub_sequence", state=state, ref=child_id)


def _write(inst: Instance, **fields: object) -> SnapshotWrite:
    return SnapshotWrite(
        **{  # type: ignore[arg-type]
            "instance_id": inst.id,
            "expected_state": S.RUNNING,
            "state": S.WAITING,
            "next_fire_at": None,
            "updated_at": at(60),
            **fields,
        }
    )


# -- node fields ---------------------------------------------------------------------------


async def test_composite_node_fields_round_trip(storage: Storage) -> None:
    seq = await _sequence(storage)
    inst = await _instance(storage, seq, state=S.RUNNING)
    loop = make_node(
        "loop", block_type="loop", state=NodeState.RUNNING, iteration=7, branch=2, ref="child-1"
    )
    plain = make_node("plain")  # iteration 0, branch and ref None
    large = make_node("large", iteration=2**40, branch=-1, ref="ünïcode ☃ ref")
    # A step holding a rate-limit place, to the microsecond.
    held = make_node("held", attempts=2, reserved_at=at(90.123456))
    nodes = (loop, plain, large, held)
    await storage.snapshots.commit(make_write(inst, state=S.RUNNING, nodes=nodes))
    loaded = await storage.snapshots.load(inst.id)
    assert loaded is not None
    assert {n.block_id: n for n in loaded[1]} == {n.block_id: n for n in nodes}


async def test_rewriting_a_node_replaces_its_composite_fields(storage: Storage) -> None:
    seq = await _sequence(storage)
    inst = await _instance(storage, seq, state=S.RUNNING)
    first = make_node("loop", block_type="loop", iteration=1, branch=0, ref="child-1")
    await storage.snapshots.commit(make_write(inst, state=S.RUNNING, nodes=(first,)))
    first = evolve(first, reserved_at=at(3))
    second = evolve(first, iteration=2, branch=None, ref=None, reserved_at=None)
    await storage.snapshots.commit(make_write(inst, state=S.RUNNING, nodes=(second,)))
    loaded = await storage.snapshots.load(inst.id)
    assert loaded is not None
    assert loaded[1] == [second]


# -- children --------------------------------------------------------------------------------


async def test_children_are_inserted_with_the_write_that_waits_for_them(storage: Storage) -> None:
    seq = await _sequence(storage)
    parent = await _instance(storage, seq, state=S.RUNNING)
    children = (
        make_instance(seq, parent_instance_id=parent.id, next_fire_at=at(60), created_at=at(60)),
        make_instance(seq, parent_instance_id=parent.id, created_at=at(60), idempotency_key="k"),
    )
    nodes = (_waiting_on(children[0].id, "sub-a"), _waiting_on(children[1].id, "sub-b"))
    await storage.snapshots.commit(_write(parent, nodes=nodes, children=children))
    for child in children:
        assert await storage.instances.get(child.id) == child
        assert await storage.snapshots.load(child.id) == (child, [])
    loaded = await storage.snapshots.load(parent.id)
    assert loaded is not None
    assert loaded[0].state is S.WAITING
    assert loaded[1] == list(nodes)


async def test_children_are_not_inserted_when_the_guard_fails(storage: Storage) -> None:
    seq = await _sequence(storage)
    parent = await _instance(storage, seq, state=S.SCHEDULED)
    child = make_instance(seq, parent_instance_id=parent.id)
    with pytest.raises(StaleWrite):
        await storage.snapshots.commit(
            _write(parent, nodes=(_waiting_on(child.id),), children=(child,))
        )
    assert await storage.instances.get(child.id) is None
    assert await storage.snapshots.load(parent.id) == (parent, [])


async def test_a_stale_write_beats_a_duplicate_child(storage: Storage) -> None:
    """The guard is checked first: a stale write is StaleWrite even if its child clashes."""
    seq = await _sequence(storage)
    parent = await _instance(storage, seq, state=S.SCHEDULED)
    dup = make_instance(seq, id=parent.id)
    with pytest.raises(StaleWrite):
        await storage.snapshots.commit(_write(parent, children=(dup,)))


@pytest.mark.parametrize("clash", ["existing id", "repeated id", "idempotency key", "sequence"])
async def test_a_clashing_child_conflicts_and_nothing_of_the_write_is_stored(
    storage: Storage, clash: str
) -> None:
    seq = await _sequence(storage)
    other = await _instance(storage, seq, idempotency_key="taken")
    parent = await _instance(storage, seq, state=S.RUNNING, context=make_context(step=0))
    fresh = make_instance(seq, parent_instance_id=parent.id)
    bad = {
        "existing id": make_instance(seq, id=other.id),
        "repeated id": make_instance(seq, id=fresh.id),
        "idempotency key": make_instance(seq, idempotency_key="taken"),
        "sequence": make_instance(make_sequence()),
    }[clash]
    write = _write(
        parent,
        context=make_context(step=1),
        nodes=(_waiting_on(fresh.id), make_node("greet", state=NodeState.COMPLETED)),
        outputs=(make_output(parent.id),),
        children=(fresh, bad),
        wake_parent=other.id,
    )
    with pytest.raises(Conflict):
        await storage.snapshots.commit(write)
    assert await storage.snapshots.load(parent.id) == (parent, [])
    assert await storage.outputs.list_for_instance(parent.id) == []
    assert await storage.instances.get(fresh.id) is None
    if clash != "existing id":
        assert await storage.instances.get(bad.id) is None
    assert await storage.instances.get(other.id) == other


async def test_a_conflicting_write_leaves_the_others_of_its_group_applied(
    storage: Storage,
) -> None:
    seq = await _sequence(storage)
    taken = await _instance(storage, seq)
    a, b, c = [await _instance(storage, seq, state=S.RUNNING) for _ in range(3)]
    child = make_instance(seq, parent_instance_id=c.id)
    results = await asyncio.gather(
        storage.snapshots.commit(make_write(a)),
        storage.snapshots.commit(_write(b, children=(make_instance(seq, id=taken.id),))),
        storage.snapshots.commit(_write(c, children=(child,))),
        return_exceptions=True,
    )
    assert results[0] is None
    assert isinstance(results[1], Conflict)
    assert results[2] is None
    assert (await _get(storage, a.id)).state is S.COMPLETED
    assert await _get(storage, b.id) == b
    assert (await _get(storage, c.id)).state is S.WAITING
    assert await storage.instances.get(child.id) == child


async def test_a_later_write_of_the_same_group_sees_the_children(storage: Storage) -> None:
    seq = await _sequence(storage)
    parent = await _instance(storage, seq, state=S.RUNNING)
    child = make_instance(seq, state=S.RUNNING, parent_instance_id=parent.id)
    results = await asyncio.gather(
        storage.snapshots.commit(_write(parent, children=(child,))),
        storage.snapshots.commit(make_write(child, state=S.COMPLETED, updated_at=at(61))),
        storage.snapshots.commit(make_write(parent, expected_state=S.WAITING, state=S.RUNNING)),
        return_exceptions=True,
    )
    assert list(results) == [None, None, None]
    assert (await _get(storage, child.id)).state is S.COMPLETED
    assert (await _get(storage, parent.id)).state is S.RUNNING


# -- wake_parent -----------------------------------------------------------------------------

WOKEN_AT = at(60)


@pytest.mark.parametrize(
    ("state", "fire", "expected_fire"),
    [
        (S.WAITING, None, WOKEN_AT),
        (S.WAITING, at(3600), WOKEN_AT),
        (S.WAITING, at(10), at(10)),
        (S.SCHEDULED, at(3600), WOKEN_AT),
        (S.SCHEDULED, at(10), at(10)),
        (S.SCHEDULED, None, WOKEN_AT),
    ],
    ids=[
        "waiting",
        "waiting-later",
        "waiting-earlier",
        "scheduled-later",
        "scheduled-earlier",
        "scheduled-unset",
    ],
)
async def test_wake_parent_makes_a_waiting_or_scheduled_parent_due(
    storage: Storage, state: InstanceState, fire: datetime | None, expected_fire: datetime
) -> None:
    seq = await _sequence(storage)
    parent = await _instance(storage, seq, state=state, next_fire_at=fire)
    child = await _instance(storage, seq, state=S.RUNNING, parent_instance_id=parent.id)
    await storage.snapshots.commit(_write(child, state=S.COMPLETED, wake_parent=parent.id))
    assert await _get(storage, parent.id) == evolve(
        parent, state=S.SCHEDULED, next_fire_at=expected_fire, updated_at=WOKEN_AT
    )
    assert (await _get(storage, child.id)).state is S.COMPLETED


@pytest.mark.parametrize("state", [S.RUNNING, S.PAUSED, S.COMPLETED, S.FAILED, S.CANCELLED])
async def test_wake_parent_leaves_other_states_alone(
    storage: Storage, state: InstanceState
) -> None:
    seq = await _sequence(storage)
    parent = await _instance(storage, seq, state=state, next_fire_at=at(3600))
    child = await _instance(storage, seq, state=S.RUNNING, parent_instance_id=parent.id)
    await storage.snapshots.commit(_write(child, state=S.COMPLETED, wake_parent=parent.id))
    assert await _get(storage, parent.id) == parent
    assert (await _get(storage, child.id)).state is S.COMPLETED


async def test_wake_parent_of_a_stale_write_wakes_nobody(storage: Storage) -> None:
    seq = await _sequence(storage)
    parent = await _instance(storage, seq, state=S.WAITING, next_fire_at=at(3600))
    child = await _instance(storage, seq, state=S.SCHEDULED, parent_instance_id=parent.id)
    with pytest.raises(StaleWrite):
        await storage.snapshots.commit(_write(child, state=S.COMPLETED, wake_parent=parent.id))
    assert await _get(storage, parent.id) == parent
    assert await _get(storage, child.id) == child


async def test_wake_parent_of_an_unknown_instance_is_no_error(storage: Storage) -> None:
    seq = await _sequence(storage)
    child = await _instance(storage, seq, state=S.RUNNING)
    await storage.snapshots.commit(_write(child, state=S.COMPLETED, wake_parent="gone"))
    assert (await _get(storage, child.id)).state is S.COMPLETED


async def test_wake_parent_applies_in_call_order_within_a_group(storage: Storage) -> None:
    """Parent goes to wait, then its child ends: woken. Child ends first (the parent
    still running, so not woken), then the parent goes to wait: it stays waiting."""
    seq = await _sequence(storage)
    woken = await _instance(storage, seq, state=S.RUNNING)
    early = await _instance(storage, seq, state=S.RUNNING)
    kids = [
        await _instance(storage, seq, state=S.RUNNING, parent_instance_id=p.id)
        for p in (woken, early)
    ]
    await asyncio.gather(
        storage.snapshots.commit(_write(woken, next_fire_at=at(3600), updated_at=at(50))),
        storage.snapshots.commit(_write(kids[0], state=S.COMPLETED, wake_parent=woken.id)),
        storage.snapshots.commit(_write(kids[1], state=S.COMPLETED, wake_parent=early.id)),
        storage.snapshots.commit(_write(early, next_fire_at=at(3600), updated_at=at(70))),
    )
    assert await _get(storage, woken.id) == evolve(
        woken, state=S.SCHEDULED, next_fire_at=WOKEN_AT, updated_at=WOKEN_AT
    )
    assert await _get(storage, early.id) == evolve(
        early, state=S.WAITING, next_fire_at=at(3600), updated_at=at(70)
    )


async def test_many_children_waking_one_parent_together(storage: Storage) -> None:
    seq = await _sequence(storage)
    parent = await _instance(storage, seq, state=S.WAITING, next_fire_at=at(3600))
    kids = [
        await _instance(storage, seq, state=S.RUNNING, parent_instance_id=parent.id)
        for _ in range(6)
    ]
    await asyncio.gather(
        *(
            storage.snapshots.commit(
                _write(kid, state=S.COMPLETED, updated_at=at(60 + n), wake_parent=parent.id)
            )
            for n, kid in enumerate(kids)
        )
    )
    assert await _get(storage, parent.id) == evolve(
        parent, state=S.SCHEDULED, next_fire_at=at(60), updated_at=at(65)
    )


async def test_a_write_waking_its_own_instance(storage: Storage) -> None:
    seq = await _sequence(storage)
    inst = await _instance(storage, seq, state=S.RUNNING)
    await storage.snapshots.commit(_write(inst, next_fire_at=at(3600), wake_parent=inst.id))
    assert await _get(storage, inst.id) == evolve(
        inst, state=S.SCHEDULED, next_fire_at=WOKEN_AT, updated_at=WOKEN_AT
    )


async def test_a_write_waking_a_child_it_inserts(storage: Storage) -> None:
    seq = await _sequence(storage)
    parent = await _instance(storage, seq, state=S.RUNNING)
    child = make_instance(seq, state=S.WAITING, next_fire_at=at(3600), created_at=at(60))
    await storage.snapshots.commit(_write(parent, children=(child,), wake_parent=child.id))
    assert await _get(storage, child.id) == evolve(
        child, state=S.SCHEDULED, next_fire_at=WOKEN_AT, updated_at=WOKEN_AT
    )


# -- latest outputs --------------------------------------------------------------------------


async def test_latest_gives_the_newest_successful_output_of_each_named_block(
    storage: Storage,
) -> None:
    seq = await _sequence(storage)
    inst = await _instance(storage, seq, state=S.RUNNING)
    other = await _instance(storage, seq, state=S.RUNNING)
    a_old = make_output(inst.id, "a", output=1, created_at=at(1))
    a_new = make_output(inst.id, "a", output=2, created_at=at(5))
    a_error = make_output(inst.id, "a", output="boom", created_at=at(9), output_ref=ERROR_REF)
    b_error = make_output(inst.id, "b", output="boom", created_at=at(2), output_ref=ERROR_REF)
    c_only = make_output(inst.id, "c", output={"x": [1]}, created_at=at(3))
    c_ref = make_output(inst.id, "c", output=None, created_at=at(8), output_ref="s3://big")
    d_unnamed = make_output(inst.id, "d", output=4, created_at=at(4))
    e_other = make_output(other.id, "e", output=5, created_at=at(4))
    # Written out of time order, over several commits: newest means created_at.
    await storage.snapshots.commit(make_write(inst, state=S.RUNNING, outputs=(a_new, b_error)))
    await storage.snapshots.commit(
        make_write(inst, state=S.RUNNING, outputs=(a_old, c_only, d_unnamed))
    )
    await storage.snapshots.commit(make_write(inst, state=S.RUNNING, outputs=(a_error, c_ref)))
    await storage.snapshots.commit(make_write(other, state=S.RUNNING, outputs=(e_other,)))
    assert await storage.outputs.latest(inst.id, ["a", "b", "c", "e", "missing"]) == {
        "a": a_new,
        "c": c_only,
    }
    assert await storage.outputs.latest(inst.id, ("d", "d")) == {"d": d_unnamed}
    assert await storage.outputs.latest(inst.id, []) == {}
    assert await storage.outputs.latest("no-such-instance", ["a"]) == {}


async def test_latest_breaks_equal_times_by_write_order(storage: Storage) -> None:
    seq = await _sequence(storage)
    inst = await _instance(storage, seq, state=S.RUNNING)
    first = make_output(inst.id, "a", output="first", created_at=at(5))
    second = make_output(inst.id, "a", output="second", created_at=at(5))
    third = make_output(inst.id, "a", output="third", created_at=at(5))
    await storage.snapshots.commit(make_write(inst, state=S.RUNNING, outputs=(first, second)))
    assert await storage.outputs.latest(inst.id, ["a"]) == {"a": second}
    await storage.snapshots.commit(make_write(inst, state=S.RUNNING, outputs=(third,)))
    assert await storage.outputs.latest(inst.id, ["a"]) == {"a": third}


# -- the sweep -------------------------------------------------------------------------------


async def test_sweep_wakes_only_waiting_parents_of_finished_children(storage: Storage) -> None:
    seq = await _sequence(storage)

    async def child(state: InstanceState) -> str:
        return (await _instance(storage, seq, state=state)).id

    async def parent(state: InstanceState, *nodes: Node) -> Instance:
        inst = await _instance(storage, seq, state=state, next_fire_at=at(3600))
        return await _with_nodes(storage, inst, *nodes)

    completed, failed, cancelled = (
        await child(S.COMPLETED),
        await child(S.FAILED),
        await child(S.CANCELLED),
    )
    woken = [
        await parent(S.WAITING, _waiting_on(completed)),
        await parent(S.WAITING, _waiting_on(failed, "a"), _waiting_on(cancelled, "b")),
        await parent(
            S.WAITING, _waiting_on(await child(S.RUNNING), "a"), _waiting_on(cancelled, "b")
        ),
    ]
    untouched = [
        await parent(S.WAITING, _waiting_on(await child(S.RUNNING))),
        await parent(S.WAITING, _waiting_on(await child(S.WAITING))),
        await parent(S.WAITING, _waiting_on(await child(S.PAUSED))),
        await parent(S.WAITING, _waiting_on(await child(S.SCHEDULED))),
        await parent(S.WAITING, _waiting_on(completed, state=NodeState.COMPLETED)),
        await parent(S.WAITING, _waiting_on(completed, state=NodeState.RUNNING)),
        await parent(S.WAITING, _waiting_on("no-such-child")),
        await parent(S.WAITING, _waiting_on(None)),
        await parent(S.WAITING),
        await parent(S.RUNNING, _waiting_on(completed)),
        await parent(S.SCHEDULED, _waiting_on(failed)),
        await parent(S.PAUSED, _waiting_on(cancelled)),
    ]
    assert await storage.instances.wake_parents_of_finished_children(at(100)) == len(woken)
    for inst in woken:
        assert await _get(storage, inst.id) == evolve(
            inst, state=S.SCHEDULED, next_fire_at=at(100), updated_at=at(100)
        )
    for inst in untouched:
        assert await _get(storage, inst.id) == inst
    assert await storage.instances.wake_parents_of_finished_children(at(200)) == 0


async def test_sweep_catches_a_parent_that_waited_after_its_child_ended(
    storage: Storage,
) -> None:
    """The race wake_parent alone cannot close: the child ends (parent still
    running, so not woken), then the parent commits `waiting`."""
    seq = await _sequence(storage)
    parent = await _instance(storage, seq, state=S.RUNNING)
    child = make_instance(seq, state=S.RUNNING, parent_instance_id=parent.id)
    await storage.snapshots.commit(
        _write(parent, state=S.RUNNING, nodes=(_waiting_on(child.id),), children=(child,))
    )
    await storage.snapshots.commit(_write(child, state=S.COMPLETED, wake_parent=parent.id))
    assert (await _get(storage, parent.id)).state is S.RUNNING
    await storage.snapshots.commit(_write(parent, state=S.WAITING, updated_at=at(70)))
    assert await storage.instances.wake_parents_of_finished_children(at(80)) == 1
    claimed = await storage.instances.claim_due(at(80), 10)
    assert [inst.id for inst in claimed] == [parent.id]
