"""The runner's smaller parts on their own: attempts in flight, which children to
cancel, and the task handed to a worker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from orch8.application.engine.children import children_to_cancel
from orch8.application.engine.inflight import Inflight
from orch8.application.engine.worker_dispatch import dispatch
from orch8.domain.context import ExecutionContext
from orch8.domain.evaluator import RunStep, Snapshot
from orch8.domain.evaluator.attempts import AttemptResult, Succeeded
from orch8.domain.instance import Instance, InstanceState, Priority
from orch8.domain.sequence import StepBlock
from orch8.domain.tree import Node, NodeState
from tests.unit.fakes import CountingIds

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def step(block_id: str, attempt: int = 1) -> RunStep:
    return RunStep(StepBlock(block_id, "h"), attempt)


def running(*steps: RunStep) -> Snapshot:
    return Snapshot(
        ExecutionContext(),
        {
            s.block.id: Node(s.block.id, "step", NodeState.RUNNING, attempts=s.attempt)
            for s in steps
        },
    )


class Calls:
    """Handler calls that end when told to."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.release: dict[str, asyncio.Event] = {}
        self.cancelled: list[str] = []

    async def __call__(self, s: RunStep) -> AttemptResult:
        self.started.append(s.block.id)
        event = self.release.setdefault(s.block.id, asyncio.Event())
        try:
            await event.wait()
        except asyncio.CancelledError:
            self.cancelled.append(s.block.id)
            raise
        return Succeeded(s.block.id, 1)


async def test_attempts_launch_up_to_the_bound_once_each() -> None:
    calls = Calls()
    inflight = Inflight(2)
    a, b, c = step("a"), step("b"), step("c")
    inflight.launch([a, b, c], calls)
    assert len(inflight) == 2
    inflight.launch([a, b], calls)  # already running: not started again
    await asyncio.sleep(0)
    assert calls.started == ["a", "b"]
    inflight.cancel_all()
    await asyncio.sleep(0)
    assert calls.cancelled == ["a", "b"]


async def test_finished_attempts_come_back_in_launch_order_and_stale_ones_are_cancelled() -> None:
    calls = Calls()
    inflight = Inflight(8)
    a, b, c = step("a"), step("b"), step("c")
    inflight.launch([a, b, c], calls)
    await asyncio.sleep(0)
    # b's node moved on (cancelled): its call is stopped and never reported.
    inflight.cancel_stale(running(a, c))
    calls.release["c"].set()
    calls.release["a"].set()
    await asyncio.sleep(0)
    ended = await inflight.finished(asyncio.sleep(10))
    assert ended == [(a, Succeeded("a", 1)), (c, Succeeded("c", 1))]
    assert calls.cancelled == ["b"]
    assert len(inflight) == 0  # b dropped with them


async def test_an_interrupt_ends_the_wait_with_nothing_finished() -> None:
    calls = Calls()
    inflight = Inflight(8)
    inflight.launch([step("a")], calls)
    assert await inflight.finished(asyncio.sleep(0)) == []
    assert len(inflight) == 1
    inflight.cancel_all()


def test_only_children_cancelled_since_the_last_commit_are_cancelled() -> None:
    def child(block_id: str, state: NodeState, ref: str | None) -> Node:
        return Node(block_id, "sub_sequence", state, ref=ref)

    committed = Snapshot(
        ExecutionContext(),
        {
            "new": child("new", NodeState.WAITING, "c-1"),
            "old": child("old", NodeState.CANCELLED, "c-2"),
            "unstarted": child("unstarted", NodeState.PENDING, None),
        },
    )
    now = committed
    for block_id in ("new", "old", "unstarted"):
        node = committed.nodes[block_id]
        now = now.with_node(Node(block_id, node.block_type, NodeState.CANCELLED, ref=node.ref))
    now = now.with_node(Node("step", "step", NodeState.CANCELLED, ref="task-1"))
    assert children_to_cancel(now, committed) == ["c-1"]


def test_a_worker_sees_the_rendered_params_data_and_config_only() -> None:
    context = ExecutionContext(data={"a": 1}, config={"c": 2}, runtime={"state": {"s": 3}})
    parent = Instance(
        id="i-1",
        sequence_id="s",
        tenant_id="t",
        namespace="default",
        state=InstanceState.RUNNING,
        next_fire_at=None,
        priority=Priority.NORMAL,
        timezone="UTC",
        created_at=T0,
        updated_at=T0,
    )
    block = StepBlock("send", "remote", queue_name="q", timeout_ms=500)
    task = dispatch(CountingIds(), parent, RunStep(block, 2), {"to": "x"}, context, T0).task
    assert (task.instance_id, task.tenant_id, task.block_id, task.handler_name) == (
        "i-1",
        "t",
        "send",
        "remote",
    )
    assert (task.attempt, task.params, task.queue_name, task.timeout_ms) == (
        2,
        {"to": "x"},
        "q",
        500,
    )
    assert task.context == {"data": {"a": 1}, "config": {"c": 2}}
