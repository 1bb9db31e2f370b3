"""SnapshotStore and OutputStore contracts, run against every backend."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from orch8.application.errors import StaleWrite
from orch8.application.ports.storage import Storage
from orch8.domain.instance import Instance, InstanceState
from orch8.domain.tree import Node, NodeState
from tests.contract.builders import (
    at,
    full_node,
    make_context,
    make_instance,
    make_node,
    make_output,
    make_sequence,
    make_write,
)

S = InstanceState


async def _running(storage: Storage, count: int = 1, **kwargs: object) -> list[Instance]:
    seq = make_sequence()
    await storage.sequences.create(seq)
    insts = [
        make_instance(seq, state=S.RUNNING, context=make_context(step=0), **kwargs)  # type: ignore[arg-type]
        for _ in range(count)
    ]
    await storage.instances.create(insts)
    return insts


def _by_block(nodes: list[Node]) -> dict[str, Node]:
    return {n.block_id: n for n in nodes}


async def test_load_unknown_is_none(storage: Storage) -> None:
    assert await storage.snapshots.load("nope") is None


async def test_load_fresh_instance_has_no_nodes(storage: Storage) -> None:
    [inst] = await _running(storage)
    assert await storage.snapshots.load(inst.id) == (inst, [])


async def test_commit_round_trips_context_nodes_and_outputs(storage: Storage) -> None:
    [inst] = await _running(storage)
    ctx = make_context(name="Ada", step=1, nested={"list": [1, 2.5, "x", None, False]})
    full = full_node("greet", at(10))
    bare = make_node("done")  # every optional field None / default
    outputs = (
        make_output(inst.id, "greet", output={"sent": True}, created_at=at(10)),
        make_output(
            inst.id,
            "greet",
            output="boom",
            attempt=2,
            created_at=at(11),
            output_ref="__error__",
            output_size=4,
        ),
        make_output(inst.id, "done", output=[1, 2], created_at=at(12), output_ref="s3://x"),
    )
    write = make_write(
        inst,
        state=S.SCHEDULED,
        next_fire_at=at(3600),
        updated_at=at(13),
        context=ctx,
        nodes=(full, bare),
        outputs=outputs,
    )
    await storage.snapshots.commit(write)

    loaded = await storage.snapshots.load(inst.id)
    assert loaded is not None
    instance, nodes = loaded
    assert instance.state is S.SCHEDULED
    assert instance.next_fire_at == at(3600)
    assert instance.updated_at == at(13)
    assert instance.context == ctx
    assert instance.created_at == inst.created_at
    assert instance.metadata == inst.metadata
    assert _by_block(nodes) == {"greet": full, "done": bare}
    assert await storage.outputs.list_for_instance(inst.id) == list(outputs)
    assert await storage.instances.get(inst.id) == instance


async def test_commit_without_context_keeps_the_stored_one(storage: Storage) -> None:
    [inst] = await _running(storage)
    await storage.snapshots.commit(make_write(inst, state=S.WAITING, context=None))
    loaded = await storage.snapshots.load(inst.id)
    assert loaded is not None
    assert loaded[0].context == inst.context
    assert loaded[0].state is S.WAITING


async def test_commit_upserts_nodes_by_block_id(storage: Storage) -> None:
    [inst] = await _running(storage)
    first = make_node("greet", state=NodeState.RUNNING, attempts=1, started_at=at(1))
    other = make_node("done")
    await storage.snapshots.commit(
        make_write(inst, state=S.RUNNING, nodes=(first, other), updated_at=at(1))
    )
    second = full_node("greet", at(2))
    await storage.snapshots.commit(make_write(inst, state=S.COMPLETED, nodes=(second,)))
    loaded = await storage.snapshots.load(inst.id)
    assert loaded is not None
    assert _by_block(loaded[1]) == {"greet": second, "done": other}


async def test_stale_write_raises_and_writes_nothing(storage: Storage) -> None:
    [inst] = await _running(storage)
    write = make_write(
        inst,
        expected_state=S.WAITING,
        state=S.COMPLETED,
        next_fire_at=at(99),
        context=make_context(name="overwritten"),
        nodes=(full_node("greet", at(5)),),
        outputs=(make_output(inst.id),),
    )
    with pytest.raises(StaleWrite):
        await storage.snapshots.commit(write)
    assert await storage.snapshots.load(inst.id) == (inst, [])
    assert await storage.outputs.list_for_instance(inst.id) == []


async def test_commit_to_unknown_instance_is_stale(storage: Storage) -> None:
    [inst] = await _running(storage)
    ghost = make_instance(make_sequence(), id="ghost", state=S.RUNNING)
    with pytest.raises(StaleWrite):
        await storage.snapshots.commit(make_write(ghost))
    assert await storage.snapshots.load(inst.id) == (inst, [])


async def test_guard_follows_each_committed_transition(storage: Storage) -> None:
    [inst] = await _running(storage)
    commit = storage.snapshots.commit
    await commit(make_write(inst, expected_state=S.RUNNING, state=S.WAITING))
    with pytest.raises(StaleWrite):
        await commit(make_write(inst, expected_state=S.RUNNING, state=S.COMPLETED))
    await commit(make_write(inst, expected_state=S.WAITING, state=S.RUNNING))
    await commit(make_write(inst, expected_state=S.RUNNING, state=S.COMPLETED))
    found = await storage.instances.get(inst.id)
    assert found is not None
    assert found.state is S.COMPLETED


async def test_many_concurrent_commits_all_apply(storage: Storage) -> None:
    insts = await _running(storage, 200)
    writes = [
        make_write(
            inst,
            state=S.COMPLETED,
            updated_at=at(n),
            context=make_context(n=n),
            nodes=(make_node("greet", state=NodeState.COMPLETED, attempts=1),),
            outputs=(make_output(inst.id, output={"n": n}),),
        )
        for n, inst in enumerate(insts)
    ]
    await asyncio.gather(*(storage.snapshots.commit(w) for w in writes))
    for n, inst in enumerate(insts):
        loaded = await storage.snapshots.load(inst.id)
        assert loaded is not None
        assert loaded[0].state is S.COMPLETED
        assert loaded[0].context == make_context(n=n)
        assert [node.state for node in loaded[1]] == [NodeState.COMPLETED]
        [out] = await storage.outputs.list_for_instance(inst.id)
        assert out.output == {"n": n}


async def test_concurrent_commits_fail_only_the_stale_ones(storage: Storage) -> None:
    insts = await _running(storage, 40)
    writes = [
        make_write(
            inst,
            expected_state=S.RUNNING if n % 3 else S.WAITING,
            outputs=(make_output(inst.id),),
        )
        for n, inst in enumerate(insts)
    ]
    results = await asyncio.gather(
        *(storage.snapshots.commit(w) for w in writes), return_exceptions=True
    )
    for n, (inst, result) in enumerate(zip(insts, results, strict=True)):
        found = await storage.instances.get(inst.id)
        assert found is not None
        outputs = await storage.outputs.list_for_instance(inst.id)
        if n % 3:
            assert result is None
            assert (found.state, len(outputs)) == (S.COMPLETED, 1)
        else:
            assert isinstance(result, StaleWrite)
            assert (found, outputs) == (inst, [])


async def test_concurrent_commits_to_one_instance_apply_in_call_order(storage: Storage) -> None:
    [inst] = await _running(storage)
    chain = [S.RUNNING, S.WAITING, S.RUNNING, S.SCHEDULED]
    writes = [
        make_write(inst, expected_state=old, state=new, updated_at=at(i))
        for i, (old, new) in enumerate(itertools.pairwise(chain))
    ]
    await asyncio.gather(*(storage.snapshots.commit(w) for w in writes))
    found = await storage.instances.get(inst.id)
    assert found is not None
    assert (found.state, found.updated_at) == (S.SCHEDULED, at(2))


async def test_outputs_are_listed_oldest_first(storage: Storage) -> None:
    [inst, other] = await _running(storage, 2)
    outs = [make_output(inst.id, f"b{n}", created_at=at(n)) for n in range(6)]
    await storage.snapshots.commit(
        make_write(inst, state=S.RUNNING, outputs=(outs[0], outs[1]), updated_at=at(1))
    )
    await storage.snapshots.commit(make_write(other, outputs=(make_output(other.id),)))
    await storage.snapshots.commit(
        make_write(inst, state=S.RUNNING, outputs=(outs[2],), updated_at=at(2))
    )
    await storage.snapshots.commit(make_write(inst, outputs=tuple(outs[3:]), updated_at=at(6)))
    assert await storage.outputs.list_for_instance(inst.id) == outs
    assert len(await storage.outputs.list_for_instance(other.id)) == 1


async def test_outputs_of_unknown_instance_are_empty(storage: Storage) -> None:
    assert await storage.outputs.list_for_instance("nope") == []
