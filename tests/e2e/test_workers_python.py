"""External workers built on `orch8.client.Worker`, as real processes against `orch8 serve`.

Each worker is a subprocess running tests/e2e/worker_proc.py, which appends one line per
handler start to its own file; the tests read those files to learn who ran what, when.
The reaper runs every second and reclaims tasks silent for two, so crashes heal quickly.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from orch8.client import Orch8Client, Orch8Error
from tests.e2e.server import ServerProcess

REAPER_ENV = {"ORCH8_WORKER_REAPER_TICK_SECS": "1", "ORCH8_WORKER_REAPER_STALE_SECS": "2"}
STALE_S, TICK_S, HEARTBEAT_S = 2.0, 1.0, 0.5
SCRIPT = Path(__file__).with_name("worker_proc.py")
TENANT = "workers"
OPEN_STATES = ("scheduled", "running", "waiting", "paused")


def one_step(name: str, handler: str, **step: Any) -> dict[str, Any]:
    return {
        "tenant_id": TENANT,
        "name": name,
        "blocks": [{"type": "step", "id": "s", "handler": handler, **step}],
    }


@dataclass(frozen=True)
class Run:
    """One handler start, as logged by a worker process."""

    task_id: str
    instance_id: str
    attempt: int
    worker: str
    epoch: int | None
    at: float


@dataclass
class WorkerProcess:
    worker_id: str
    out: Path
    proc: subprocess.Popen[bytes]

    def runs(self) -> list[Run]:
        if not self.out.exists():
            return []
        found = []
        for line in self.out.read_text().splitlines():
            task, instance, attempt, worker, epoch, at = line.split(",")
            found.append(
                Run(
                    task,
                    instance,
                    int(attempt),
                    worker,
                    None if epoch == "None" else int(epoch),
                    float(at),
                )
            )
        return found


def start_worker(url: str, tmp_path: Path, worker_id: str, *args: str) -> WorkerProcess:
    out = tmp_path / f"{worker_id}.runs"
    with (tmp_path / f"{worker_id}.log").open("ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(SCRIPT),
                url,
                worker_id,
                str(out),
                "--heartbeat-s",
                str(HEARTBEAT_S),
                *args,
            ],
            stdout=log,
            stderr=log,
        )
    return WorkerProcess(worker_id, out, proc)


def is_ready(worker: WorkerProcess) -> bool:
    return Path(f"{worker.out}.ready").exists()


async def wait_ready(workers: Iterable[WorkerProcess], within: float = 30) -> None:
    deadline = time.monotonic() + within
    for worker in workers:
        while not is_ready(worker):
            assert worker.proc.poll() is None, f"worker {worker.worker_id} exited early"
            assert time.monotonic() < deadline, f"worker {worker.worker_id} not ready"
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # the first long-polls are open


def stop_workers(workers: Iterable[WorkerProcess]) -> list[int | None]:
    """SIGTERM (graceful) every live worker; their exit codes (None: already reaped)."""
    live = [w for w in workers if w.proc.poll() is None]
    for worker in live:
        worker.proc.send_signal(signal.SIGTERM)
    codes: list[int | None] = []
    for worker in live:
        try:
            codes.append(worker.proc.wait(15))
        except subprocess.TimeoutExpired:
            worker.proc.kill()
            worker.proc.wait(5)
            codes.append(None)
    return codes


async def wait_runs(worker: WorkerProcess, count: int, within: float = 20) -> list[Run]:
    deadline = time.monotonic() + within
    while len(runs := worker.runs()) < count:
        assert time.monotonic() < deadline, f"{worker.worker_id} ran {len(runs)} of {count}"
        await asyncio.sleep(0.05)
    return runs


async def wait_all_completed(client: Orch8Client, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        failed = await client.list_instances(states=["failed"], limit=10)
        assert not failed["items"], f"instances failed: {failed['items'][:1]}"
        page = await client.list_instances(states=OPEN_STATES, limit=1)
        if not page["items"]:
            return
        assert time.monotonic() < deadline, "instances did not all complete"
        await asyncio.sleep(0.25)


async def count_completed(client: Orch8Client) -> int:
    total, offset = 0, 0
    while True:
        page = await client.list_instances(states=["completed"], offset=offset, limit=1000)
        total += len(page["items"])
        if not page["has_more"] or not page["items"]:
            return total
        offset += len(page["items"])


async def test_2000_tasks_shared_by_8_competing_workers_are_each_completed_once(
    postgres_schema_url: str, tmp_path: Path
) -> None:
    with ServerProcess(
        postgres_schema_url, log_path=tmp_path / "server.log", extra_env=REAPER_ENV
    ) as server:
        workers = [start_worker(server.url, tmp_path, f"w{n}") for n in range(8)]
        try:
            await wait_ready(workers)
            async with Orch8Client(server.url, tenant_id=TENANT) as client:
                seq = await client.create_sequence(one_step("fan", "work"))
                gate = asyncio.Semaphore(32)

                async def start() -> str:
                    async with gate:
                        return (await client.create_instance(seq)).id

                started = time.monotonic()
                ids = await asyncio.gather(*(start() for _ in range(2000)))
                await wait_all_completed(client, within=60)
                elapsed = time.monotonic() - started
                assert await count_completed(client) == 2000
                sample = [await client.get_instance(i) for i in ids[:20]]
        finally:
            codes = stop_workers(workers)
    assert codes == [0] * 8, "every worker stops gracefully on SIGTERM"
    runs = [run for worker in workers for run in worker.runs()]
    per_task = Counter(run.task_id for run in runs)
    assert len(per_task) == 2000
    assert max(per_task.values()) == 1, [t for t, n in per_task.items() if n > 1][:5]
    assert {run.instance_id for run in runs} == set(ids)
    assert {run.attempt for run in runs} == {1}
    shares = Counter(run.worker for run in runs)
    assert set(shares) == {w.worker_id for w in workers}, shares  # all eight competed
    by_instance = {run.instance_id: run.worker for run in runs}
    for instance in sample:  # the worker's output object was merged into context.data
        assert instance["context"]["data"]["done_by"] == by_instance[instance["id"]]
    print(f"\n2000 tasks by 8 workers in {elapsed:.1f}s; shares {sorted(shares.values())}")


async def test_a_sigkilled_worker_s_task_is_reaped_and_its_late_complete_refused(
    tmp_path: Path,
) -> None:
    with ServerProcess(
        f"sqlite://{tmp_path / 'orch8.db'}", log_path=tmp_path / "server.log", extra_env=REAPER_ENV
    ) as server:
        doomed = start_worker(server.url, tmp_path, "doomed", "--mode", "hang")
        rescuer: WorkerProcess | None = None
        try:
            await wait_ready([doomed])
            async with Orch8Client(server.url, tenant_id=TENANT) as client:
                seq = await client.create_sequence(one_step("crash", "work"))
                iid = (await client.create_instance(seq)).id
                (taken,) = await wait_runs(doomed, 1)
                assert taken.instance_id == iid
                rescuer = start_worker(server.url, tmp_path, "rescuer")
                await wait_ready([rescuer])
                # Heartbeats keep a live claim: past the stale threshold nobody steals it.
                await asyncio.sleep(STALE_S + TICK_S + 0.5)
                assert rescuer.runs() == []
                assert (await client.get_instance(iid))["state"] == "waiting"

                doomed.proc.kill()
                killed_at = time.time()
                doomed.proc.wait(5)
                (rescued,) = await wait_runs(rescuer, 1, within=15)
                done = await client.wait_for_instance(iid, timeout_s=15)
                outputs = await client.get_outputs(iid)

                # The dead worker's report arrives late, with the epoch it was given.
                with pytest.raises(Orch8Error) as late:
                    await client.complete_task(
                        taken.task_id, "doomed", {"done_by": "doomed", "late": True}, taken.epoch
                    )
                after = await client.get_instance(iid)
                outputs_after = await client.get_outputs(iid)
                tasks_after = await client.list_tasks(instance_id=iid)
        finally:
            stop_workers([w for w in (doomed, rescuer) if w is not None])

    reaped_after = rescued.at - killed_at
    assert rescued.task_id == taken.task_id
    assert rescued.attempt == taken.attempt == 1  # a reclaim is the same attempt...
    assert taken.epoch is not None
    assert rescued.epoch is not None
    assert rescued.epoch > taken.epoch  # ...under a new epoch
    # Reclaimed once the last heartbeat (<= 0.5 s before the kill) was 2 s old, at a tick.
    assert STALE_S - HEARTBEAT_S - 0.1 <= reaped_after <= STALE_S + TICK_S + 1.5, reaped_after
    assert done["state"] == "completed"
    assert done["context"]["data"]["done_by"] == "rescuer"
    assert late.value.status == 409
    assert after["state"] == "completed"
    assert after["context"]["data"] == done["context"]["data"]
    assert "late" not in after["context"]["data"]
    assert outputs_after == outputs
    assert [(t["id"], t["state"], t["worker_id"], t["claim_epoch"]) for t in tasks_after] == [
        (taken.task_id, "completed", "rescuer", rescued.epoch)
    ]
    print(f"\nreaped and re-run {reaped_after:.2f}s after SIGKILL; late complete -> 409")


async def test_retryable_failures_retry_with_the_step_backoff_until_attempt_3(
    tmp_path: Path,
) -> None:
    retry = {
        "max_attempts": 3,
        "initial_backoff": 600,
        "max_backoff": 5000,
        "backoff_multiplier": 2,
    }
    with ServerProcess(
        f"sqlite://{tmp_path / 'orch8.db'}", log_path=tmp_path / "server.log", extra_env=REAPER_ENV
    ) as server:
        worker = start_worker(server.url, tmp_path, "flaky", "--mode", "flaky")
        try:
            await wait_ready([worker])
            async with Orch8Client(server.url, tenant_id=TENANT) as client:
                seq = await client.create_sequence(one_step("retry", "work", retry=retry))
                iid = (await client.create_instance(seq)).id
                done = await client.wait_for_instance(iid, timeout_s=20)
                outputs = await client.get_outputs(iid)
        finally:
            assert stop_workers([worker]) == [0]
    runs = sorted(worker.runs(), key=lambda r: r.at)
    assert done["state"] == "completed"
    assert [r.attempt for r in runs] == [1, 2, 3]
    assert len({r.task_id for r in runs}) == 3  # one task row per attempt
    assert done["context"]["data"]["attempt"] == 3
    final = [o for o in outputs if o.get("block_id") == "s" and o.get("output", {}).get("done_by")]
    assert final
    assert final[-1].get("attempt", 3) == 3
    # backoff(n) = min(initial * multiplier^n, max): 600 ms before attempt 2, 1200 before 3
    gaps = [b.at - a.at for a, b in pairwise(runs)]
    for gap, backoff in zip(gaps, (0.6, 1.2), strict=True):
        assert backoff - 0.05 <= gap <= backoff + 1.0, (gaps, backoff)
    print(f"\nretry gaps {', '.join(f'{g * 1000:.0f} ms' for g in gaps)} (policy 600, 1200)")
