"""The engine's runner and scheduler against the in-memory store and a fake clock."""

from __future__ import annotations

from typing import Any

import pytest

from orch8.adapters.memory import MemoryStorage
from orch8.application.commands import NewInstance, NewSequence
from orch8.application.engine.runner import InstanceRunner
from orch8.application.engine.scheduler import Scheduler
from orch8.application.engine.sequence_cache import SequenceCache
from orch8.application.handlers import BUILTIN_HANDLERS, HandlerRegistry
from orch8.application.ports.handlers import StepCall
from orch8.application.ports.storage import Page, SnapshotWrite
from orch8.codec.blocks import read_blocks
from orch8.domain.instance import InstanceState
from orch8.domain.outputs import ERROR_REF
from tests.unit.fakes import CountingIds, FakeClock, RecordingMetrics, build_process


class Harness:
    def __init__(self, clock: FakeClock | None = None) -> None:
        self.storage = MemoryStorage()
        self.clock = clock or FakeClock()
        self.ids = CountingIds()
        self.calls: list[tuple[str, int]] = []
        self.registry = HandlerRegistry(BUILTIN_HANDLERS)
        self.registry.register("record", self._record)
        self.stopping = False
        self.metrics = RecordingMetrics()
        self.runner = runner = InstanceRunner(
            self.storage,
            self.registry,
            self.clock,
            self.ids,
            SequenceCache(self.storage.sequences),
            stopping=lambda: self.stopping,
            metrics=self.metrics,
        )
        self.scheduler = Scheduler(
            self.storage.instances,
            runner,
            self.clock,
            batch_size=50,
            max_concurrent=50,
            metrics=self.metrics,
        )
        use_cases = build_process(self.storage, self.clock, self.ids).use_cases
        self.catalog, self.instances = use_cases.sequences, use_cases.instances

    async def _record(self, call: StepCall) -> Any:
        self.calls.append((call.block_id, call.attempt))
        return {"block": call.block_id}

    async def start(self, blocks: list[dict[str, Any]], count: int = 1) -> list[str]:
        seq = await self.catalog.create(
            NewSequence(
                tenant_id="t", namespace="default", name="s", blocks=read_blocks(blocks, "blocks")
            ),
            caller=None,
        )
        started = await self.instances.create_many(
            [NewInstance(sequence_id=seq.id) for _ in range(count)], caller=None
        )
        return [s.instance.id for s in started]

    async def settle(self) -> None:
        """Tick until nothing is due now and nothing runs."""
        for _ in range(100):
            await self.scheduler.tick()
            await self.scheduler.drain(5)
            if not await self._any_due():
                return

    async def _any_due(self) -> bool:
        from orch8.application.ports.storage import InstanceFilter, Page

        items = await self.storage.instances.query(
            InstanceFilter(states=(InstanceState.SCHEDULED,)), Page(0, 1000)
        )
        return any(i.next_fire_at is None or i.next_fire_at <= self.clock.now() for i in items)

    async def state(self, instance_id: str) -> InstanceState:
        inst = await self.storage.instances.get(instance_id)
        assert inst is not None
        return inst.state


def step(block_id: str, handler: str = "record", **extra: Any) -> dict[str, Any]:
    return {"type": "step", "id": block_id, "handler": handler, **extra}


async def test_three_steps_complete_with_three_outputs() -> None:
    h = Harness()
    (iid,) = await h.start([step("a"), step("b"), step("c")])
    await h.settle()
    assert await h.state(iid) is InstanceState.COMPLETED
    outputs = await h.storage.outputs.list_for_instance(iid)
    assert [(o.block_id, o.output) for o in outputs] == [(b, {"block": b}) for b in "abc"]
    assert h.calls == [("a", 1), ("b", 1), ("c", 1)]


