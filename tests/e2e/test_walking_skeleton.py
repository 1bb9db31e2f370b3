"""A new user's first session, against a real `orch8 serve` process on SQLite."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.e2e.server import ServerProcess

THREE_STEPS = [
    {"type": "step", "id": "first", "handler": "noop"},
    {"type": "step", "id": "second", "handler": "log", "params": {"message": "hello"}},
    {"type": "step", "id": "third", "handler": "noop"},
]


async def post(session: aiohttp.ClientSession, url: str, body: Any) -> dict[str, Any]:
    async with session.post(url, json=body) as resp:
        assert resp.status in (200, 201), await resp.text()
        result: dict[str, Any] = await resp.json()
        return result


async def get(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def wait_for_states(
    session: aiohttp.ClientSession, base: str, ids: list[str], wanted: set[str], within: float = 60
) -> dict[str, str]:
    deadline = time.monotonic() + within
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        states = {}
        for iid in ids:
            states[iid] = (await get(session, f"{base}/instances/{iid}"))["state"]
        if all(s in wanted for s in states.values()):
            return states
        await asyncio.sleep(0.2)
    raise AssertionError(f"instances did not reach {wanted}: {sorted(set(states.values()))}")


async def test_hundred_instances_complete_across_a_restart(tmp_path: Path) -> None:
    db = f"sqlite://{tmp_path / 'orch8.db'}"
    log = tmp_path / "server.log"
    server = ServerProcess(db, log_path=log)
    server.start()
    try:
        async with aiohttp.ClientSession() as session:
            seq = await post(
                session,
                f"{server.url}/sequences",
                {
                    "tenant_id": "acme",
                    "namespace": "default",
                    "name": "three",
                    "blocks": THREE_STEPS,
                },
            )
            ids = []
            for n in range(100):
                created = await post(
                    session,
                    f"{server.url}/instances",
                    {
                        "sequence_id": seq["id"],
                        "tenant_id": "acme",
                        "context": {"data": {"n": n}},
                    },
                )
                assert created["deduplicated"] is False
                ids.append(created["id"])
            assert server.stop() == 0  # graceful restart while work may be in flight
            server.start()
            states = await wait_for_states(session, server.url, ids, {"completed"})
            assert set(states.values()) == {"completed"}
            for iid in ids:
                outputs = await get(session, f"{server.url}/instances/{iid}/outputs")
                assert sorted(o["block_id"] for o in outputs) == ["first", "second", "third"]
            listed = await get(
                session, f"{server.url}/instances?tenant_id=acme&state=completed&limit=1000"
            )
            assert len(listed["items"]) == 100
    finally:
        if server.proc is not None:
            assert server.stop() == 0


async def test_a_delayed_step_sleeps_in_storage_and_survives_a_restart(tmp_path: Path) -> None:
    db = f"sqlite://{tmp_path / 'orch8.db'}"
    with ServerProcess(db, log_path=tmp_path / "server.log") as server:
        async with aiohttp.ClientSession() as session:
            seq = await post(
                session,
                f"{server.url}/sequences",
                {
                    "tenant_id": "acme",
                    "name": "delayed",
                    "blocks": [
                        {"type": "step", "id": "before", "handler": "noop"},
                        {
                            "type": "step",
                            "id": "later",
                            "handler": "noop",
                            "delay": {"duration": 3000},
                        },
                    ],
                },
            )
            iid = (
                await post(
                    session,
                    f"{server.url}/instances",
                    {"sequence_id": seq["id"], "tenant_id": "acme"},
                )
            )["id"]
            deadline = time.monotonic() + 10
            while True:
                inst = await get(session, f"{server.url}/instances/{iid}")
                outputs = await get(session, f"{server.url}/instances/{iid}/outputs")
                if len(outputs) == 1 and inst["state"] == "scheduled":
                    break
                assert time.monotonic() < deadline, (inst, outputs)
                await asyncio.sleep(0.1)
            # asleep in storage, not in memory: due three seconds after the first step
            assert inst["next_fire_at"] > outputs[0]["created_at"]
            assert server.stop() == 0
            server.start()
            await wait_for_states(session, server.url, [iid], {"completed"}, within=20)
            outputs = await get(session, f"{server.url}/instances/{iid}/outputs")
            assert [o["block_id"] for o in outputs] == ["before", "later"]
            first, second = (o["created_at"] for o in outputs)
            from datetime import datetime

            gap = datetime.fromisoformat(second) - datetime.fromisoformat(first)
            assert gap.total_seconds() >= 3.0


async def test_retry_with_backoff_then_the_instance_fails(tmp_path: Path) -> None:
    db = f"sqlite://{tmp_path / 'orch8.db'}"
    with ServerProcess(db, log_path=tmp_path / "server.log") as server:
        async with aiohttp.ClientSession() as session:
            seq = await post(
                session,
                f"{server.url}/sequences",
                {
                    "tenant_id": "acme",
                    "name": "flaky",
                    "blocks": [
                        {
                            "type": "step",
                            "id": "boom",
                            "handler": "fail",
                            "params": {"message": "nope"},
                            "retry": {
                                "max_attempts": 3,
                                "initial_backoff": 300,
                                "max_backoff": 5000,
                                "backoff_multiplier": 2.0,
                            },
                        }
                    ],
                },
            )
            iid = (
                await post(
                    session,
                    f"{server.url}/instances",
                    {"sequence_id": seq["id"], "tenant_id": "acme"},
                )
            )["id"]
            await wait_for_states(session, server.url, [iid], {"failed"}, within=20)
            outputs = await get(session, f"{server.url}/instances/{iid}/outputs")
            assert [o["attempt"] for o in outputs] == [1, 2, 3]
            assert all(o["output"]["error"] == "nope" for o in outputs)
            from datetime import datetime

            times = [datetime.fromisoformat(o["created_at"]) for o in outputs]
            assert (times[1] - times[0]).total_seconds() >= 0.3
            assert (times[2] - times[1]).total_seconds() >= 0.6
            tree = await get(session, f"{server.url}/instances/{iid}/tree")
            assert [(n["block_id"], n["state"]) for n in tree] == [("boom", "failed")]
