"""In-process engine throughput: no HTTP, just storage + scheduler + runner.

Creates N due instances through the use case, starts the engine, and times until
none is left scheduled or running. Prints instances/s, steps/s and claims made.

    .venv/bin/python bench/engine_throughput.py --instances 5000 [--storage URL]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

from orch8.application.commands import NewInstance, NewSequence
from orch8.application.ports.storage import InstanceFilter, Page
from orch8.bootstrap.process import build
from orch8.bootstrap.settings import load_settings
from orch8.codec.blocks import read_blocks
from orch8.domain.instance import InstanceState


async def run_case(url: str, steps: int, count: int, *, latency: bool = False) -> dict[str, Any]:
    settings = load_settings(env={}, overrides={"database_url": url, "log_level": "warn"})
    process = build(settings)
    await process.open()
    storage, engine = process.storage, process.engine
    catalog, instances = process.use_cases.sequences, process.use_cases.instances
    blocks = read_blocks(
        [{"type": "step", "id": f"s{i}", "handler": "noop"} for i in range(steps)], "blocks"
    )
    seq = await catalog.create(
        NewSequence(tenant_id="bench", namespace="default", name=f"e{steps}", blocks=blocks),
        caller=None,
    )
    ids: list[str] = []
    for start in range(0, count, 1000):
        batch = [NewInstance(sequence_id=seq.id) for _ in range(min(1000, count - start))]
        ids += [s.instance.id for s in await instances.create_many(batch, caller=None)]
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
    result: dict[str, Any] = {
        "instances_per_s": count / elapsed,
        "steps_per_s": count * steps / elapsed,
        "seconds": elapsed,
        "claims": claims,
    }
    if latency:
        gaps: list[float] = []
        for iid in ids:
            outs = await storage.outputs.list_for_instance(iid)
            times = [o.created_at for o in outs]
            gaps += [(b - a).total_seconds() * 1000 for a, b in pairwise(times)]
        q = statistics.quantiles(gaps, n=100)
        result["p50_ms"], result["p99_ms"] = q[49], q[98]
    await process.close()
    return result


def describe(steps: int, r: dict[str, Any]) -> str:
    return (
        f"{steps}-step noop: {r['instances_per_s']:8.0f} instances/s {r['steps_per_s']:8.0f}"
        f" steps/s  ({r['seconds']:.2f} s, {r['claims']} claims)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=5000)
    parser.add_argument("--storage", help="database URL (default: a temporary SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for steps in (1, 3):
            url = args.storage or f"sqlite://{Path(tmp) / f'engine{steps}.db'}"
            print(describe(steps, await run_case(url, steps, args.instances)))


if __name__ == "__main__":
    asyncio.run(main())
