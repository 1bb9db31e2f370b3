"""The worker-task reaper (alone and as an engine loop), the TaskBell, and the output
checks of the worker use case."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from orch8.adapters.memory import MemoryStorage
from orch8.application.engine.reaper import WorkerReaper
from orch8.application.engine.service import EngineConfig
from orch8.application.engine.task_bell import TaskBell
from orch8.application.handlers import BUILTIN_HANDLERS, HandlerRegistry
from orch8.application.ports.storage import SnapshotWrite
from orch8.application.use_cases.workers import OutputTooLarge, WorkerService, output_size
from orch8.bootstrap.engine import build_engine
from orch8.domain.errors import ValidationError
from orch8.domain.instance import Instance, InstanceState
from orch8.domain.task_claims import TIMED_OUT
from orch8.domain.tasks import TaskState, WorkerTask
from tests.contract.builders import make_instance, make_sequence
from tests.unit.fakes import CountingIds, FakeClock

S = InstanceState


async def _waiting_on(storage: MemoryStorage, clock: FakeClock, **task: Any) -> WorkerTask:
    seq = make_sequence(f"seq-{task.get('block_id', 'a')}")
    await storage.sequences.create(seq)
    inst: Instance = make_instance(seq, state=S.RUNNING)
    await storage.instances.create([inst])
    made = WorkerTask(
        id=f"task-{task.pop('block_id', 'a')}",
        instance_id=inst.id,
        tenant_id=inst.tenant_id,
        block_id="charge",
        handler_name=task.pop("handler", "email"),
        attempt=1,
        created_at=clock.now(),
        **task,
    )
    write = SnapshotWrite(inst.id, S.RUNNING, S.WAITING, None, clock.now(), tasks=(made,))
    await storage.snapshots.commit(write)
    return made


async def test_a_sweep_reaps_stale_claims_and_fails_overdue_tasks() -> None:
    storage, clock, bell = MemoryStorage(), FakeClock(), TaskBell()
    stale = await _waiting_on(storage, clock, block_id="stale")
    overdue = await _waiting_on(
        storage, clock, block_id="overdue", handler="sms", timeout_ms=45_000
    )
    await storage.tasks.poll("email", "w1", 1, clock.now())
    woken: list[int] = []
    reaper = WorkerReaper(
        storage.tasks, clock, stale_s=60, on_woken=lambda: woken.append(1), bell=bell
    )
    clock.advance(seconds=30)
    assert await reaper.sweep() == (0, 0)
    with bell.arm("email") as ticket:  # a long-poll waiting for "email"
        clock.advance(seconds=31)
        assert await reaper.sweep() == (1, 1)
        assert ticket.rung  # reaped tasks are work again
    back = await storage.tasks.get(stale.id)
    assert back is not None and (back.state, back.worker_id) == (TaskState.PENDING, None)
    failed = await storage.tasks.get(overdue.id)
    assert failed is not None
    assert (failed.state, failed.error_message) == (TaskState.FAILED, TIMED_OUT)
    assert woken == [1]  # the engine was nudged for the woken instance
    inst = await storage.instances.get(overdue.instance_id)
    assert inst is not None and inst.state is S.SCHEDULED


async def test_the_engine_runs_the_reaper_every_tick() -> None:
    storage, clock = MemoryStorage(), FakeClock()
    task = await _waiting_on(storage, clock)
    await storage.tasks.poll("email", "w1", 1, clock.now() - timedelta(seconds=5))
    config = EngineConfig(tick_interval_s=60, worker_reaper_tick_s=0.02, worker_reaper_stale_s=1.0)
    engine = build_engine(storage, HandlerRegistry(BUILTIN_HANDLERS), clock, CountingIds(), config)
    await engine.start()
    try:
        async with asyncio.timeout(5):
            while (
                found := await storage.tasks.get(task.id)
            ) and found.state is not TaskState.PENDING:
                await asyncio.sleep(0.01)
    finally:
        await engine.stop()


async def test_the_bell_wakes_only_waiters_armed_before_the_ring() -> None:
    bell = TaskBell()
    bell.ring("email")  # nobody waits: nothing is remembered
    assert await bell.wait("email", 0.01) is False
    waiter = asyncio.create_task(bell.wait("email", 5))
    await asyncio.sleep(0)
    assert bell.waiting() == 1
    bell.ring("sms")
    await asyncio.sleep(0.01)
    assert not waiter.done()
    bell.ring("email")
    assert await waiter is True
    assert bell.waiting() == 0
    bell.close()
    assert await asyncio.wait_for(bell.wait("email", 5), 1) is True


@pytest.mark.parametrize(
    ("output", "size"),
    [(None, 4), ("é", 4), ({"a": [1, 2]}, 11), ([], 2)],
)
def test_output_size_is_compact_utf8_json(output: Any, size: int) -> None:
    assert output_size(output) == size


@pytest.mark.parametrize("output", [float("nan"), {"x": float("inf")}, {1, 2}, {"k": "a\x00"}])
def test_output_that_is_not_storable_json_is_refused(output: Any) -> None:
    with pytest.raises(ValidationError, match="output"):
        output_size(output)


async def test_the_output_limit_is_configurable() -> None:
    storage, clock = MemoryStorage(), FakeClock()
    task = await _waiting_on(storage, clock)
    await storage.tasks.poll("email", "w1", 1, clock.now())
    service = WorkerService(storage.tasks, clock, TaskBell(), max_output_bytes=10)
    with pytest.raises(OutputTooLarge) as caught:
        await service.complete(task.id, "w1", 1, "x" * 9, caller=None)
    assert (caught.value.size, caught.value.limit) == (11, 10)
    done = await service.complete(task.id, "w1", 1, "x" * 8, caller=None)
    assert done.state is TaskState.COMPLETED
