"""Signals in every state, over HTTP, against a real `orch8 serve` on SQLite."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.server import ServerProcess
from tests.e2e.test_walking_skeleton import get, post


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp: Path = tmp_path_factory.mktemp("signals")
    with ServerProcess(f"sqlite://{tmp / 's.db'}", log_path=tmp / "server.log") as running:
        yield running


def step(block_id: str, handler: str = "noop", **extra: Any) -> dict[str, Any]:
    return {"type": "step", "id": block_id, "handler": handler, **extra}


def sleep(block_id: str, ms: int, **extra: Any) -> dict[str, Any]:
    return step(block_id, "sleep", params={"duration_ms": ms}, **extra)


async def start(
    s: aiohttp.ClientSession,
    server: ServerProcess,
    blocks: list[dict[str, Any]],
    data: dict[str, Any] | None = None,
) -> str:
    seq = await post(
        s,
        f"{server.url}/sequences",
        {"tenant_id": "t", "name": f"s{time.time_ns()}", "blocks": blocks},
    )
    body = {"sequence_id": seq["id"], "tenant_id": "t", "context": {"data": data or {}}}
    return str((await post(s, f"{server.url}/instances", body))["id"])


async def signal(
    s: aiohttp.ClientSession, server: ServerProcess, iid: str, signal_type: Any, payload: Any = None
) -> tuple[int, Any]:
    async with s.post(
        f"{server.url}/instances/{iid}/signals",
        json={"signal_type": signal_type, "payload": payload},
    ) as r:
        return r.status, await r.json()


async def until(
    s: aiohttp.ClientSession, server: ServerProcess, iid: str, state: str, within: float = 20
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        inst = await get(s, f"{server.url}/instances/{iid}")
        if inst["state"] == state:
            return dict(inst)
        assert time.monotonic() < deadline, inst["state"]
        await asyncio.sleep(0.05)


async def test_pause_during_a_long_step_then_resume(server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as s:
        iid = await start(s, server, [sleep("long", 800), step("next")])
        await until(s, server, iid, "running")
        status, body = await signal(s, server, iid, "pause")
        assert status == 201
        assert "signal_id" in body
        await until(s, server, iid, "paused")
        outputs = await get(s, f"{server.url}/instances/{iid}/outputs")
        assert [o["block_id"] for o in outputs] == ["long"]  # the running step finished
        await asyncio.sleep(0.3)
        assert (await get(s, f"{server.url}/instances/{iid}"))["state"] == "paused"
        assert (await signal(s, server, iid, "resume"))[0] == 201
        await until(s, server, iid, "completed")


async def test_pause_and_cancel_a_sleeping_instance(server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as s:
        iid = await start(s, server, [step("a"), step("later", delay={"duration": 60_000})])
        inst = await until(s, server, iid, "scheduled")
        await signal(s, server, iid, "pause")
        await until(s, server, iid, "paused")
        await signal(s, server, iid, "cancel")
        await until(s, server, iid, "cancelled")
        assert inst["next_fire_at"] is not None


async def test_cancel_waits_for_a_cancellation_scope(server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as s:
        iid = await start(
            s,
            server,
            [
                {
                    "type": "cancellation_scope",
                    "id": "scope",
                    "blocks": [sleep("inside", 600), step("inside2")],
                },
                step("after"),
            ],
        )
        await until(s, server, iid, "running")
        await signal(s, server, iid, "cancel")
        await until(s, server, iid, "cancelled")
        done = [o["block_id"] for o in await get(s, f"{server.url}/instances/{iid}/outputs")]
        assert done == ["inside", "inside2"]


async def test_cancel_a_race_with_steps_in_flight(server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as s:
        iid = await start(
            s,
            server,
            [
                {"type": "race", "id": "r", "branches": [[sleep("a", 5000)], [sleep("b", 5000)]]},
            ],
        )
        await until(s, server, iid, "running")
        t0 = time.monotonic()
        await signal(s, server, iid, "cancel")
        await until(s, server, iid, "cancelled", within=4)
        assert time.monotonic() - t0 < 4  # did not wait for the five-second steps
        tree = {
            n["block_id"]: n["state"] for n in await get(s, f"{server.url}/instances/{iid}/tree")
        }
        assert tree["a"] == tree["b"] == "cancelled"


async def test_a_hundred_concurrent_update_context_signals(server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as s:
        iid = await start(s, server, [step("a", delay={"duration": 2000}), step("b")])
        results = await asyncio.gather(
            *(signal(s, server, iid, "update_context", {"data": {f"k{i}": i}}) for i in range(100))
        )
        assert {status for status, _ in results} == {201}
        inst = await until(s, server, iid, "completed")
        assert all(inst["context"]["data"][f"k{i}"] == i for i in range(100))


async def test_signals_to_ended_and_unknown_instances(server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as s:
        iid = await start(s, server, [step("a")])
        await until(s, server, iid, "completed")
        status, body = await signal(s, server, iid, "pause")
        assert status == 400
        assert "completed" in body["error"]
        status, _ = await signal(s, server, "no-such-instance", "pause")
        assert status == 404
        status, body = await signal(s, server, iid, "explode")
        assert status == 400
        assert "signal_type" in body["error"]


async def test_an_approval_end_to_end(server: ServerProcess) -> None:
    gate = {
        "prompt": "Give a 10% discount?",
        "choices": [
            {"label": "Approve", "value": "approved"},
            {"label": "Reject", "value": "rejected"},
        ],
        "store_as": "discount_decision",
    }
    async with aiohttp.ClientSession() as s:
        iid = await start(
            s,
            server,
            [
                step(
                    "review",
                    "log",
                    params={"message": "{{ data.discount_decision }}"},
                    wait_for_input=gate,
                ),
                step("after"),
            ],
        )
        await until(s, server, iid, "waiting")
        approvals = await get(s, f"{server.url}/approvals?tenant_id=t")
        mine = [a for a in approvals["items"] if a["instance_id"] == iid]
        assert [(a["block_id"], a["prompt"]) for a in mine] == [("review", "Give a 10% discount?")]
        status, body = await signal(
            s, server, iid, {"custom": "human_input:review"}, {"value": "maybe"}
        )
        assert status == 400
        assert "payload.value" in body["error"]
        status, _ = await signal(
            s, server, iid, {"custom": "human_input:review"}, {"value": "approved"}
        )
        assert status == 201
        inst = await until(s, server, iid, "completed")
        assert inst["context"]["data"]["discount_decision"] == "approved"
        outputs = await get(s, f"{server.url}/instances/{iid}/outputs")
        assert [o["output"] for o in outputs][:2] == [
            {"value": "approved"},
            {"message": "approved", "level": "info"},
        ]


async def test_an_approval_that_times_out_escalates(server: ServerProcess) -> None:
    gate = {"prompt": "ok?", "timeout": 1000, "escalation_handler": "notify_manager"}
    async with aiohttp.ClientSession() as s:
        iid = await start(s, server, [step("review", wait_for_input=gate), step("after")])
        await until(s, server, iid, "waiting")
        await until(s, server, iid, "completed", within=10)
        outputs = await get(s, f"{server.url}/instances/{iid}/outputs")
        assert outputs[0]["output"]["_escalated"] is True


async def test_a_step_signals_another_instance_and_records_a_review(server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as s:
        target = await start(s, server, [step("wait", delay={"duration": 1500}), step("done")])
        sender = await start(
            s,
            server,
            [
                step(
                    "poke",
                    "send_signal",
                    params={
                        "instance_id": "{{ data.target }}",
                        "signal_type": "update_context",
                        "payload": {"data": {"poked_by": "{{ instance_id }}"}},
                    },
                ),
                step(
                    "review",
                    "human_review",
                    params={"review_data": {"amount": 5}, "instructions": "check"},
                ),
            ],
            data={"target": target},
        )
        await until(s, server, sender, "completed")
        outputs = await get(s, f"{server.url}/instances/{sender}/outputs")
        assert "signal_id" in outputs[0]["output"]
        assert outputs[1]["output"]["review_data"] == {"amount": 5}
        inst = await until(s, server, target, "completed")
        assert inst["context"]["data"]["poked_by"] == sender


async def test_send_signal_to_an_unknown_instance_fails_the_step(server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as s:
        iid = await start(
            s,
            server,
            [step("poke", "send_signal", params={"instance_id": "nope", "signal_type": "cancel"})],
        )
        await until(s, server, iid, "failed")


async def test_cancel_an_instance_waiting_for_a_person(server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as s:
        iid = await start(
            s, server, [step("review", wait_for_input={"prompt": "ok?"}), step("after")]
        )
        await until(s, server, iid, "waiting")
        assert (await signal(s, server, iid, "cancel"))[0] == 201
        await until(s, server, iid, "cancelled")
        tree = {
            n["block_id"]: n["state"] for n in await get(s, f"{server.url}/instances/{iid}/tree")
        }
        assert tree["review"] == "cancelled"
        assert tree["after"] == "pending"
