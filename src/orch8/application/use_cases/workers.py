"""The external-worker protocol: poll (with long-poll), heartbeat, complete, fail,
and the read side (tasks, stats, the worker fleet).

Tenant scoping follows the other use cases: with a caller tenant, a poll claims
only that tenant's tasks, reports on another tenant's task are NotFound, and
lists are narrowed to the caller.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from attrs import frozen

from orch8.application.engine.task_bell import TaskBell
from orch8.application.errors import NotFound, OutputTooLarge, UnstorableValue
from orch8.application.ports.clock import Clock
from orch8.application.ports.storage import Page, TaskFilter, TaskQueue, TaskStats, WorkerSeen
from orch8.application.use_cases.tenancy import visible
from orch8.domain.errors import ValidationError
from orch8.domain.tasks import WorkerTask

DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024
MAX_POLL_LIMIT = 1000
MAX_WAIT_MS = 30_000
# A waiting long-poll looks again at least this often, in case a notification was
# lost (another process on a store without notifications, a dropped listener).
RECHECK_S = 2.0
DEFAULT_ALIVE_WITHIN_S = 60


@frozen
class WorkerInfo:
    """One worker of the fleet, from its registrations (one per handler polled)."""

    worker_id: str
    handlers: tuple[str, ...]
    queues: tuple[str, ...]
    last_seen_at: datetime
    alive: bool
    in_flight: int


def _has_nul(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def output_size(output: Any) -> int:
    """Bytes of `output` as compact UTF-8 JSON; ValidationError when it is not JSON
    (NaN, infinities, non-JSON types) or holds a NUL character, which storage
    (PostgreSQL) cannot keep."""
    try:
        text = json.dumps(output, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"is not valid JSON ({exc})", path="output") from None
    if _has_nul(output):
        raise ValidationError("contains a NUL character (U+0000)", path="output")
    return len(text.encode("utf-8"))


def _required(value: str, path: str) -> str:
    if not value.strip():
        raise ValidationError("must be a non-empty string", path=path)
    return value


class WorkerService:
    def __init__(
        self,
        tasks: TaskQueue,
        clock: Clock,
        bell: TaskBell,
        *,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        recheck_s: float = RECHECK_S,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self._tasks = tasks
        self._clock = clock
        self._bell = bell
        self._max_output = max_output_bytes
        self._recheck_s = recheck_s
        self._wake = wake

    @property
    def max_output_bytes(self) -> int:
        return self._max_output

    def shutdown(self) -> None:
        """Release every waiting long-poll now (the process is stopping)."""
        self._bell.close()

    async def poll(
        self,
        handler_name: str,
        worker_id: str,
        limit: int = 1,
        *,
        wait_ms: int | None = None,
        queue_name: str | None = None,
        caller: str | None,
        gone: Callable[[], bool] | None = None,
    ) -> list[WorkerTask]:
        """Claim up to `limit` (at most 1000) pending tasks of `handler_name`.

        With `wait_ms` (at most 30 000) and nothing to claim, wait until tasks of
        the handler appear (the bell rings: this process created some, or another
        one did and the store's notifications said so), then try again; return
        what was claimed, or [] once `wait_ms` has passed. Never a busy loop: the
        store is asked again only on a ring and every `recheck_s`. `gone` tells
        that the caller has disconnected (then nothing more is claimed for it).
        """
        _required(handler_name, "handler_name")
        _required(worker_id, "worker_id")
        if limit < 0:
            raise ValidationError("must not be negative", path="limit")
        if wait_ms is not None and wait_ms < 0:
            raise ValidationError("must not be negative", path="wait_ms")
        limit = min(limit, MAX_POLL_LIMIT)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(wait_ms or 0, MAX_WAIT_MS) / 1000
        while True:
            # Armed before looking, so a ring between the look and the wait counts.
            with self._bell.arm(handler_name) as ticket:
                tasks = await self._tasks.poll(
                    handler_name,
                    worker_id,
                    limit,
                    self._clock.now(),
                    queue_name=queue_name,
                    tenant_id=caller,
                )
                left = deadline - loop.time()
                if tasks or left <= 0 or limit == 0 or self._bell.closed:
                    return tasks
                await ticket.wait(min(left, self._recheck_s))
            if gone is not None and gone():
                return []

    async def _visible_task(self, task_id: str, caller: str | None) -> WorkerTask:
        task = await self._tasks.get(task_id)
        if task is None or not visible(task.tenant_id, caller):
            raise NotFound("worker task", task_id)
        return task

    async def get(self, task_id: str, *, caller: str | None) -> WorkerTask:
        return await self._visible_task(task_id, caller)

    async def heartbeat(
        self, task_id: str, worker_id: str, claim_epoch: int | None, *, caller: str | None
    ) -> WorkerTask:
        _required(worker_id, "worker_id")
        await self._visible_task(task_id, caller)
        return await self._tasks.heartbeat(task_id, worker_id, claim_epoch, self._clock.now())

    async def complete(
        self,
        task_id: str,
        worker_id: str,
        claim_epoch: int | None,
        output: Any,
        *,
        caller: str | None,
    ) -> WorkerTask:
        """Record the worker's output; the instance is made due at once. A repeat of
        the same worker's completion answers the stored task (idempotent)."""
        _required(worker_id, "worker_id")
        size = output_size(output)
        if size > self._max_output:
            raise OutputTooLarge(size, self._max_output)
        await self._visible_task(task_id, caller)
        try:
            task = await self._tasks.complete(
                task_id, worker_id, claim_epoch, output, self._clock.now()
            )
        except UnstorableValue as exc:
            raise ValidationError(str(exc), path="output") from None
        self._nudge()
        return task

    async def fail(
        self,
        task_id: str,
        worker_id: str,
        claim_epoch: int | None,
        message: str,
        retryable: bool,
        *,
        caller: str | None,
    ) -> WorkerTask:
        """Record the failure; the engine then retries (`retryable` and the step's
        retry policy allows) or fails the step."""
        _required(worker_id, "worker_id")
        await self._visible_task(task_id, caller)
        task = await self._tasks.fail(
            task_id, worker_id, claim_epoch, message, retryable, self._clock.now()
        )
        self._nudge()
        return task

    def _nudge(self) -> None:
        if self._wake is not None:
            self._wake()

    async def tasks(self, flt: TaskFilter, page: Page, *, caller: str | None) -> list[WorkerTask]:
        """Tasks newest first; a caller tenant replaces the filter's."""
        if caller is not None:
            flt = TaskFilter(
                tenant_id=caller,
                handler_name=flt.handler_name,
                state=flt.state,
                instance_id=flt.instance_id,
            )
        return await self._tasks.query(flt, page)

    async def stats(self, *, caller: str | None) -> TaskStats:
        return await self._tasks.stats(caller)

    async def workers(
        self,
        *,
        caller: str | None,
        alive_within_s: int = DEFAULT_ALIVE_WITHIN_S,
        include_stale: bool = False,
    ) -> list[WorkerInfo]:
        """The fleet, most recently seen first: workers seen within `alive_within_s`
        (all of them with `include_stale`), each with the handlers and queues it
        polled and how many tasks it holds claimed."""
        seen = await self._tasks.workers(caller)
        cutoff = self._clock.now() - timedelta(seconds=max(alive_within_s, 1))
        grouped: dict[str, list[WorkerSeen]] = {}
        for reg in seen:
            grouped.setdefault(reg.worker_id, []).append(reg)
        fleet = []
        for worker_id, regs in grouped.items():
            last = max(r.last_seen_at for r in regs)
            info = WorkerInfo(
                worker_id=worker_id,
                handlers=tuple(sorted({r.handler_name for r in regs})),
                queues=tuple(sorted({r.queue_name for r in regs if r.queue_name})),
                last_seen_at=last,
                alive=last >= cutoff,
                # per handler (a worker seen under two tenants has one count per handler)
                in_flight=sum({r.handler_name: r.in_flight for r in regs}.values()),
            )
            if include_stale or info.alive:
                fleet.append(info)
        fleet.sort(key=lambda w: (w.last_seen_at, w.worker_id), reverse=True)
        return fleet
