"""External-worker round trip: tasks/s with N worker processes.

Every instance of a 1-step sequence whose handler is `bench` becomes a worker task; N
worker processes (`orch8.client.Worker`, each with `--concurrency` slots, long-polling)
claim it, run a no-op handler and complete it, and the engine advances the instance to
`completed`. The figure is tasks/s for the whole round trip — create → claim → complete →
instance advanced — measured from the first create to the last completion, with the
instances created as fast as the client can (32 requests in flight). Per-task latency
(the instance's `created_at` → `updated_at` at completion, server clock) is reported
as p50/p99.

    .venv/bin/python bench/workers.py                       # 4 workers, SQLite
    .venv/bin/python bench/workers.py --workers 8 --tasks 5000 --postgres
    .venv/bin/python bench/workers.py --url http://127.0.0.1:8080   # a running server
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.server import ServerProcess

from orch8.client import Orch8Client, Task, Worker

TENANT = "bench-workers"


# -- the worker processes ---------------------------------------------------------------


def run_worker(url: str, worker_id: str, concurrency: int) -> None:
    worker = Worker(url, worker_id, concurrency=concurrency, poll_wait_ms=5_000)

    @worker.handler("bench")
    async def handle(task: Task) -> dict[str, Any]:
        return {"by": worker_id}

    asyncio.run(worker.run_until_signal(grace_s=5))


def start_workers(url: str, count: int, concurrency: int) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--as-worker",
                url,
                f"bench-{n}",
                "--concurrency",
                str(concurrency),
            ]
        )
        for n in range(count)
    ]


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


# -- the measurement ---------------------------------------------------------------------


def percentile(ms: list[float], q: float) -> float:
    ordered = sorted(ms)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def completed_instances(client: Orch8Client, sequence_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        page = await client.list_instances(
            sequence_id=sequence_id, states=["completed"], offset=len(found), limit=1000
        )
        found.extend(dict(item) for item in page["items"])
        if not page["has_more"] or not page["items"]:
            return found


async def all_tasks(client: Orch8Client) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        page = await client.list_tasks(handler_name="bench", offset=len(found), limit=1000)
        found.extend(page)
        if len(page) < 1000:
            return found


async def wait_states(
    client: Orch8Client, sequence_id: str, open_states: list[str], within: float
) -> None:
    """Until no instance of the sequence is in `open_states` (any failure is fatal)."""
    deadline = time.monotonic() + within
    while True:
        failed = await client.list_instances(sequence_id=sequence_id, states=["failed"], limit=1)
        if failed["items"]:
            raise RuntimeError(f"an instance failed: {failed['items'][0]}")
        left = await client.list_instances(sequence_id=sequence_id, states=open_states, limit=1)
        if not left["items"]:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"instances still {open_states} after {within}s")
        await asyncio.sleep(0.02)


async def new_sequence(client: Orch8Client, label: str) -> str:
    return await client.create_sequence(
        {
            "tenant_id": TENANT,
            "name": f"{label}-{time.time_ns()}",
            "blocks": [{"type": "step", "id": "s", "handler": "bench"}],
        }
    )


async def create_many(client: Orch8Client, seq: str, count: int) -> float:
    """Create `count` instances, 32 requests in flight; the seconds it took."""
    gate = asyncio.Semaphore(32)

    async def create() -> None:
        async with gate:
            await client.create_instance(seq)

    started = time.monotonic()
    await asyncio.gather(*(create() for _ in range(count)))
    return time.monotonic() - started


async def latencies_ms(client: Orch8Client, seq: str, count: int) -> list[float]:
    """created_at → completion (`updated_at`) of each completed instance, server clock."""
    done = await completed_instances(client, seq)
    assert len(done) == count, (len(done), count)
    return [
        (
            datetime.fromisoformat(i["updated_at"]) - datetime.fromisoformat(i["created_at"])
        ).total_seconds()
        * 1000
        for i in done
    ]


async def streaming(client: Orch8Client, count: int) -> str:
    """Create as fast as possible while the workers run: the whole round trip."""
    seq = await new_sequence(client, "stream")
    started = time.monotonic()
    created = await create_many(client, seq, count)
    await wait_states(client, seq, ["scheduled", "running", "waiting"], within=600)
    total = time.monotonic() - started
    lat = await latencies_ms(client, seq, count)
    return (
        f"round trip, creating while workers run: {count / total:7.0f} tasks/s "
        f"({count} in {total:.1f}s; the creates alone ran at {count / created:.0f}/s; "
        f"created → completed p50 {percentile(lat, 0.5):.0f} ms, "
        f"p99 {percentile(lat, 0.99):.0f} ms)"
    )


async def one_at_a_time(client: Orch8Client, count: int) -> str:
    """Unloaded latency: one instance at a time, idle workers long-polling; with the
    worker part split out of it (task created → claimed → completed → instance advanced;
    server clock). An instance's first step waits for the scheduler's tick."""
    seq = await new_sequence(client, "single")
    parts: dict[str, list[float]] = {"total": [], "wake": [], "run": [], "advance": []}
    for _ in range(count):
        created = await client.create_instance(seq)
        inst = await client.wait_for_instance(created.id, timeout_s=30, interval_s=0.005)
        (task,) = await client.list_tasks(instance_id=created.id)
        at = {k: datetime.fromisoformat(task[k]) for k in ("created_at", "claimed_at")}
        at["completed_at"] = datetime.fromisoformat(task["completed_at"])
        born = datetime.fromisoformat(inst["created_at"])
        advanced = datetime.fromisoformat(inst["updated_at"])
        for name, a, b in (
            ("total", born, advanced),
            ("wake", at["created_at"], at["claimed_at"]),
            ("run", at["claimed_at"], at["completed_at"]),
            ("advance", at["completed_at"], advanced),
        ):
            parts[name].append((b - a).total_seconds() * 1000)

    def p(name: str) -> str:
        return f"p50 {percentile(parts[name], 0.5):.1f} / p99 {percentile(parts[name], 0.99):.1f}"

    return (
        f"one task at a time (n={count}), ms: created → completed {p('total')}; "
        f"task created → claimed (long-poll wake) {p('wake')}; claimed → completed "
        f"{p('run')}; completed → instance advanced {p('advance')}"
    )


async def bench(args: argparse.Namespace) -> None:
    async with contextlib.AsyncExitStack() as stack:
        url = args.url or await stack.enter_async_context(own_server(args.postgres))
        store = "given server" if args.url else ("PostgreSQL" if args.postgres else "SQLite")
        print(f"{args.workers} worker processes x {args.concurrency} slots, {store}")
        async with Orch8Client(url, tenant_id=TENANT) as client:
            # 1. A backlog of pending tasks, then the workers: claim → complete → advance.
            backlog = await new_sequence(client, "backlog")
            await create_many(client, backlog, args.tasks)
            await wait_states(client, backlog, ["scheduled", "running"], within=600)
            procs = start_workers(url, args.workers, args.concurrency)
            stack.callback(stop_workers, procs)
            await wait_states(client, backlog, ["scheduled", "running", "waiting"], within=600)
            # Server clock, from the first claim to the last instance advanced, so the
            # workers' start-up is not counted.
            claims = await all_tasks(client)
            first = min(datetime.fromisoformat(t["claimed_at"]) for t in claims)
            done = await completed_instances(client, backlog)
            last = max(datetime.fromisoformat(i["updated_at"]) for i in done)
            drained = (last - first).total_seconds()
            print(
                f"draining a backlog:     {args.tasks / drained:7.0f} tasks/s "
                f"(claim → complete → instance advanced; {args.tasks} in {drained:.1f}s)"
            )
            # 2. Creating while the workers run: the whole round trip.
            print(await streaming(client, args.tasks))
            # 3. Unloaded latency.
            print(await one_at_a_time(client, 50))


@contextlib.asynccontextmanager
async def own_server(postgres: bool) -> AsyncIterator[str]:
    """`orch8 serve` on a temporary SQLite file, or on a fresh PostgreSQL schema."""
    with tempfile.TemporaryDirectory(prefix="orch8-bench-workers-") as tmp:
        log = Path(tmp) / "server.log"
        if not postgres:
            with ServerProcess(f"sqlite://{Path(tmp) / 'bench.db'}", log_path=log) as server:
                yield server.url
            return
        from tests.pg_server import fresh_schema, running_server

        with running_server() as pg:
            async with fresh_schema(pg) as db_url:
                with ServerProcess(db_url, log_path=log) as server:
                    yield server.url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--as-worker", nargs=2, metavar=("URL", "ID"), help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16, help="slots per worker")
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--url", help="an orch8 server already running")
    parser.add_argument("--postgres", action="store_true", help="own server on PostgreSQL")
    args = parser.parse_args()
    if args.as_worker:
        run_worker(args.as_worker[0], args.as_worker[1], args.concurrency)
        return
    asyncio.run(bench(args))


if __name__ == "__main__":
    main()
