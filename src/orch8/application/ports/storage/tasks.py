"""`TaskQueue`: worker tasks for handlers that run outside the engine."""

from __future__ import annotations

from collections.abc import Sequence as Seq
from datetime import datetime
from typing import Any, Protocol

from attrs import frozen

from orch8.application.ports.storage.paging import Page
from orch8.domain.tasks import TaskState, WorkerTask


@frozen
class TaskFilter:
    tenant_id: str | None = None
    handler_name: str | None = None
    state: TaskState | None = None
    instance_id: str | None = None


@frozen
class WorkerSeen:
    """A worker's last poll for one handler (tenant_id "" when unscoped), and how
    many tasks of that handler it holds claimed now."""

    worker_id: str
    handler_name: str
    tenant_id: str
    queue_name: str | None
    last_seen_at: datetime
    in_flight: int = 0


@frozen
class TaskStats:
    """Task counts per (handler_name, state), and the workers holding claimed tasks."""

    counts: tuple[tuple[str, TaskState, int], ...] = ()
    active_workers: tuple[str, ...] = ()


class TaskQueue(Protocol):
    """Worker tasks. New tasks are written with the snapshot that parks their step
    (`SnapshotWrite.tasks`); the methods here are the worker protocol's side."""

    async def poll(
        self,
        handler_name: str,
        worker_id: str,
        limit: int,
        now: datetime,
        *,
        queue_name: str | None = None,
        tenant_id: str | None = None,
    ) -> list[WorkerTask]:
        """Claim up to `limit` pending tasks of `handler_name` (oldest first), atomically
        and disjointly across processes (SKIP LOCKED): state claimed, worker_id,
        claimed_at = heartbeat_at = now, claim_epoch + 1. Records the worker as seen."""
        ...

    async def heartbeat(
        self, task_id: str, worker_id: str, claim_epoch: int | None, now: datetime
    ) -> WorkerTask:
        """Refresh heartbeat_at. NotFound for an unknown task; Conflict when the task is
        not claimed by `worker_id` at `claim_epoch` (None: any epoch of that worker)."""
        ...

    async def complete(
        self, task_id: str, worker_id: str, claim_epoch: int | None, output: Any, now: datetime
    ) -> WorkerTask:
        """Mark completed with `output` and, in the same transaction, make the task's
        instance due now if it is waiting or scheduled. A repeat of the same worker's
        completion returns the task unchanged; any other mismatch is a Conflict."""
        ...

    async def fail(
        self,
        task_id: str,
        worker_id: str,
        claim_epoch: int | None,
        message: str,
        retryable: bool,
        now: datetime,
    ) -> WorkerTask:
        """Mark failed (with message and retryable) and wake the instance, as `complete`."""
        ...

    async def get(self, task_id: str) -> WorkerTask | None: ...

    async def query(self, flt: TaskFilter, page: Page) -> list[WorkerTask]:
        """Newest first."""
        ...

    async def results(self, instance_id: str, block_ids: Seq[str]) -> dict[str, WorkerTask]:
        """The newest task of each named block of an instance (what the engine reads to
        learn how an external step ended)."""
        ...

    async def cancel_open(self, instance_id: str, block_ids: Seq[str], now: datetime) -> int:
        """Cancel the pending or claimed tasks of those blocks (their step was cancelled)."""
        ...

    async def reap_stale(self, heartbeat_before: datetime, now: datetime) -> int:
        """Claimed tasks whose heartbeat is older than `heartbeat_before` go back to
        pending (worker cleared; the next claim gets a new epoch). Returns the count."""
        ...

    async def expire_timed_out(self, now: datetime) -> int:
        """Tasks still open past created_at + timeout_ms fail, not retryable, and wake
        their instance. Returns the count."""
        ...

    async def workers(self, tenant_id: str | None) -> list[WorkerSeen]:
        """Worker registrations, most recently seen first; with `tenant_id`, that
        tenant's and the unscoped ones (in_flight then counts that tenant's tasks)."""
        ...

    async def stats(self, tenant_id: str | None) -> TaskStats:
        """Counts of every task (of `tenant_id` when given), sorted by handler and state;
        active workers sorted by id."""
        ...
