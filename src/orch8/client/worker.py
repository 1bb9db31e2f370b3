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
import inspect
import json
import logging
import os
import signal
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from orch8.client.errors import Orch8Error
from orch8.client.rest import MAX_POLL_LIMIT, Orch8Client
from orch8.client.types import JSON, Task

Handler = Callable[[Task], Awaitable[Any]]
HandlerT = TypeVar("HandlerT", bound=Handler)

_log = logging.getLogger("orch8.client.worker")

MAX_MESSAGE_CHARS = 8_000  # an error message is a diagnosis, not a payload: keep it small
REPORT_BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


def default_worker_id() -> str:
    """`<host>-<pid>-<random>`: unique per process, readable in `GET /workers`.

    The random suffix keeps two workers in one process (or a pid reused after a
    restart) apart; ownership is proven by `claim_epoch` in any case."""
    return f"py-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass
class WorkerStats:
    """Counters a caller can watch (tests, metrics, a health endpoint)."""

    claimed: int = 0
    completed: int = 0
    failed: int = 0
    dropped: int = 0
    """Reports the server refused with 409/404: the task had been re-offered or was gone."""
    abandoned: int = 0
    """Handlers cancelled before reporting: at the end of a stop's grace period, or
    because a heartbeat learned the claim was lost."""
    poll_errors: int = 0


