"""Long-polls: a waiting poll returns as soon as a task appears, in this process (the
TaskBell the engine rings) and across processes sharing PostgreSQL (LISTEN/NOTIFY).

The latency is measured from the start of the commit that creates the task to
the poll's return, over ROUNDS rounds; p50/p99 are printed (`pytest -s`).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from orch8.adapters.memory import MemoryStorage
from orch8.adapters.postgres import PostgresStorage
from orch8.adapters.sqlite import SqliteStorage
from orch8.adapters.system import SystemClock
from orch8.application.engine.task_bell import TaskBell
from orch8.application.ports.storage import SnapshotWrite, Storage
from orch8.application.use_cases.workers import WorkerService
from orch8.domain.instance import InstanceState
from orch8.domain.tasks import WorkerTask
from tests.contract.builders import make_instance, make_sequence, new_id, now
from tests.pg_server import fresh_schema

ROUNDS = 20
WAIT_MS = 10_000
TARGET_S = 0.050
# Far beyond any test: a poll that returns was woken, never re-checked on a timer.
NO_RECHECK_S = 3600.0

S = InstanceState
CreateTask = Callable[[str], Awaitable[None]]


async def _task_creator(storage: Storage) -> Callable[[str, TaskBell | None], Awaitable[None]]:
    """Makes tasks the way the engine does: a snapshot write parks a running instance
    and inserts its task; then (in-process only) the bell is rung."""
    seq = make_sequence(new_id("seq"))
    await storage.sequences.create(seq)

    async def create(handler: str, bell: TaskBell | None) -> None:
        inst = make_instance(seq, state=S.RUNNING)
        await storage.instances.create([inst])
        task = WorkerTask(
            id=new_id("task"),
            instance_id=inst.id,
            tenant_id=inst.tenant_id,
            block_id="charge",
            handler_name=handler,
            attempt=1,
            created_at=now(),
        )
        write = SnapshotWrite(
            instance_id=inst.id,
            expected_state=S.RUNNING,
            state=S.WAITING,
            next_fire_at=None,
            updated_at=now(),
            tasks=(task,),
        )
        await storage.snapshots.commit(write)
        if bell is not None:
            bell.ring(handler)

    return create


def _report(label: str, latencies: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    print(
        f"\nlong-poll wake-up ({label}, {len(ordered)} rounds): "
        f"p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms"
    )
    return p50, p99


async def _measure(service: WorkerService, create: CreateTask, handler: str) -> list[float]:
    latencies = []
    for i in range(ROUNDS):
        poll = asyncio.create_task(service.poll(handler, f"w{i}", 1, wait_ms=WAIT_MS, caller=None))
        await asyncio.sleep(0.05)  # the poll is waiting
        assert not poll.done()
        started = time.perf_counter()
        await create(handler)
        tasks = await asyncio.wait_for(poll, 5)
        latencies.append(time.perf_counter() - started)
        assert len(tasks) == 1 and tasks[0].worker_id == f"w{i}"
    return latencies


@pytest.fixture(params=["memory", "sqlite"])
async def local_storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    storage: Storage = (
        MemoryStorage() if request.param == "memory" else SqliteStorage(str(tmp_path / "t.db"))
    )
    await storage.migrate()
    yield storage
    await storage.close()


async def test_a_waiting_poll_wakes_when_this_process_creates_a_task(
    local_storage: Storage,
) -> None:
    bell = TaskBell()
    service = WorkerService(local_storage.tasks, SystemClock(), bell, recheck_s=NO_RECHECK_S)
    creator = await _task_creator(local_storage)

    async def create(handler: str) -> None:
        await creator(handler, bell)

    latencies = await _measure(service, create, "email")
    p50, _p99 = _report(f"same process, {type(local_storage).__name__}", latencies)
    assert p50 < TARGET_S, latencies
    assert max(latencies) < 5 * TARGET_S, latencies
    assert bell.waiting() == 0  # nothing left behind


async def test_a_waiting_poll_wakes_when_another_process_creates_a_task(
    postgres_url: str,
) -> None:
    async with fresh_schema(postgres_url) as url:
        listening, writing = PostgresStorage(url), PostgresStorage(url)
        try:
            await listening.migrate()
            bell = TaskBell()
            await listening.listen(bell.ring)
            service = WorkerService(listening.tasks, SystemClock(), bell, recheck_s=NO_RECHECK_S)
            creator = await _task_creator(writing)

            async def create(handler: str) -> None:
                await creator(handler, None)  # nothing rings this process's bell

            latencies = await _measure(service, create, "email")
            p50, _p99 = _report("cross-process, PostgreSQL LISTEN/NOTIFY", latencies)
            assert p50 < TARGET_S, latencies
            assert max(latencies) < 5 * TARGET_S, latencies
        finally:
            await writing.close()
            await listening.close()


async def test_a_poll_with_work_available_returns_at_once(local_storage: Storage) -> None:
    bell = TaskBell()
    service = WorkerService(local_storage.tasks, SystemClock(), bell, recheck_s=NO_RECHECK_S)
    await (await _task_creator(local_storage))("email", None)
    started = time.perf_counter()
    tasks = await service.poll("email", "w", 5, wait_ms=WAIT_MS, caller=None)
    assert len(tasks) == 1
    assert time.perf_counter() - started < 1.0


async def test_a_poll_without_work_returns_empty_after_wait_ms(local_storage: Storage) -> None:
    service = WorkerService(local_storage.tasks, SystemClock(), TaskBell(), recheck_s=NO_RECHECK_S)
    started = time.perf_counter()
    assert await service.poll("email", "w", 1, wait_ms=200, caller=None) == []
    assert 0.19 <= time.perf_counter() - started < 2.0


async def test_a_ring_for_a_task_someone_else_took_keeps_the_poll_waiting(
    local_storage: Storage,
) -> None:
    bell = TaskBell()
    service = WorkerService(local_storage.tasks, SystemClock(), bell, recheck_s=NO_RECHECK_S)
    create = await _task_creator(local_storage)
    poll = asyncio.create_task(service.poll("email", "late", 1, wait_ms=WAIT_MS, caller=None))
    await asyncio.sleep(0.05)
    await create("email", None)
    assert len(await service.poll("email", "quick", 1, caller=None)) == 1
    bell.ring("email")  # the task is gone already: the waiting poll finds nothing
    await asyncio.sleep(0.1)
    assert not poll.done()
    await create("email", bell)
    [task] = await asyncio.wait_for(poll, 5)
    assert task.worker_id == "late"


async def test_a_ring_for_another_handler_does_not_wake_the_poll(local_storage: Storage) -> None:
    bell = TaskBell()
    service = WorkerService(local_storage.tasks, SystemClock(), bell, recheck_s=NO_RECHECK_S)
    create = await _task_creator(local_storage)
    poll = asyncio.create_task(service.poll("email", "w", 1, wait_ms=300, caller=None))
    await asyncio.sleep(0.05)
    await create("sms", bell)
    assert await asyncio.wait_for(poll, 5) == []


async def test_shutdown_releases_waiting_polls(local_storage: Storage) -> None:
    service = WorkerService(local_storage.tasks, SystemClock(), TaskBell(), recheck_s=NO_RECHECK_S)
    polls = [
        asyncio.create_task(service.poll(f"h{i}", "w", 1, wait_ms=WAIT_MS, caller=None))
        for i in range(3)
    ]
    await asyncio.sleep(0.05)
    service.shutdown()
    assert await asyncio.wait_for(asyncio.gather(*polls), 2) == [[], [], []]
    started = time.perf_counter()
    assert await service.poll("h0", "w", 1, wait_ms=WAIT_MS, caller=None) == []
    assert time.perf_counter() - started < 1.0


async def test_a_lost_notification_is_made_up_by_the_periodic_recheck(
    local_storage: Storage,
) -> None:
    service = WorkerService(local_storage.tasks, SystemClock(), TaskBell(), recheck_s=0.1)
    create = await _task_creator(local_storage)
    poll = asyncio.create_task(service.poll("email", "w", 1, wait_ms=WAIT_MS, caller=None))
    await asyncio.sleep(0.05)
    await create("email", None)  # nobody rings
    assert len(await asyncio.wait_for(poll, 2)) == 1


async def test_a_departed_caller_claims_nothing(local_storage: Storage) -> None:
    bell = TaskBell()
    service = WorkerService(local_storage.tasks, SystemClock(), bell, recheck_s=NO_RECHECK_S)
    create = await _task_creator(local_storage)
    gone = False
    poll = asyncio.create_task(
        service.poll("email", "w", 1, wait_ms=WAIT_MS, caller=None, gone=lambda: gone)
    )
    await asyncio.sleep(0.05)
    gone = True
    await create("email", bell)
    assert await asyncio.wait_for(poll, 2) == []
    assert len(await service.poll("email", "other", 1, caller=None)) == 1


async def test_tasks_reaped_by_another_process_wake_a_waiting_poll(postgres_url: str) -> None:
    async with fresh_schema(postgres_url) as url:
        listening, reaping = PostgresStorage(url), PostgresStorage(url)
        try:
            await listening.migrate()
            bell = TaskBell()
            await listening.listen(bell.ring)
            service = WorkerService(listening.tasks, SystemClock(), bell, recheck_s=NO_RECHECK_S)
            await (await _task_creator(reaping))("email", None)
            [lost] = await reaping.tasks.poll("email", "dead", 1, now())
            poll = asyncio.create_task(
                service.poll("email", "alive", 1, wait_ms=WAIT_MS, caller=None)
            )
            await asyncio.sleep(0.05)
            assert not poll.done()
            assert await reaping.tasks.reap_stale(now(), now()) == 1
            [task] = await asyncio.wait_for(poll, 1)
            assert (task.id, task.worker_id, task.claim_epoch) == (lost.id, "alive", 2)
        finally:
            await reaping.close()
            await listening.close()


async def test_the_listener_reconnects_after_losing_its_connection(postgres_url: str) -> None:
    async with fresh_schema(postgres_url) as url:
        listening, writing = PostgresStorage(url), PostgresStorage(url)
        try:
            await listening.migrate()
            bell = TaskBell()
            await listening.listen(bell.ring)
            admin = await asyncpg.connect(url)
            try:
                killed = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
                )
            finally:
                await admin.close()
            assert killed >= 1
            service = WorkerService(listening.tasks, SystemClock(), bell, recheck_s=NO_RECHECK_S)
            create = await _task_creator(writing)
            async with asyncio.timeout(10):  # wait for the listener to be back
                while True:
                    poll = asyncio.create_task(
                        service.poll("email", "w", 1, wait_ms=300, caller=None)
                    )
                    await asyncio.sleep(0.05)
                    await create("email", None)
                    if await poll:
                        break
                    await service.poll("email", "drain", 10, caller=None)
        finally:
            await writing.close()
            await listening.close()
