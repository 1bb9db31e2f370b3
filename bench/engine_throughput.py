"""In-process engine throughput: no HTTP, just storage + scheduler + runner.

Creates N due instances straight through the use case, starts the engine, and times until
none is left scheduled or running. Prints instances/s, steps/s and claims/s.

    .venv/bin/python bench/engine_throughput.py --instances 5000 --storage sqlite:///tmp/e.db
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from orch8.application.commands import NewInstance, NewSequence
from orch8.application.ports.storage import InstanceFilter, Page
from orch8.bootstrap.containers import build_container
from orch8.bootstrap.settings import load_settings
from orch8.codec.blocks import read_blocks
from orch8.domain.instance import InstanceState


async def run_case(url: str, steps: int, count: int) -> None:
    settings = load_settings(env={}, overrides={"database_url": url, "log_level": "warn"})
    container = build_container(settings)
    storage = container.storage()
    await storage.migrate()
    catalog, instances, engine = container.sequences(), container.instances(), container.engine()
    blocks = read_blocks(
        [{"type": "step", "id": f"s{i}", "handler": "noop"} for i in range(steps)], "blocks"
    )
    seq = await catalog.create(
        NewSequence(tenant_id="bench", namespace="default", name=f"e{steps}", blocks=blocks),
        caller=None,
    )
    for start in range(0, count, 1000):
        batch = [NewInstance(sequence_id=seq.id) for _ in range(min(1000, count - start))]
        await instances.create_many(batch, caller=None)
    t0 = time.perf_counter()
    await engine.start()
    live = InstanceFilter(
        sequence_id=seq.id, states=(InstanceState.SCHEDULED, InstanceState.RUNNING)
    )
    while await storage.instances.query(live, Page(0, 1)):
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - t0
    claims = engine.scheduler.claims_made
    await engine.stop()
    await storage.close()
    print(
        f"{steps}-step noop: {count / elapsed:8.0f} instances/s {count * steps / elapsed:8.0f}"
        f" steps/s  ({elapsed:.2f} s, {claims} claims, {claims / elapsed:.0f} claims/s)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=5000)
    parser.add_argument("--storage", help="database URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for steps in (1, 3):
            url = args.storage or f"sqlite://{Path(tmp) / f'engine{steps}.db'}"
            await run_case(url, steps, args.instances)


if __name__ == "__main__":
    asyncio.run(main())
