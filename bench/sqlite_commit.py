"""SQLite snapshot commits: group commit vs one transaction per commit.

N instances are created `running`; then N snapshot writes (running -> completed,
with a new context, one execution-tree node and one output each) are committed
concurrently with asyncio.gather, and the wall time until every commit is
acknowledged is reported. Each figure uses a fresh database file in a temp dir.

    .venv/bin/python bench/sqlite_commit.py --commits 2000 --synchronous FULL
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from orch8.adapters.sqlite import SqliteStorage
from orch8.application.ports.storage import SnapshotWrite
from orch8.domain.context import ExecutionContext
from orch8.domain.instance import Instance, InstanceState, Priority
from orch8.domain.outputs import BlockOutput
from orch8.domain.sequence import Sequence, StepBlock
from orch8.domain.tree import Node, NodeState


async def run(path: Path, commits: int, synchronous: str, max_batch: int) -> float:
    store = SqliteStorage(str(path), synchronous=synchronous, max_commit_batch=max_batch)
    await store.migrate()
    now = datetime.now(UTC)
    seq = Sequence(
        id="seq-1",
        tenant_id="bench",
        namespace="default",
        name="bench",
        version=1,
        blocks=(StepBlock(id="s1", handler="noop"),),
        created_at=now,
    )
    await store.sequences.create(seq)
    instances = [
        Instance(
            id=f"inst-{n:06d}",
            sequence_id=seq.id,
            tenant_id="bench",
            namespace="default",
            state=InstanceState.RUNNING,
            next_fire_at=None,
            priority=Priority.NORMAL,
            timezone="UTC",
            created_at=now,
            updated_at=now,
            context=ExecutionContext(data={"n": n}),
        )
        for n in range(commits)
    ]
    await store.instances.create(instances)
    done = now + timedelta(seconds=1)
    writes = [
        SnapshotWrite(
            instance_id=inst.id,
            expected_state=InstanceState.RUNNING,
            state=InstanceState.COMPLETED,
            next_fire_at=None,
            updated_at=done,
            context=ExecutionContext(data={"n": n, "sent": True}),
            nodes=(Node("s1", "step", NodeState.COMPLETED, attempts=1, started_at=now),),
            outputs=(BlockOutput(f"out-{n:06d}", inst.id, "s1", {"ok": True}, 1, done),),
        )
        for n, inst in enumerate(instances)
    ]
    started = time.perf_counter()
    await asyncio.gather(*(store.snapshots.commit(w) for w in writes))
    elapsed = time.perf_counter() - started
    await store.close()
    return elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--synchronous", default="FULL")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="orch8-bench-") as tmp:
        cases = [("group commit", 512), ("one transaction per commit", 1)]
        for label, max_batch in cases:
            path = Path(tmp) / f"batch-{max_batch}.db"
            seconds = await run(path, args.commits, args.synchronous, max_batch)
            print(
                f"{label:28s} synchronous={args.synchronous}: {args.commits} commits in "
                f"{seconds:7.3f} s = {args.commits / seconds:9.0f} commits/s"
            )


if __name__ == "__main__":
    asyncio.run(main())
