"""Sending a task's outcome to the server, and the retry policy for sending it.

Reports are idempotent on the server (a repeat of the report that finished a task
is answered like the first), so transient errors are retried on a fixed backoff;
409/404 mean the claim is gone and the result is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from orch8.client.errors import Orch8Error
from orch8.client.outcomes import Failure, Outcome, Success
from orch8.client.rest import Orch8Client
from orch8.client.stats import WorkerStats
from orch8.client.types import Task

# One logger for the whole worker, so a host configures a single name.
_log = logging.getLogger("orch8.client.worker")

REPORT_BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


class Refused(Orch8Error):
    """A report the server will not take; already logged."""


class Reporter:
    """Reports outcomes as `worker_id`, counting what was sent and dropped in `stats`."""

    def __init__(self, client: Orch8Client, worker_id: str, stats: WorkerStats) -> None:
        self._client = client
        self._worker_id = worker_id
        self._stats = stats

    async def report(self, task: Task, outcome: Outcome) -> None:
        """Send the outcome, retrying transient errors (reports are idempotent)."""
        if isinstance(outcome, Success):
            output = outcome.output
            try:
                await self._send(
                    task,
                    lambda: self._client.complete_task(
                        task.id, self._worker_id, output, task.claim_epoch
                    ),
                )
                self._stats.completed += 1
                return
            except Refused as refused:
                if refused.status not in (400, 413, 422):
                    return
                # The server will never accept this output, and another worker would
                # produce the same: fail the step rather than let the task be re-offered.
                outcome = Failure(f"output refused by the server: {refused}", retryable=False)
        try:
            await self._send(
                task,
                lambda: self._client.fail_task(
                    task.id,
                    self._worker_id,
                    outcome.message,
                    retryable=outcome.retryable,
                    claim_epoch=task.claim_epoch,
                ),
            )
            self._stats.failed += 1
        except Refused:
            return

    async def _send(self, task: Task, request: Callable[[], Awaitable[None]]) -> None:
        for delay in (*REPORT_BACKOFF_S, None):
            try:
                await request()
                return
            except Orch8Error as exc:
                if exc.status in (404, 409):
                    self._stats.dropped += 1
                    _log.info(
                        "worker %s: report for task %s refused (%s): it was taken over or "
                        "is gone; dropping the result",
                        self._worker_id,
                        task.id,
                        exc,
                    )
                    raise Refused(exc.status, exc.message) from None
                if not exc.is_transient:
                    _log.error(
                        "worker %s: report for task %s refused: %s", self._worker_id, task.id, exc
                    )
                    raise Refused(exc.status, exc.message) from None
                if delay is None:
                    _log.error(
                        "worker %s: giving up reporting task %s (%s); the reaper re-offers it",
                        self._worker_id,
                        task.id,
                        exc,
                    )
                    raise Refused(exc.status, exc.message) from None
                _log.warning(
                    "worker %s: report for task %s failed (%s); retrying in %.1fs",
                    self._worker_id,
                    task.id,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
