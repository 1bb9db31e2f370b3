"""SIGKILL mid-run: after a restart every instance completes and no committed step reruns."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import aiohttp

from tests.e2e.server import ServerProcess
from tests.e2e.test_walking_skeleton import get, post, wait_for_states


async def test_instances_left_running_by_a_killed_server_are_recovered(tmp_path: Path) -> None:
    server = ServerProcess(
        f"sqlite://{tmp_path / 'crash.db'}",
        log_path=tmp_path / "server.log",
        extra_env={"ORCH8_STALE_INSTANCE_THRESHOLD_SECS": "2"},
    )
    server.start()
    try:
        async with aiohttp.ClientSession() as session:
            seq = await post(
                session,
                f"{server.url}/sequences",
                {
                    "tenant_id": "acme",
                    "name": "slow",
                    "blocks": [
                        {"type": "step", "id": "quick", "handler": "noop"},
                        {
                            "type": "step",
                            "id": "slow",
                            "handler": "sleep",
                            "params": {"duration_ms": 1500},
                        },
                        {"type": "step", "id": "last", "handler": "noop"},
                    ],
                },
            )
            ids = [
                (
                    await post(
                        session,
                        f"{server.url}/instances",
                        {"sequence_id": seq["id"], "tenant_id": "acme"},
                    )
                )["id"]
                for _ in range(20)
            ]
            await asyncio.sleep(0.7)  # every instance is inside its slow step now
            running = await get(
                session, f"{server.url}/instances?tenant_id=acme&state=running&limit=100"
            )
            assert running["items"], "expected instances in flight when the server is killed"
            server.kill()
            server.start()
            states = await wait_for_states(session, server.url, ids, {"completed"}, within=30)
            assert set(states.values()) == {"completed"}
            for iid in ids:
                outputs = await get(session, f"{server.url}/instances/{iid}/outputs")
                per_block = Counter(o["block_id"] for o in outputs)
                assert per_block == {"quick": 1, "slow": 1, "last": 1}, per_block
    finally:
        if server.proc is not None:
            server.stop()
