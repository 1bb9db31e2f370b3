"""Many live SSE streams against one orch8 server: how fast they open, how quickly
events arrive, and how responsive the server stays while they are open.

Creates a sequence of `--steps` sleep steps and N instances due `--delay` seconds
from now, opens one `GET /instances/{id}/stream` per instance, probes
/health/live and GET /instances/{id} while the streams idle and while the
instances run, and reads every stream to its `done` event. Event lag is the time
from an output's `created_at` to its arrival at the client (same host, same clock).

    .venv/bin/python bench/sse_streams.py --url http://127.0.0.1:8080 --streams 200
    .venv/bin/python bench/sse_streams.py --serve --streams 250   # own server, temp SQLite
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

ORCH8 = str(Path(sys.executable).parent / "orch8")


def percentiles(samples: list[float]) -> str:
    if not samples:
        return "no samples"
    ms = sorted(s * 1000 for s in samples)

    def at(q: float) -> float:
        return ms[min(len(ms) - 1, int(q * len(ms)))]

    return f"p50 {at(0.5):7.1f} ms  p95 {at(0.95):7.1f} ms  max {ms[-1]:7.1f} ms  (n={len(ms)})"


async def frames(resp: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, Any]]:
    event, data = "message", ""
    async for raw in resp.content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if data:
                yield event, json.loads(data)
            event, data = "message", ""
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()


class Stream:
    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        self.opened_in = 0.0
        self.first_event = asyncio.Event()
        self.lags: list[float] = []
        self.outputs = 0
        self.done: str | None = None


async def watch(session: aiohttp.ClientSession, base: str, stream: Stream, poll_ms: int) -> None:
    t0 = time.perf_counter()
    url = f"{base}/api/v1/instances/{stream.instance_id}/stream?poll_ms={poll_ms}"
    async with session.get(url) as resp:
        if resp.status != 200:
            raise RuntimeError(f"{resp.status}: {await resp.text()}")
        async for name, data in frames(resp):
            if not stream.first_event.is_set():
                stream.opened_in = time.perf_counter() - t0
                stream.first_event.set()
            if name == "output":
                created = datetime.fromisoformat(data["created_at"])
                stream.lags.append((datetime.now(UTC) - created).total_seconds())
                stream.outputs += 1
            elif name == "done":
                stream.done = data["state"]
            elif name == "error":
                raise RuntimeError(data["error"])


async def probe(
    session: aiohttp.ClientSession, urls: list[str], until: Callable[[], bool]
) -> list[list[float]]:
    samples: list[list[float]] = [[] for _ in urls]
    while not until():
        for url, found in zip(urls, samples, strict=True):
            t0 = time.perf_counter()
            async with session.get(url) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"{url}: {resp.status}")
            found.append(time.perf_counter() - t0)
        await asyncio.sleep(0.01)
    return samples


async def run(
    base: str, count: int, steps: int, step_ms: int, delay_s: float, poll_ms: int
) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        blocks = [
            {"type": "step", "id": f"s{i}", "handler": "sleep", "params": {"duration_ms": step_ms}}
            for i in range(steps)
        ]
        name = f"sse-bench-{int(time.time() * 1000)}"
        async with session.post(
            f"{base}/api/v1/sequences",
            json={"tenant_id": "bench", "namespace": "default", "name": name, "blocks": blocks},
        ) as resp:
            seq_id = (await resp.json())["id"]
        fire = (datetime.now(UTC) + timedelta(seconds=delay_s)).isoformat()
        ids = []
        for _ in range(count):
            body = {"sequence_id": seq_id, "next_fire_at": fire}
            async with session.post(f"{base}/api/v1/instances", json=body) as resp:
                ids.append((await resp.json())["id"])
        streams = [Stream(i) for i in ids]
        t0 = time.perf_counter()
        tasks = [asyncio.create_task(watch(session, base, s, poll_ms)) for s in streams]
        await asyncio.wait_for(asyncio.gather(*(s.first_event.wait() for s in streams)), 60)
        open_all = time.perf_counter() - t0
        urls = [f"{base}/health/live", f"{base}/api/v1/instances/{ids[0]}"]
        idle = await probe(session, urls, lambda: datetime.now(UTC) >= datetime.fromisoformat(fire))
        running = asyncio.gather(*tasks)
        t_run = time.perf_counter()
        busy = await probe(session, urls, running.done)
        await running
        run_s = time.perf_counter() - t_run

    completed = sum(s.done == "completed" for s in streams)
    print(f"{count} streams, {steps} x {step_ms} ms steps, poll_ms={poll_ms}")
    print(f"  all streams open (first event) in {open_all:.2f} s")
    print(f"  time to first event      {percentiles([s.opened_in for s in streams])}")
    print("  streams open, idle:")
    print(f"    GET /health/live       {percentiles(idle[0])}")
    print(f"    GET /instances/{{id}}    {percentiles(idle[1])}")
    print(f"  instances running ({run_s:.2f} s to the last done):")
    print(f"    GET /health/live       {percentiles(busy[0])}")
    print(f"    GET /instances/{{id}}    {percentiles(busy[1])}")
    print(f"  output event lag         {percentiles([lag for s in streams for lag in s.lags])}")
    print(f"  outputs received: {sum(s.outputs for s in streams)} of {count * steps}")
    print(f"  streams ended with done=completed: {completed} of {count}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def own_server(workdir: Path) -> Any:
    port = free_port()
    env = {
        **os.environ,
        "ORCH8_DATABASE_URL": f"sqlite://{workdir / 'bench.db'}",
        "ORCH8_HTTP_ADDR": f"127.0.0.1:{port}",
        "ORCH8_LOG_LEVEL": "warn",
    }
    log = (workdir / "server.log").open("wb")
    proc = subprocess.Popen([ORCH8, "serve"], env=env, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((workdir / "server.log").read_text()) from None
                time.sleep(0.05)
        yield base
    finally:
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        print(f"  server stopped (exit {code}) in {time.perf_counter() - t0:.2f} s")
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--serve", action="store_true", help="start orch8 serve on temp SQLite")
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--step-ms", type=int, default=200)
    parser.add_argument("--delay", type=float, default=3.0, help="seconds until instances run")
    parser.add_argument("--poll-ms", type=int, default=500)
    args = parser.parse_args()
    bench = (args.streams, args.steps, args.step_ms, args.delay, args.poll_ms)
    if not args.serve:
        asyncio.run(run(args.url.rstrip("/"), *bench))
        return
    with tempfile.TemporaryDirectory() as tmp, own_server(Path(tmp)) as base:
        asyncio.run(run(base, *bench))


if __name__ == "__main__":
    main()