async def test_retry_with_backoff_then_failure() -> None:
    h = Harness()
    retry = {
        "max_attempts": 3,
        "initial_backoff": 1000,
        "max_backoff": 10_000,
        "backoff_multiplier": 2,
    }
    (iid,) = await h.start(
        [step("f", "fail", retry=retry, params={"message": "boom"}), step("after")]
    )
    await h.settle()
    assert await h.state(iid) is InstanceState.SCHEDULED
    inst = await h.storage.instances.get(iid)
    assert inst is not None
    assert inst.next_fire_at == h.clock.now() + __import__("datetime").timedelta(seconds=1)
    h.clock.advance(milliseconds=999)
    await h.settle()
    assert len(await h.storage.outputs.list_for_instance(iid)) == 1
    h.clock.advance(milliseconds=1)
    await h.settle()
    assert len(await h.storage.outputs.list_for_instance(iid)) == 2
    h.clock.advance(seconds=2)
    await h.settle()
    assert await h.state(iid) is InstanceState.FAILED
    outputs = await h.storage.outputs.list_for_instance(iid)
    assert [(o.attempt, o.output_ref) for o in outputs] == [
        (1, ERROR_REF),
        (2, ERROR_REF),
        (3, ERROR_REF),
    ]
    assert outputs[0].output == {"error": "boom", "retryable": True}
    assert ("after", 1) not in h.calls
    counts = h.metrics.counts
    assert (counts["instances_failed"], counts["instances_completed"], counts["claimed"]) == (
        1,
        0,
        3,
    )
    assert (counts["attempts_retrying"], counts["attempts_failed"]) == (2, 1)  # the last is final
    assert counts["attempts_succeeded"] == 0


async def test_permanent_failure_skips_retries() -> None:
    h = Harness()
    (iid,) = await h.start(
        [step("f", "fail", retry={"max_attempts": 5}, params={"retryable": False})]
    )
    await h.settle()
    assert await h.state(iid) is InstanceState.FAILED
    assert len(await h.storage.outputs.list_for_instance(iid)) == 1


async def test_delay_sleeps_in_storage_until_due() -> None:
    h = Harness()
    (iid,) = await h.start([step("a"), step("b", delay={"duration": 60_000}), step("c")])
    await h.settle()
    inst = await h.storage.instances.get(iid)
    assert inst is not None
    assert inst.state is InstanceState.SCHEDULED
    assert h.calls == [("a", 1)]
    h.clock.advance(seconds=59)
    await h.settle()
    assert h.calls == [("a", 1)]
    h.clock.advance(seconds=1)
    await h.settle()
    assert await h.state(iid) is InstanceState.COMPLETED
    assert h.calls == [("a", 1), ("b", 1), ("c", 1)]


async def test_a_handler_not_built_in_becomes_a_worker_task_and_the_instance_waits() -> None:
    from orch8.application.ports.storage import TaskFilter

    h = Harness()
    (iid,) = await h.start([step("a", "send_email", params={"to": "{{ data.to }}"})])
    await h.settle()
    assert await h.state(iid) is InstanceState.WAITING
    (task,) = await h.storage.tasks.query(TaskFilter(instance_id=iid), Page(0, 10))
    assert (task.handler_name, task.block_id, task.attempt) == ("send_email", "a", 1)
    (claimed,) = await h.storage.tasks.poll("send_email", "w1", 5, h.clock.now())
    await h.storage.tasks.complete(
        claimed.id, "w1", claimed.claim_epoch, {"sent": True}, h.clock.now()
    )
    await h.settle()
    assert await h.state(iid) is InstanceState.COMPLETED
    inst = await h.storage.instances.get(iid)
    assert inst is not None
    assert inst.context.data["sent"] is True  # worker outputs merge into context.data


async def test_timeout_is_a_retryable_failure() -> None:
    h = Harness()
    blocks = [
        step(
            "s",
            "sleep",
            params={"duration_ms": 2000},
            timeout=20,
            retry={"max_attempts": 2, "initial_backoff": 0},
        )
    ]
    (iid,) = await h.start(blocks)
    await h.settle()
    assert await h.state(iid) is InstanceState.FAILED
    outputs = await h.storage.outputs.list_for_instance(iid)
    assert [o.attempt for o in outputs] == [1, 2]
    assert "timed out after 20 ms" in outputs[0].output["error"]


