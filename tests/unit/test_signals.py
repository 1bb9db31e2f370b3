"""Signals through the engine, against the in-memory store and a fake clock."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from orch8.application.engine.bell import SignalBell
from orch8.application.errors import InstanceTerminal, NotFound
from orch8.application.ports.handlers import StepCall
from orch8.application.use_cases.signals import SignalService
from orch8.domain.errors import ValidationError
from orch8.domain.instance import InstanceState
from orch8.domain.signals import SignalKind
from orch8.domain.tree import NodeState
from tests.unit.test_engine import Harness, step


class SignalHarness(Harness):
    def __init__(self) -> None:
        super().__init__()
        self.bell = SignalBell()
        self.scheduler._runner.bell = self.bell
        self.signals = SignalService(
            self.storage.sequences,
            self.storage.instances,
            self.storage.signals,
            self.storage.snapshots,
            self.clock,
            self.ids,
            self.bell,
        )
        self.gate = asyncio.Event()
        self.registry.register("hold", self._hold)

    async def _hold(self, call: StepCall) -> Any:
        self.calls.append((call.block_id, call.attempt))
        await self.gate.wait()
        return {}

    async def send(
        self, iid: str, kind: SignalKind, payload: Any = None, name: str | None = None
    ) -> None:
        await self.signals.send(iid, kind, payload, name=name, caller=None)

    async def node_state(self, iid: str, block: str) -> NodeState:
        loaded = await self.storage.snapshots.load(iid)
        assert loaded is not None
        nodes = {n.block_id: n for n in loaded[1]}
        return nodes[block].state if block in nodes else NodeState.PENDING


async def test_pause_takes_effect_after_the_running_step_and_resume_continues() -> None:
    h = SignalHarness()
    (iid,) = await h.start([step("long", "hold"), step("next")])
    await h.scheduler.tick()
    await asyncio.sleep(0)
    await h.send(iid, SignalKind.PAUSE)
    h.gate.set()
    await h.scheduler.drain(5)
    assert await h.state(iid) is InstanceState.PAUSED
    assert h.calls == [("long", 1)]
    await h.settle()
    assert await h.state(iid) is InstanceState.PAUSED  # paused instances are not claimed
    await h.send(iid, SignalKind.RESUME)
    await h.settle()
    assert await h.state(iid) is InstanceState.COMPLETED
    assert h.calls == [("long", 1), ("next", 1)]


async def test_a_paused_scheduled_instance_stays_paused_until_resumed() -> None:
    h = SignalHarness()
    (iid,) = await h.start([step("a"), step("b", delay={"duration": 60_000})])
    await h.settle()
    await h.send(iid, SignalKind.PAUSE)
    await h.settle()
    assert await h.state(iid) is InstanceState.PAUSED
    await h.send(iid, SignalKind.RESUME)
    h.clock.advance(seconds=61)
    await h.settle()
    assert await h.state(iid) is InstanceState.COMPLETED


async def test_cancel_stops_the_instance_and_runs_on_cancel() -> None:
    h = SignalHarness()
    (iid,) = await h.start([step("a"), step("b", delay={"duration": 60_000})])
    await h.settle()
    await h.send(iid, SignalKind.CANCEL)
    await h.settle()
    assert await h.state(iid) is InstanceState.CANCELLED
    assert ("b", 1) not in h.calls


async def test_cancel_waits_for_a_cancellation_scope_to_finish() -> None:
    h = SignalHarness()
    blocks = [
        {
            "type": "cancellation_scope",
            "id": "scope",
            "blocks": [step("inside", "hold"), step("inside2")],
        },
        step("after"),
    ]
    (iid,) = await h.start(blocks)
    await h.scheduler.tick()
    await asyncio.sleep(0)
    await h.send(iid, SignalKind.CANCEL)
    h.gate.set()
    await h.scheduler.drain(5)
    await h.settle()
    assert await h.state(iid) is InstanceState.CANCELLED
    assert [c for c, _ in h.calls] == ["inside", "inside2"]


async def test_update_context_signals_are_all_applied() -> None:
    h = SignalHarness()
    (iid,) = await h.start([step("a", delay={"duration": 60_000})])
    await h.settle()
    await asyncio.gather(
        *(h.send(iid, SignalKind.UPDATE_CONTEXT, {"data": {f"k{i}": i}}) for i in range(100))
    )
    await h.settle()
    inst = await h.storage.instances.get(iid)
    assert inst is not None
    assert all(inst.context.data[f"k{i}"] == i for i in range(100))
    assert not await h.storage.signals.pending(iid)


async def test_update_context_needs_a_data_object() -> None:
    h = SignalHarness()
    (iid,) = await h.start([step("a", delay={"duration": 60_000})])
    with pytest.raises(ValidationError, match="payload"):
        await h.send(iid, SignalKind.UPDATE_CONTEXT, {"plan": "pro"})


async def test_signals_to_ended_or_unknown_instances_are_refused() -> None:
    h = SignalHarness()
    (iid,) = await h.start([step("a")])
    await h.settle()
    with pytest.raises(InstanceTerminal):
        await h.send(iid, SignalKind.PAUSE)
    with pytest.raises(NotFound):
        await h.send("nope", SignalKind.PAUSE)


APPROVAL = {
    "type": "step",
    "id": "approve",
    "handler": "record",
    "wait_for_input": {
        "prompt": "Ship it?",
        "choices": [{"label": "Yes", "value": "yes"}, {"label": "No", "value": "no"}],
        "store_as": "decision",
    },
}


async def test_human_input_flow() -> None:
    h = SignalHarness()
    (iid,) = await h.start([APPROVAL, step("after")])
    await h.settle()
    assert await h.state(iid) is InstanceState.WAITING
    assert await h.node_state(iid, "approve") is NodeState.WAITING
    from orch8.application.ports.storage import InstanceFilter, Page

    (item,) = await h.signals.approvals(InstanceFilter(), Page(0, 10), caller=None)
    assert (item.block_id, item.prompt, item.store_as) == ("approve", "Ship it?", "decision")
    with pytest.raises(ValidationError, match=r"payload\.value"):
        await h.send(iid, SignalKind.CUSTOM, {"value": "maybe"}, name="human_input:approve")
    await h.send(iid, SignalKind.CUSTOM, {"value": "yes"}, name="human_input:approve")
    await h.settle()
    assert await h.state(iid) is InstanceState.COMPLETED
    inst = await h.storage.instances.get(iid)
    assert inst is not None
    assert inst.context.data["decision"] == "yes"
    assert h.calls == [("approve", 1), ("after", 1)]
    assert not await h.storage.signals.pending(iid)


async def test_human_input_timeout_escalates() -> None:
    h = SignalHarness()
    gate = {
        **APPROVAL,
        "wait_for_input": {
            **APPROVAL["wait_for_input"],
            "timeout": 5000,
            "escalation_handler": "pager",
        },
    }
    (iid,) = await h.start([gate, step("after")])
    await h.settle()
    assert await h.state(iid) is InstanceState.WAITING
    h.clock.advance(seconds=6)
    assert await h.storage.instances.wake_due_waiting(h.clock.now()) == 1
    await h.settle()
    assert await h.state(iid) is InstanceState.COMPLETED
    outputs = await h.storage.outputs.list_for_instance(iid)
    assert outputs[0].output == {
        "_escalated": True,
        "_escalation_handler": "pager",
        "_timeout_seconds": 5,
    }
    assert ("approve", 1) not in h.calls


async def test_human_input_timeout_without_escalation_fails() -> None:
    h = SignalHarness()
    gate = {**APPROVAL, "wait_for_input": {**APPROVAL["wait_for_input"], "timeout": 5000}}
    (iid,) = await h.start([gate])
    await h.settle()
    h.clock.advance(seconds=6)
    await h.storage.instances.wake_due_waiting(h.clock.now())
    await h.settle()
    assert await h.state(iid) is InstanceState.FAILED
