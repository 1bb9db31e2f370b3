"""Three `orch8 serve` processes on one PostgreSQL share the work, and survive losing one."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path

import aiohttp

from tests.e2e.server import ServerProcess
from tests.e2e.test_walking_skeleton import post

STEPS = [f"s{i}" for i in range(5)]
SEQUENCE = {
    "tenant_id": "scale",
    "name": "five",
    "blocks": [
        {"type": "step", "id": s, "handler": "log", "params": {"message": "exec"}} for s in STEPS
    ],
}


def executions(log: Path) -> list[tuple[str, str]]:
    """(instance, block) of every `log` step execution, in the order the process ran them."""
    found = []
    for line in log.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("message") == "exec":
            found.append((record["instance_id"], record["block_id"]))
    return found


async def start_instances(url: str, count: int) -> list[str]:
    async with aiohttp.ClientSession() as session:
        seq = await post(session, f"{url}/sequences", SEQUENCE)
        sem = asyncio.Semaphore(32)

        async def one() -> str:
            async with sem:
                created = await post(
                    session, f"{url}/instances", {"sequence_id": seq["id"], "tenant_id": "scale"}
                )
                return str(created["id"])

        return list(await asyncio.gather(*(one() for _ in range(count))))


async def unfinished(url: str) -> int:
    async with aiohttp.ClientSession() as session:
        total = 0
        for state in ("scheduled", "running", "waiting", "failed"):
            async with session.get(
                f"{url}/instances", params={"tenant_id": "scale", "state": state, "limit": "1000"}
            ) as r:
                total += len((await r.json())["items"])
        return total


async def wait_all_done(url: str, within: float) -> None:
    deadline = time.monotonic() + within
    while await unfinished(url):
        assert time.monotonic() < deadline, "instances did not all complete"
        await asyncio.sleep(0.25)


def servers(url: str, tmp_path: Path, tag: str) -> list[ServerProcess]:
    env = {"ORCH8_STALE_INSTANCE_THRESHOLD_SECS": "3", "ORCH8_LOG_LEVEL": "info"}
    return [
        ServerProcess(url, log_path=tmp_path / f"{tag}{n}.log", extra_env=env) for n in range(3)
    ]


async def test_three_processes_run_every_step_exactly_once(
    postgres_schema_url: str, tmp_path: Path
) -> None:
    group = servers(postgres_schema_url, tmp_path, "a")
    for server in group:
        server.start()
    try:
        ids = await start_instances(group[0].url, 3000)
        await wait_all_done(group[1].url, within=120)
    finally:
        for server in group:
            if server.proc is not None:
                assert server.stop() == 0
    per_process = [executions(s.log_path) for s in group]
    counts = Counter(e for runs in per_process for e in runs)
    assert set(counts) == {(i, s) for i in ids for s in STEPS}  # none missing
    assert set(counts.values()) == {1}  # none twice
    assert all(runs for runs in per_process), "every process took a share of the work"


async def test_a_killed_process_loses_no_committed_step(
    postgres_schema_url: str, tmp_path: Path
) -> None:
    group = servers(postgres_schema_url, tmp_path, "b")
    for server in group:
        server.start()
    victim = group[2]
    try:
        ids = await start_instances(group[0].url, 3000)
        await asyncio.sleep(0.3)
        victim.kill()
        await wait_all_done(group[0].url, within=120)
    finally:
        for server in group:
            if server.proc is not None:
                assert server.stop() == 0
    survivors = [e for s in group[:2] for e in executions(s.log_path)]
    killed = executions(victim.log_path)
    counts = Counter(survivors + killed)
    assert set(counts) == {(i, s) for i in ids for s in STEPS}
    # A step may run twice only if the killed process was running it when it died:
    # then it is that process's last step of that instance.
    last_by_victim: dict[str, str] = {}
    for instance, block in killed:
        last_by_victim[instance] = block
    for (instance, block), n in counts.items():
        if n > 1:
            assert n == 2, (instance, block, n)
            assert last_by_victim.get(instance) == block, (instance, block)
    assert killed, "the killed process had taken work before it died"