class _Slots:
    """The concurrency budget: running tasks plus slots reserved by an in-flight poll.

    A poll asks for exactly as many tasks as it reserved, so a worker never holds a
    claim it has no capacity to run: a claimed-but-queued task would only age towards
    the reaper while other workers sit idle."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0
        self._freed = asyncio.Event()

    async def reserve(self, most: int) -> int:
        """Wait for at least one free slot, then take up to `most`; how many were taken."""
        while self.in_use >= self.capacity:
            self._freed.clear()
            await self._freed.wait()
        taken = min(most, self.capacity - self.in_use)
        self.in_use += taken
        return taken

    def take(self, count: int) -> None:
        """Take slots without waiting (a server that returned more tasks than asked)."""
        self.in_use += count

    def release(self, count: int = 1) -> None:
        if count > 0:
            self.in_use -= count
            self._freed.set()


@dataclass(frozen=True)
class _Success:
    output: JSON


@dataclass(frozen=True)
class _Failure:
    message: str
    retryable: bool


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
        self._slots = _Slots(concurrency)
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
        if not name:
            raise ValueError("a handler name must not be empty")
        if not callable(fn) or not (
            inspect.iscoroutinefunction(fn)
            or inspect.iscoroutinefunction(type(fn).__call__)  # an object with async __call__
        ):
            raise TypeError(f"handler {name!r} must be an async function (async def)")
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
            self._loops = [
                asyncio.create_task(self._poll_loop(name, fn, share), name=f"orch8-poll-{name}")
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

    async def _poll_loop(self, name: str, fn: Handler, share: int) -> None:
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
                self._spawn(task, fn)
            if not tasks and time.monotonic() - started < self.poll_wait_ms / 2000:
                await asyncio.sleep(self.idle_poll_interval_s)

    def _spawn(self, task: Task, fn: Handler) -> None:
        self.stats.claimed += 1
        runner = asyncio.create_task(self._execute(task, fn), name=f"orch8-task-{task.id}")
        self._running.add(runner)
        runner.add_done_callback(self._running.discard)

    # -- one task -------------------------------------------------------------------

    async def _execute(self, task: Task, fn: Handler) -> None:
        """Run the handler under heartbeats, then report; always frees the slot."""
        lost = asyncio.Event()
        call = asyncio.create_task(self._call(fn, task))
        beat = asyncio.create_task(self._heartbeat(task, call, lost))
        try:
            outcome = await self._outcome(task, call, lost)
            if outcome is None:
                self.stats.abandoned += 1
                return
            await self._report(task, outcome)  # heartbeats continue while reporting
        except asyncio.CancelledError:
            self.stats.abandoned += 1
            raise
        finally:
            beat.cancel()
            call.cancel()
            await asyncio.gather(beat, call, return_exceptions=True)
            self._slots.release()

    async def _call(self, fn: Handler, task: Task) -> Any:
        if not task.timeout_ms:
            return await fn(task)
        scope = asyncio.timeout(task.timeout_ms / 1000)
        try:
            async with scope:
                return await fn(task)
        except TimeoutError:
            if scope.expired():
                raise _TimedOut(f"handler timed out after {task.timeout_ms} ms") from None
            raise

    async def _outcome(
        self, task: Task, call: asyncio.Task[Any], lost: asyncio.Event
    ) -> _Success | _Failure | None:
        """What the handler came to; None when it was cancelled because the claim was lost."""
        try:
            output = await call
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise  # the worker is stopping: not the handler's doing
            if lost.is_set():
                _log.warning(
                    "worker %s: lost the claim on task %s; handler cancelled",
                    self.worker_id,
                    task.id,
                )
                return None
            return _Failure("handler was cancelled", retryable=True)
        except Exception as exc:
            return self._failure(task, exc)
        if output is None:
            output = {}  # "nothing to add": an empty object merges nothing into context.data
        try:
            json.dumps(output, allow_nan=False)
        except (TypeError, ValueError) as exc:
            return _Failure(f"handler output is not JSON: {exc}", retryable=False)
        return _Success(output)

    def _failure(self, task: Task, exc: Exception) -> _Failure:
        retryable = bool(getattr(exc, "retryable", True))
        text = str(exc) or type(exc).__name__
        if getattr(exc, "retryable", None) is None:  # a crash, not a decision: keep the trace
            text = f"{type(exc).__name__}: {text}"
            _log.exception(
                "worker %s: handler %s crashed on task %s (attempt %d)",
                self.worker_id,
                task.handler_name,
                task.id,
                task.attempt,
                exc_info=exc,
            )
        else:
            _log.info(
                "worker %s: task %s failed (%s): %s",
                self.worker_id,
                task.id,
                "retryable" if retryable else "permanent",
                text,
            )
        return _Failure(text[:MAX_MESSAGE_CHARS], retryable)

    async def _heartbeat(self, task: Task, call: asyncio.Task[Any], lost: asyncio.Event) -> None:
        """Beat every `heartbeat_interval_s` until cancelled.

        409/404 mean the claim is gone (re-offered, or the step was cancelled): the
        handler is cancelled, since its report would be refused anyway. Other errors
        are logged and the next beat tries again; one missed beat is harmless."""
        while True:
            await asyncio.sleep(self.heartbeat_interval_s)
            try:
                await self._client.heartbeat_task(task.id, self.worker_id, task.claim_epoch)
            except Orch8Error as exc:
                if exc.status in (404, 409):
                    lost.set()
                    call.cancel()
                    return
                _log.warning("worker %s: heartbeat for %s failed: %s", self.worker_id, task.id, exc)

    async def _report(self, task: Task, outcome: _Success | _Failure) -> None:
        """Send the outcome, retrying transient errors (reports are idempotent)."""
        if isinstance(outcome, _Success):
            output = outcome.output
            try:
                await self._send(
                    task,
                    lambda: self._client.complete_task(
                        task.id, self.worker_id, output, task.claim_epoch
                    ),
                )
                self.stats.completed += 1
                return
            except _Refused as refused:
                if refused.status not in (400, 413, 422):
                    return
                # The server will never accept this output, and another worker would
                # produce the same: fail the step rather than let the task be re-offered.
                outcome = _Failure(f"output refused by the server: {refused}", retryable=False)
        try:
            await self._send(
                task,
                lambda: self._client.fail_task(
                    task.id,
                    self.worker_id,
                    outcome.message,
                    retryable=outcome.retryable,
                    claim_epoch=task.claim_epoch,
                ),
            )
            self.stats.failed += 1
        except _Refused:
            return

    async def _send(self, task: Task, request: Callable[[], Awaitable[None]]) -> None:
        for delay in (*REPORT_BACKOFF_S, None):
            try:
                await request()
                return
            except Orch8Error as exc:
                if exc.status in (404, 409):
                    self.stats.dropped += 1
                    _log.info(
                        "worker %s: report for task %s refused (%s): it was taken over or "
                        "is gone; dropping the result",
                        self.worker_id,
                        task.id,
                        exc,
                    )
                    raise _Refused(exc.status, exc.message) from None
                if not exc.is_transient:
                    _log.error(
                        "worker %s: report for task %s refused: %s", self.worker_id, task.id, exc
                    )
                    raise _Refused(exc.status, exc.message) from None
                if delay is None:
                    _log.error(
                        "worker %s: giving up reporting task %s (%s); the reaper re-offers it",
                        self.worker_id,
                        task.id,
                        exc,
                    )
                    raise _Refused(exc.status, exc.message) from None
                _log.warning(
                    "worker %s: report for task %s failed (%s); retrying in %.1fs",
                    self.worker_id,
                    task.id,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)


class _TimedOut(Exception):
    retryable = True


class _Refused(Orch8Error):
    """A report the server will not take; already logged."""
