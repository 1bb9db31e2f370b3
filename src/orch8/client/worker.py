"""An async worker for orch8's external-task protocol.

A step whose handler is not built into the engine becomes a worker task. A `Worker`
claims such tasks over HTTP, runs a plain coroutine per task, keeps the claim alive
with heartbeats while it runs, and reports the result::

    worker = Worker("http://127.0.0.1:8080", concurrency=10)

    @worker.handler("send_email")
    async def send_email(task: Task) -> dict[str, Any]:
        await smtp.send(task.params["to"], ...)
        return {"sent": True}  # merged into the instance's context.data

    asyncio.run(worker.run_until_signal())

Failure semantics (Orch8's WORKERS.md convention, which its Python SDK follows too):

* `RetryableError` → `/fail` with `retryable: true`: the engine makes another attempt
  after the step's `retry` backoff while attempts remain.
* `PermanentError` → `retryable: false`: the step fails at once (a `try_catch` may
  catch it).
* Any other exception is a crash, reported as **retryable** unless the exception
  carries a `retryable = False` attribute: a bug or a transient fault in a handler
  should not fail a workflow on the first try when the step allows retries, and a step
  without a `retry` policy fails anyway.
* A handler that outlives the task's `timeout_ms` is cancelled and reported retryable.

Delivery is at least once: if a worker dies mid-task, the server's reaper re-offers
the task (same attempt, new `claim_epoch`) once its heartbeat is stale, and the dead
worker's late report is refused with 409. Handlers should therefore be idempotent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Callable, Iterable

from orch8.client.handlers import Handler, HandlerT, check_handler
from orch8.client.outcomes import MAX_MESSAGE_CHARS
from orch8.client.reports import REPORT_BACKOFF_S
from orch8.client.rest import MAX_POLL_LIMIT, Orch8Client
from orch8.client.slots import Slots
from orch8.client.stats import WorkerStats
from orch8.client.task_runner import TaskRunner
from orch8.client.types import Task

__all__ = [
    "MAX_MESSAGE_CHARS",
    "REPORT_BACKOFF_S",
    "Handler",
    "HandlerT",
    "Worker",
    "WorkerStats",
    "default_worker_id",
]

_log = logging.getLogger("orch8.client.worker")


def default_worker_id() -> str:
    """`<host>-<pid>-<random>`: unique per process, readable in `GET /workers`.

    The random suffix keeps two workers in one process (or a pid reused after a
    restart) apart; ownership is proven by `claim_epoch` in any case."""
    return f"py-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Worker:
    """Claims tasks for the registered handlers and runs them, `concurrency` at a time.

    Parameters:
        base_url: the server root (or its `/api/v1` prefix).
        worker_id: unique per process; defaults to `default_worker_id()`.
        concurrency: how many tasks run at once, across all handlers. Each poll asks
            for at most the free slots (`limit = free`).
        poll_wait_ms: long-poll wait: the server holds an empty poll this long and
            answers as soon as a task appears, so idle workers cost one request per
            wait instead of one per poll interval.
        heartbeat_interval_s: heartbeat period while a task runs; keep it well under
            the server's stale threshold (`ORCH8_WORKER_REAPER_STALE_SECS`, 60 s).
        poll_error_backoff_s / poll_error_backoff_max_s: after a failed poll, wait
            this long, doubling per consecutive failure up to the maximum, so a
            server outage is not met with a request storm from every worker.
        idle_poll_interval_s: the pause after an empty answer that came back much
            earlier than `poll_wait_ms` (a server without long-poll, such as Orch8),
            so the loop never spins.
        api_key / tenant_id: sent as `x-api-key` / `x-tenant-id`.
        client: an `Orch8Client` to share (the worker then does not close it).
    """

    def __init__(
        self,
        base_url: str,
        worker_id: str | None = None,
        *,
        concurrency: int = 10,
        poll_wait_ms: int = 10_000,
        heartbeat_interval_s: float = 15.0,
        poll_error_backoff_s: float = 1.0,
        poll_error_backoff_max_s: float = 30.0,
        idle_poll_interval_s: float = 1.0,
        api_key: str | None = None,
        tenant_id: str | None = None,
        client: Orch8Client | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if heartbeat_interval_s <= 0:
            raise ValueError("heartbeat_interval_s must be positive")
        self.worker_id = worker_id or default_worker_id()
        self.concurrency = concurrency
        self.poll_wait_ms = poll_wait_ms
        self.heartbeat_interval_s = heartbeat_interval_s
        self.poll_error_backoff_s = poll_error_backoff_s
        self.poll_error_backoff_max_s = poll_error_backoff_max_s
        self.idle_poll_interval_s = idle_poll_interval_s
        self.stats = WorkerStats()
        self._owns_client = client is None
        self._client = client or Orch8Client(
            base_url,
            api_key=api_key,
            tenant_id=tenant_id,
            max_connections=concurrency * 2 + 8,
        )
        self._handlers: dict[str, Handler] = {}
        self._slots = Slots(concurrency)
        self._loops: list[asyncio.Task[None]] = []
        self._running: set[asyncio.Task[None]] = set()
        self._started = False
        self._stopping = False
        self._stopped = asyncio.Event()

    # -- registration -------------------------------------------------------------

    def handler(self, name: str) -> Callable[[HandlerT], HandlerT]:
        """Decorator: `@worker.handler("send_email")` over an `async def f(task)`."""

        def register(fn: HandlerT) -> HandlerT:
            self.register(name, fn)
            return fn

        return register

    def register(self, name: str, fn: Handler) -> None:
        """Serve tasks of handler `name` with the coroutine function `fn`.

        Plain functions are refused: a blocking handler would stall every other task
        and the heartbeats of this worker (run blocking code with
        `asyncio.to_thread` inside an async handler instead)."""
        if self._started:
            raise RuntimeError("register handlers before run()")
        check_handler(name, fn)
        self._handlers[name] = fn

    @property
    def handler_names(self) -> list[str]:
        return list(self._handlers)

    @property
    def in_flight(self) -> int:
        """Tasks claimed and not yet finished (running or reporting)."""
        return len(self._running)

    @property
    def client(self) -> Orch8Client:
        return self._client

    # -- lifecycle ----------------------------------------------------------------

    async def run(self) -> None:
        """Poll and run tasks until `stop()` completes.

        Cancelling `run()` itself is an immediate stop: running handlers are cancelled
        and their tasks are left to the server's reaper."""
        if not self._handlers:
            raise ValueError("register at least one handler before run()")
        if self._started:
            raise RuntimeError("a Worker runs once; create a new one")
        self._started = True
        try:
            if self._stopping:  # stop() came first
                return
            share = max(1, min(self.concurrency // len(self._handlers), MAX_POLL_LIMIT))
            runner = TaskRunner(
                self._client, self.worker_id, self.heartbeat_interval_s, self.stats, self._slots
            )
            self._loops = [
                asyncio.create_task(
                    self._poll_loop(name, fn, share, runner), name=f"orch8-poll-{name}"
                )
                for name, fn in self._handlers.items()
            ]
            _log.info(
                "worker %s polling %s (concurrency %d)",
                self.worker_id,
                ", ".join(self._handlers),
                self.concurrency,
            )
            try:
                await self._stopped.wait()
            except asyncio.CancelledError:
                if not self._stopping:
                    await self._shutdown(0.0)
                else:  # a graceful stop was under way: cut it short
                    for task in self._running:
                        task.cancel()
                raise
        finally:
            if self._owns_client:
                await self._client.close()

    async def stop(self, grace_s: float = 30.0) -> None:
        """Stop gracefully: stop polling at once, let running tasks finish and report
        for up to `grace_s` seconds, then cancel the rest.

        A cancelled task is not reported as failed (that would spend one of the step's
        attempts, or fail a step without a retry policy): its claim simply lapses and
        the reaper re-offers it to another worker. A long-poll cancelled here may have
        claimed a task the server could not hand over; that task too is re-offered by
        the reaper. Calling `stop()` again waits for the first call to finish."""
        if self._stopping:
            await self._stopped.wait()
            return
        await self._shutdown(grace_s)

    async def run_until_signal(
        self,
        grace_s: float = 30.0,
        signals: Iterable[signal.Signals] = (signal.SIGINT, signal.SIGTERM),
    ) -> None:
        """`run()` until SIGINT/SIGTERM, then `stop(grace_s)`: the usual `main()`."""
        loop = asyncio.get_running_loop()
        caught = list(signals)
        stopper: list[asyncio.Task[None]] = []

        def on_signal() -> None:
            if not stopper:
                _log.info("worker %s: signal received, stopping", self.worker_id)
                stopper.append(loop.create_task(self.stop(grace_s)))

        for sig in caught:
            loop.add_signal_handler(sig, on_signal)
        try:
            await self.run()
        finally:
            for sig in caught:
                loop.remove_signal_handler(sig)
        if stopper:
            await stopper[0]

    async def _shutdown(self, grace_s: float) -> None:
        self._stopping = True
        for loop_task in self._loops:
            loop_task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        running = set(self._running)
        if running:
            _log.info(
                "worker %s: waiting up to %.1fs for %d running task(s)",
                self.worker_id,
                grace_s,
                len(running),
            )
            pending = running
            if grace_s > 0:
                _, pending = await asyncio.wait(running, timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                _log.warning(
                    "worker %s: cancelled %d task(s) still running after the grace period",
                    self.worker_id,
                    len(pending),
                )
                await asyncio.gather(*pending, return_exceptions=True)
        self._stopped.set()
        _log.info("worker %s stopped", self.worker_id)

    # -- polling ------------------------------------------------------------------

    async def _poll_loop(self, name: str, fn: Handler, share: int, runner: TaskRunner) -> None:
        """Claim tasks of one handler for as long as the worker runs.

        Never dies of an error: anything but cancellation is logged and retried after
        a doubling backoff, because a worker that silently stops polling is worse than
        one that complains."""
        backoff = self.poll_error_backoff_s
        while not self._stopping:
            reserved = await self._slots.reserve(share)
            started = time.monotonic()
            try:
                tasks = await self._client.poll_tasks(
                    name, self.worker_id, reserved, wait_ms=self.poll_wait_ms
                )
            except asyncio.CancelledError:
                self._slots.release(reserved)
                raise
            except Exception as exc:
                self._slots.release(reserved)
                self.stats.poll_errors += 1
                _log.warning(
                    "worker %s: poll for %s failed (%s); retrying in %.1fs",
                    self.worker_id,
                    name,
                    exc,
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.poll_error_backoff_max_s)
                continue
            backoff = self.poll_error_backoff_s
            if len(tasks) > reserved:  # the server over-delivered: run them all the same
                self._slots.take(len(tasks) - reserved)
            else:
                self._slots.release(reserved - len(tasks))
            for task in tasks:
                self._spawn(task, fn, runner)
            if not tasks and time.monotonic() - started < self.poll_wait_ms / 2000:
                await asyncio.sleep(self.idle_poll_interval_s)

    def _spawn(self, task: Task, fn: Handler, runner: TaskRunner) -> None:
        self.stats.claimed += 1
        running = asyncio.create_task(runner.execute(task, fn), name=f"orch8-task-{task.id}")
        self._running.add(running)
        running.add_done_callback(self._running.discard)