async def test_stopping_hands_the_rest_back_after_the_running_step() -> None:
    h = Harness()

    async def stop_now(call: StepCall) -> Any:
        h.stopping = True  # SIGTERM arrives while this step runs
        h.calls.append((call.block_id, call.attempt))
        return {}

    h.registry.register("stop_now", stop_now)
    (iid,) = await h.start([step("a", "stop_now"), step("b")])
    await h.scheduler.tick()
    await h.scheduler.drain(5)
    inst = await h.storage.instances.get(iid)
    assert inst is not None
    assert inst.state is InstanceState.SCHEDULED
    assert h.calls == [("a", 1)]
    h.stopping = False
    await h.settle()
    assert await h.state(iid) is InstanceState.COMPLETED
    assert h.calls == [("a", 1), ("b", 1)]


async def test_a_run_that_lost_its_claim_writes_nothing() -> None:
    h = Harness()
    (iid,) = await h.start([step("a")])
    (claimed,) = await h.storage.instances.claim_due(h.clock.now(), 10)
    # recovery hands it to someone else meanwhile
    h.clock.advance(minutes=5)
    assert await h.storage.instances.recover_stale(h.clock.now(), h.clock.now()) == 1
    from orch8.application.errors import StaleWrite

    with pytest.raises(StaleWrite):
        await h.storage.snapshots.commit(
            SnapshotWrite(iid, InstanceState.RUNNING, InstanceState.COMPLETED, None, h.clock.now())
        )
    assert claimed.id == iid
    assert await h.state(iid) is InstanceState.SCHEDULED


async def test_claims_follow_priority_then_fire_time() -> None:
    h = Harness()
    seq = await h.catalog.create(
        NewSequence(
            tenant_id="t", namespace="default", name="p", blocks=read_blocks([step("a")], "b")
        ),
        caller=None,
    )
    from orch8.domain.instance import Priority

    low = await h.instances.create(
        NewInstance(sequence_id=seq.id, priority=Priority.LOW), caller=None
    )
    crit = await h.instances.create(
        NewInstance(sequence_id=seq.id, priority=Priority.CRITICAL), caller=None
    )
    claimed = await h.storage.instances.claim_due(h.clock.now(), 1)
    assert [c.id for c in claimed] == [crit.instance.id]
    assert low.instance.id != crit.instance.id


async def test_a_saturated_scheduler_claims_again_as_soon_as_a_slot_frees() -> None:
    """With a 60 s tick and 4 slots, 40 instances finish only if freed slots wake the tick."""
    import asyncio

    from orch8.adapters.system import SystemClock
    from orch8.application.engine.service import EngineConfig
    from orch8.bootstrap.engine import build_engine

    h = Harness()
    ids = await h.start([step("a")], count=40)
    engine = build_engine(
        h.storage,
        h.registry,
        SystemClock(),
        h.ids,
        EngineConfig(tick_interval_s=60, batch_size=4, max_concurrent_steps=4),
    )
    await engine.start()
    try:
        async with asyncio.timeout(10):
            while any([await h.state(i) is not InstanceState.COMPLETED for i in ids]):
                await asyncio.sleep(0.01)
    finally:
        await engine.stop()
    assert engine.scheduler.claims_made >= 10


