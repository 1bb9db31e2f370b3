"""A runnable orch8 worker in Python for steps whose handler is `send_email`.

    .venv/bin/python examples/python_worker.py --url http://127.0.0.1:8080

Any step `{"type": "step", "id": "email", "handler": "send_email", "params": {"to": ...}}`
becomes a worker task; this process claims it, "sends" the mail (a short sleep), and
returns an object that the engine merges into the instance's `context.data`.
Stop it with Ctrl-C or SIGTERM: it stops polling and lets running tasks finish.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import uuid
from typing import Any

from orch8.client import PermanentError, Task, Worker


def build_worker(url: str, worker_id: str | None, concurrency: int) -> Worker:
    worker = Worker(url, worker_id, concurrency=concurrency)

    @worker.handler("send_email")
    async def send_email(task: Task) -> dict[str, Any]:
        to = task.params.get("to") or task.data.get("email")
        if not to:
            # No retry can invent an address: fail the step for good.
            raise PermanentError("no recipient: set params.to or context.data.email")
        await asyncio.sleep(0.05)  # stand-in for the SMTP call
        return {"email_sent_to": to, "message_id": f"msg-{uuid.uuid4().hex[:12]}"}

    return worker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--worker-id", default=None)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    worker = build_worker(args.url, args.worker_id, args.concurrency)
    asyncio.run(worker.run_until_signal(grace_s=30))


if __name__ == "__main__":
    main()
