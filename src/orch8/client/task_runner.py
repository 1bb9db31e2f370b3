"""One claimed task's run: the handler under heartbeats, then its report.

Kept apart from the Worker, which decides when tasks are claimed and when the
worker stops; what happens to a task once claimed is all here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from orch8.client.errors import Orch8Error
from orch8.client.handlers import Handler
from orch8.client.outcomes import call_handler, outcome_of
from orch8.client.reports import Reporter
from orch8.client.rest import Orch8Client
from orch8.client.slots import Slots
from orch8.client.stats import WorkerStats
from orch8.client.types import Task

# One logger for the whole worker, so a host configures a single name.
_log = logging.getLogger("orch8.client.worker")


class TaskRunner:
    """Runs claimed tasks as `worker_id`, each holding one of `slots` until it is done."""

    def __init__(
        self,
        client: Orch8Client,
        worker_id: str,
        heartbeat_interval_s: float,
        stats: WorkerStats,
        slots: Slots,
    ) -> None:
        self._client = client
        self._worker_id = worker_id
        self._heartbeat_interval_s = heartbeat_interval_s
        self._stats = stats
        self._slots = slots
        self._reporter = Reporter(client, worker_id, stats)

    async def execute(self, task: Task, fn: Handler) -> None:
        """Run the handler under heartbeats, then report; always frees the slot."""
        lost = asyncio.Event()
        call = asyncio.create_task(call_handler(fn, task))
        beat = asyncio.create_task(self._heartbeat(task, call, lost))
        try:
            outcome = await outcome_of(call, lost, task, self._worker_id)
            if outcome is None:
                self._stats.abandoned += 1
                return
            await self._reporter.report(task, outcome)  # heartbeats continue while reporting
        except asyncio.CancelledError:
            self._stats.abandoned += 1
            raise
        finally:
            beat.cancel()
            call.cancel()
            await asyncio.gather(beat, call, return_exceptions=True)
            self._slots.release()

    async def _heartbeat(self, task: Task, call: asyncio.Task[Any], lost: asyncio.Event) -> None:
        """Beat every `heartbeat_interval_s` until cancelled.

        409/404 mean the claim is gone (re-offered, or the step was cancelled): the
        handler is cancelled, since its report would be refused anyway. Other errors
        are logged and the next beat tries again; one missed beat is harmless."""
        while True:
            await asyncio.sleep(self._heartbeat_interval_s)
            try:
                await self._client.heartbeat_task(task.id, self._worker_id, task.claim_epoch)
            except Orch8Error as exc:
                if exc.status in (404, 409):
                    lost.set()
                    call.cancel()
                    return
                _log.warning(
                    "worker %s: heartbeat for %s failed: %s", self._worker_id, task.id, exc
                )