async def test_a_running_instance_yields_its_slot_to_a_more_urgent_one() -> None:
    from orch8.domain.instance import Priority

    h = Harness()
    order: list[str] = []

    async def work(call: StepCall) -> Any:
        order.append(f"{call.instance_id[-2:]}:{call.block_id}")
        if call.block_id == "a1" and call.instance_id == low_id:
            urgent = await h.instances.create(
                NewInstance(sequence_id=seq.id, priority=Priority.CRITICAL), caller=None
            )
            ids.append(urgent.instance.id)
        return {}

    h.registry.register("work", work)
    seq = await h.catalog.create(
        NewSequence(
            tenant_id="t",
            namespace="default",
            name="prio",
            blocks=read_blocks([step(f"a{i}", "work") for i in range(1, 4)], "b"),
        ),
        caller=None,
    )
    low = await h.instances.create(
        NewInstance(sequence_id=seq.id, priority=Priority.LOW), caller=None
    )
    low_id = low.instance.id
    ids: list[str] = [low_id]
    one_slot = Scheduler(h.storage.instances, h.runner, h.clock, batch_size=1, max_concurrent=1)
    h.runner.saturated = lambda: one_slot.saturated
    for _ in range(20):
        await one_slot.tick()
        await one_slot.drain(5)
    assert await h.state(low_id) is InstanceState.COMPLETED
    assert await h.state(ids[1]) is InstanceState.COMPLETED
    urgent = ids[1][-2:]
    # the low one ran a1, yielded; the critical one ran all three; then the low one finished
    assert order == [
        f"{low_id[-2:]}:a1",
        f"{urgent}:a1",
        f"{urgent}:a2",
        f"{urgent}:a3",
        f"{low_id[-2:]}:a2",
        f"{low_id[-2:]}:a3",
    ]


async def test_a_worker_step_inside_a_loop_gets_a_task_every_iteration() -> None:
    h = Harness()
    loop = {
        "type": "loop",
        "id": "l",
        "condition": "true",
        "max_iterations": 3,
        "body": [step("a", "send_email")],
    }
    (iid,) = await h.start([loop])
    for _ in range(3):
        await h.settle()
        assert await h.state(iid) is InstanceState.WAITING
        (claimed,) = await h.storage.tasks.poll("send_email", "w1", 5, h.clock.now())
        await h.storage.tasks.complete(claimed.id, "w1", claimed.claim_epoch, {}, h.clock.now())
    await h.settle()
    assert await h.state(iid) is InstanceState.COMPLETED


async def test_a_stopped_engine_starts_again_and_a_running_one_refuses_a_second_start() -> None:
    import asyncio

    from orch8.adapters.system import SystemClock
    from orch8.application.engine.service import EngineConfig
    from orch8.bootstrap.engine import build_engine

    h = Harness()
    engine = build_engine(
        h.storage, h.registry, SystemClock(), h.ids, EngineConfig(tick_interval_s=0.01)
    )

    async def run_one() -> None:
        (iid,) = await h.start([step("a"), step("b")])
        engine.nudge()
        async with asyncio.timeout(10):
            while await h.state(iid) is not InstanceState.COMPLETED:
                await asyncio.sleep(0.01)

    await engine.start()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            await engine.start()
        await run_one()
    finally:
        await engine.stop()
    assert not engine.running
    await engine.start()
    try:
        assert engine.running
        await run_one()
    finally:
        await engine.stop()
    await engine.stop()  # stopping a stopped engine is harmless


async def test_the_runner_reports_each_attempt_once_including_cleanup_steps() -> None:
    h = Harness()
    seq = await h.catalog.create(
        NewSequence(
            tenant_id="t",
            namespace="default",
            name="cleanup",
            blocks=read_blocks([step("a"), step("f", "fail", params={})], "blocks"),
            on_failure=read_blocks([step("undo"), step("alert", "fail", params={})], "on_failure"),
        ),
        caller=None,
    )
    [started] = await h.instances.create_many([NewInstance(sequence_id=seq.id)], caller=None)
    await h.settle()
    assert await h.state(started.instance.id) is InstanceState.FAILED
    counts = h.metrics.counts
    # a, then f (no retry policy: final); the cleanup: undo succeeds, alert fails
    assert (counts["attempts_succeeded"], counts["attempts_failed"]) == (2, 2)
    assert counts["attempts_retrying"] == 0
    assert (counts["instances_failed"], counts["claimed"]) == (1, 1)
