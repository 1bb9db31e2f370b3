"""A worker process for the end-to-end tests, built on `orch8.client.Worker`.

    python tests/e2e/worker_proc.py URL WORKER_ID OUT_FILE [--mode work|hang|flaky]

Every handler start appends `task_id,instance_id,attempt,worker,claim_epoch,unix_time`
to OUT_FILE (this process's own file), so the test can tell which process ran which
task and when. Modes: `work` returns at once; `hang` never returns (the test kills the
process); `flaky` fails retryably on attempts 1 and 2 and succeeds on the 3rd.
OUT_FILE.ready appears as the worker starts polling; SIGTERM stops it gracefully.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from orch8.client import RetryableError, Task, Worker


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("worker_id")
    parser.add_argument("out", type=Path)
    parser.add_argument("--mode", choices=["work", "hang", "flaky"], default="work")
    parser.add_argument("--handler", default="work")
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--heartbeat-s", type=float, default=0.5)
    parser.add_argument("--poll-wait-ms", type=int, default=2_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    worker = Worker(
        args.url,
        args.worker_id,
        concurrency=args.concurrency,
        heartbeat_interval_s=args.heartbeat_s,
        poll_wait_ms=args.poll_wait_ms,
    )
    out = args.out.open("a", buffering=1)  # one write per line: on disk before a SIGKILL

    async def handle(task: Task) -> dict[str, Any]:
        out.write(
            f"{task.id},{task.instance_id},{task.attempt},{args.worker_id},"
            f"{task.claim_epoch},{time.time():.6f}\n"
        )
        if args.mode == "hang":
            await asyncio.sleep(3600)
        if args.mode == "flaky" and task.attempt < 3:
            raise RetryableError(f"flaky on attempt {task.attempt}")
        return {"done_by": args.worker_id, "attempt": task.attempt}

    worker.register(args.handler, handle)

    Path(f"{args.out}.ready").touch()  # polling starts a few milliseconds later
    try:
        asyncio.run(worker.run_until_signal(grace_s=5))
    finally:
        out.close()


if __name__ == "__main__":
    main()
