"""SIGTERM with work in flight, against real `orch8 serve` processes on one SQLite file.

The server drains: it claims nothing more, `/health/ready` answers 503, running steps
finish (or, past `shutdown_grace_period_secs`, are cancelled and handed back), and the
process exits 0. A restart completes every instance, and no step whose result was
recorded runs again. Executions are counted from the `log` handler's JSON lines (one
per run of a `log` step, with its instance and block) and from the outputs.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from tests.e2e.server import ServerProcess
from tests.e2e.test_walking_skeleton import get, post

TENANT = "drain"
MARK = "step-executed"


def log_step(block_id: str) -> dict[str, Any]:
    return {"type": "step", "id": block_id, "handler": "log", "params": {"message": MARK}}


def sleep_step(block_id: str, ms: int) -> dict[str, Any]:
    return {"type": "step", "id": block_id, "handler": "sleep", "params": {"duration_ms": ms}}


def executions(*logs: Path) -> list[tuple[str, str, float]]:
    """(instance_id, block_id, unix time) of every `log` step run in these server logs."""
    found = []
    for log in logs:
        for line in log.read_text().splitlines():
            if MARK not in line:
                continue
            entry = json.loads(line)
            if entry.get("message") == MARK:
                at = datetime.fromisoformat(entry["timestamp"]).timestamp()
                found.append((entry["instance_id"], entry["block_id"], at))
    return found


async def count_in_state(session: aiohttp.ClientSession, url: str, state: str) -> int:
    page = await get(session, f"{url}/instances?tenant_id={TENANT}&state={state}&limit=1000")
    return len(page["items"])


async def start_batch(
    session: aiohttp.ClientSession, url: str, blocks: list[dict[str, Any]], n: int
) -> None:
    seq = await post(
        session, f"{url}/sequences", {"tenant_id": TENANT, "name": "drain", "blocks": blocks}
    )
    batch = {"instances": [{"sequence_id": seq["id"], "tenant_id": TENANT}] * n}
    assert (await post(session, f"{url}/instances/batch", batch)) == {"count": n}


async def sigterm_and_watch_ready(server: ServerProcess) -> tuple[int, float, Counter[int]]:
    """SIGTERM, then poll `/health/ready` until the process is gone: (exit code,
    seconds to exit, statuses seen)."""
    assert server.proc is not None
    proc = server.proc
    seen: Counter[int] = Counter()
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    timeout = aiohttp.ClientTimeout(total=1)
    async with aiohttp.ClientSession(timeout=timeout) as probe:
        while proc.poll() is None and time.monotonic() - sent < 60:
            try:
                async with probe.get(f"{server.url}/health/ready") as resp:
                    seen[resp.status] += 1
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.02)
    code = await asyncio.to_thread(proc.wait, 30)
    elapsed = time.monotonic() - sent
    server.proc = None
    return code, elapsed, seen


async def test_sigterm_drains_and_a_restart_finishes_every_instance(tmp_path: Path) -> None:
    grace = 10
    db = f"sqlite://{tmp_path / 'drain.db'}"
    env = {"ORCH8_SHUTDOWN_GRACE_PERIOD_SECS": str(grace), "ORCH8_LOG_LEVEL": "info"}
    first = ServerProcess(db, log_path=tmp_path / "first.log", extra_env=env)
    second = ServerProcess(db, log_path=tmp_path / "second.log", extra_env=env)
    blocks = [
        log_step("a"),
        sleep_step("s1", 800),
        log_step("b"),
        sleep_step("s2", 800),
        log_step("c"),
    ]
    n = 500
    first.start()
    try:
        async with aiohttp.ClientSession() as session:
            await start_batch(session, first.url, blocks, n)
            deadline = time.monotonic() + 20
            while await count_in_state(session, first.url, "completed") == 0:
                assert time.monotonic() < deadline, "no instance completed"
                await asyncio.sleep(0.1)
            assert await count_in_state(session, first.url, "running") > 0
            sigterm_at = time.time()
            code, elapsed, seen = await sigterm_and_watch_ready(first)
            assert code == 0, first.log_path.read_text()[-3000:]
            assert elapsed < grace + 3, elapsed
            assert seen[503] > 0, seen  # draining: the load balancer is told to go away
            first_log = first.log_path.read_text()
            assert "draining" in first_log
            assert "did not reach a step boundary" not in first_log  # all finished in grace

            # No step started after SIGTERM: a `log` step follows each sleep, so one run
            # by a draining server would be logged at least a sleep's length later.
            ran_before = executions(first.log_path)
            late = [e for e in ran_before if e[2] > sigterm_at + 0.5]
            assert not late, late[:5]

            second.start()
            deadline = time.monotonic() + 45
            while (done := await count_in_state(session, second.url, "completed")) < n:
                assert time.monotonic() < deadline, f"{done} of {n} completed after the restart"
                await asyncio.sleep(0.25)

            ran = Counter(
                (iid, block) for iid, block, _ in executions(first.log_path, second.log_path)
            )
            assert len({iid for iid, _ in ran}) == n
            assert set(ran.values()) == {1}, [k for k, v in ran.items() if v > 1][:5]
            assert len(ran) == 3 * n  # a, b and c of every instance, once each
            assert ran_before and len(ran_before) < 3 * n  # the restart did part of the work

            page = await get(session, f"{second.url}/instances?tenant_id={TENANT}&limit=1000")
            sem = asyncio.Semaphore(16)

            async def outputs(iid: str) -> Counter[str]:
                async with sem:
                    rows = await get(session, f"{second.url}/instances/{iid}/outputs")
                return Counter(r["block_id"] for r in rows)

            counts = await asyncio.gather(*(outputs(i["id"]) for i in page["items"]))
            expected = Counter({"a": 1, "s1": 1, "b": 1, "s2": 1, "c": 1})
            assert all(c == expected for c in counts), [c for c in counts if c != expected][:3]
    finally:
        for server in (first, second):
            if server.proc is not None:
                server.stop()


async def test_steps_past_the_grace_period_are_cancelled_and_handed_back(tmp_path: Path) -> None:
    """Grace 1 s, steps of 4 s: SIGTERM exits 0 about a second later, and the instances
    are `scheduled` again at once (not after the stale threshold): a restart runs them."""
    db = f"sqlite://{tmp_path / 'forced.db'}"
    env = {"ORCH8_SHUTDOWN_GRACE_PERIOD_SECS": "1", "ORCH8_STALE_INSTANCE_THRESHOLD_SECS": "300"}
    first = ServerProcess(db, log_path=tmp_path / "first.log", extra_env=env)
    n = 10
    first.start()
    try:
        async with aiohttp.ClientSession() as session:
            await start_batch(session, first.url, [log_step("a"), sleep_step("slow", 4000)], n)
            deadline = time.monotonic() + 20
            while len(executions(first.log_path)) < n:  # `a` recorded: `slow` runs next
                assert time.monotonic() < deadline, "instances did not start"
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            code, elapsed, seen = await sigterm_and_watch_ready(first)
            assert code == 0
            assert elapsed < 1 + 3, elapsed
            assert seen[503] > 0, seen
            assert "did not reach a step boundary" in first.log_path.read_text()

            first.start()  # the same database; the stale threshold (300 s) is not waited for
            assert (
                await count_in_state(session, first.url, "running")
                + await count_in_state(session, first.url, "scheduled")
                == n
            )
            deadline = time.monotonic() + 20
            while await count_in_state(session, first.url, "completed") < n:
                assert time.monotonic() < deadline, "handed-back instances did not complete"
                await asyncio.sleep(0.2)
            ran = Counter((iid, block) for iid, block, _ in executions(first.log_path))
            assert set(ran.values()) == {1} and len(ran) == n  # `a` was recorded: not rerun
    finally:
        if first.proc is not None:
            first.stop()
