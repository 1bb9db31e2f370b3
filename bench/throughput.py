"""End-to-end throughput: N instances of a 1-step and a 3-step noop sequence.

Instances are created with a common `next_fire_at` a little in the future, so the figure
measures the engine (claim → run → persist), not the HTTP create path, which is reported
separately. Against a running server: `--url http://127.0.0.1:8080`; otherwise the script
starts `orch8 serve` on a fresh SQLite file and stops it afterwards.

    .venv/bin/python bench/throughput.py --instances 2000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_ready(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(f"{url}/health/ready") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise RuntimeError("server did not become ready")


async def run_case(url: str, steps: int, count: int, tenant: str) -> dict[str, float]:
    blocks = [{"type": "step", "id": f"s{i}", "handler": "noop"} for i in range(steps)]
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{url}/sequences",
            json={"tenant_id": tenant, "name": f"bench-{steps}-{time.time_ns()}", "blocks": blocks},
        ) as resp:
            seq_id = (await resp.json())["id"]
        sem = asyncio.Semaphore(32)

        async def create(body: dict[str, object]) -> None:
            async with sem, session.post(f"{url}/instances", json=body) as r:
                assert r.status == 201, await r.text()

        # Estimate the create rate, then give every instance one common fire time just after
        # the last create, so the run window measures the engine alone.
        probe = {"sequence_id": seq_id, "tenant_id": tenant}
        started = time.perf_counter()
        await asyncio.gather(*(create(probe) for _ in range(100)))
        rate = 100 / (time.perf_counter() - started)
        lead = count / rate * 1.5 + 1.0
        fire_at = datetime.now(UTC) + timedelta(seconds=lead)
        body = {"sequence_id": seq_id, "tenant_id": tenant, "next_fire_at": fire_at.isoformat()}
        started = time.perf_counter()
        await asyncio.gather(*(create(body) for _ in range(count)))
        create_s = time.perf_counter() - started
        wait = (fire_at - datetime.now(UTC)).total_seconds()
        if wait < 0:
            print(f"  warning: creation overran the fire time by {-wait:.2f} s")
        await asyncio.sleep(max(wait, 0))
        t0 = time.perf_counter()
        while True:
            async with session.get(
                f"{url}/instances",
                params={"sequence_id": seq_id, "state": "scheduled,running", "limit": "1"},
            ) as r:
                page = await r.json()
            if not page["items"]:
                break
            await asyncio.sleep(0.02)
        run_s = time.perf_counter() - t0
    return {
        "create_per_s": count / create_s,
        "instances_per_s": count / run_s,
        "steps_per_s": count * steps / run_s,
        "seconds": run_s,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url")
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--storage", default=None, help="database URL for the self-started server")
    args = parser.parse_args()
    proc = None
    url = args.url
    tmp = tempfile.TemporaryDirectory()
    if url is None:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "ORCH8_HTTP_ADDR": f"127.0.0.1:{port}",
            "ORCH8_DATABASE_URL": args.storage or f"sqlite://{Path(tmp.name) / 'bench.db'}",
            "ORCH8_LOG_LEVEL": "warn",
        }
        orch8 = str(Path(sys.executable).parent / "orch8")
        proc = subprocess.Popen([orch8, "serve"], env=env)  # noqa: ASYNC220
        await wait_ready(url)
    try:
        print(f"server {url}, {args.instances} instances per case")
        for steps in (1, 3):
            r = await run_case(url, steps, args.instances, tenant=f"bench{steps}")
            print(
                f"{steps}-step noop: {r['instances_per_s']:8.0f} instances/s"
                f" {r['steps_per_s']:8.0f} steps/s"
                f"  ({r['seconds']:.2f} s; HTTP create {r['create_per_s']:.0f}/s)"
            )
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        tmp.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
