"""Resume cost is flat in history length: load + evaluate after 10 and after 10,000 steps.

An instance of a looping sequence is given a history of N steps (one snapshot write
per step, as the engine writes them: an output row and the moved nodes), then the
work the engine does to resume it — read the snapshot, read the outputs its templates
use, evaluate the tree — is timed, on SQLite and on PostgreSQL.

    .venv/bin/python bench/resume_cost.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.pg_server import fresh_schema, running_server

from orch8.application.commands import NewInstance, NewSequence
from orch8.application.ports.storage import SnapshotWrite, Storage
from orch8.bootstrap.process import Process, build
from orch8.bootstrap.settings import load_settings
from orch8.codec.blocks import read_blocks
from orch8.domain.evaluator import Snapshot, advance
from orch8.domain.instance import InstanceState
from orch8.domain.outputs import BlockOutput
from orch8.domain.references import referenced_outputs
from orch8.domain.tree import Node, NodeState

LOOP = [
    {
        "type": "loop",
        "id": "again",
        "condition": "true",
        "max_iterations": 100000,
        "body": [
            {"type": "step", "id": "work", "handler": "noop", "params": {"n": "{{ outputs.work }}"}}
        ],
    }
]
REPEATS = 200


async def history(process: Process, steps: int) -> tuple[str, float]:
    storage: Storage = process.storage
    seq = await process.use_cases.sequences.create(
        NewSequence(
            tenant_id="b", namespace="default", name=f"r{steps}", blocks=read_blocks(LOOP, "b")
        ),
        caller=None,
    )
    (started,) = await process.use_cases.instances.create_many(
        [NewInstance(sequence_id=seq.id)], caller=None
    )
    iid = started.instance.id
    (claimed,) = await storage.instances.claim_due(datetime.now(UTC), 1)
    assert claimed.id == iid
    ids = process.ids
    writes = []
    for n in range(steps):
        now = datetime.now(UTC)
        loop = Node("again", "loop", state=NodeState.RUNNING, iteration=n)
        work = Node("work", "step", state=NodeState.RUNNING, parent_id="again", attempts=1)
        out = BlockOutput(ids.new_id(), iid, "work", {"n": n}, 1, now, output_size=8)
        writes.append(
            storage.snapshots.commit(
                SnapshotWrite(
                    iid,
                    InstanceState.RUNNING,
                    InstanceState.RUNNING,
                    None,
                    now,
                    nodes=(loop, work),
                    outputs=(out,),
                )
            )
        )
        if len(writes) == 500:
            await asyncio.gather(*writes)
            writes = []
    await asyncio.gather(*writes)
    refs = sorted(referenced_outputs(seq))
    timings = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        loaded = await storage.snapshots.load(iid)
        assert loaded is not None
        instance, nodes = loaded
        latest = await storage.outputs.latest(iid, refs)
        advance(
            seq,
            Snapshot(instance.context, {n.block_id: n for n in nodes}),
            datetime.now(UTC),
            instance_id=iid,
            outputs={k: v.output for k, v in latest.items()},
        )
        timings.append((time.perf_counter() - t0) * 1000)
    return iid, statistics.median(timings)


async def measure(name: str, url: str) -> None:
    for steps in (10, 10_000):
        process = build(load_settings(env={}, overrides={"database_url": url}))
        await process.open()
        _, median_ms = await history(process, steps)
        await process.close()
        print(f"{name:8} resume after {steps:6} steps: {median_ms:.3f} ms (median of {REPEATS})")


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        await measure("sqlite", f"sqlite://{Path(tmp) / 'resume.db'}")
    with running_server() as server:
        async with fresh_schema(server) as url:
            await measure("postgres", url)


if __name__ == "__main__":
    asyncio.run(main())
