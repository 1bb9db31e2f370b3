"""Worker tasks in memory: the reference model of the TaskQueue contract.

Single event loop, so every method is atomic (no await between read and write).
The snapshot store inserts new tasks (`TaskTable.insert`) in the same call that
applies the write parking their step; the queue wakes instances in the shared
instance dict, as the SQL adapters do in the same transaction.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable
from collections.abc import Sequence as Seq
from datetime import datetime, timedelta
from typing import Any

from attrs import evolve

from orch8.application.errors import Conflict, NotFound
from orch8.application.ports.storage import Page, TaskFilter, TaskQueue, TaskStats, WorkerSeen
from orch8.domain.instance import Instance, InstanceState
from orch8.domain.task_claims import TIMED_OUT, UNSCOPED, holds, lost_claim, repeated
from orch8.domain.tasks import TaskState, WorkerTask

_OPEN = (TaskState.PENDING, TaskState.CLAIMED)
_WAKEABLE = (InstanceState.WAITING, InstanceState.SCHEDULED)


class TaskTable:
    """The rows: tasks by id (with insertion order), and worker registrations."""

    def __init__(self) -> None:
        self.tasks: dict[str, WorkerTask] = {}
        self.order: dict[str, int] = {}
        self.keys: set[tuple[str, str, int]] = set()
        self.seen: dict[tuple[str, str, str], WorkerSeen] = {}
        self._counter = itertools.count()

    def insert(self, tasks: Iterable[WorkerTask]) -> None:
        """Store new tasks as given. One whose id exists, or whose (instance, block,
        attempt) belongs to a task still open, is skipped; a finished task under that
        key is replaced (a loop's next iteration runs the step afresh)."""
        for task in tasks:
            key = (task.instance_id, task.block_id, task.attempt)
            if task.id in self.tasks:
                continue
            if key in self.keys:
                old = next(
                    (
                        t
                        for t in self.tasks.values()
                        if (t.instance_id, t.block_id, t.attempt) == key
                    ),
                    None,
                )
                if old is None or not old.state.is_final:
                    continue
                del self.tasks[old.id]
                self.order.pop(old.id, None)
            self.tasks[task.id] = task
            self.order[task.id] = next(self._counter)
            self.keys.add(key)


class MemoryTaskQueue(TaskQueue):
    def __init__(self, table: TaskTable, instances: dict[str, Instance]) -> None:
        self._t = table
        self._instances = instances

    def _put(self, task: WorkerTask) -> WorkerTask:
        self._t.tasks[task.id] = task
        return task

    def _wake(self, instance_id: str, now: datetime) -> None:
        inst = self._instances.get(instance_id)
        if inst is None or inst.state not in _WAKEABLE:
            return
        fire = now if inst.next_fire_at is None else min(inst.next_fire_at, now)
        self._instances[instance_id] = evolve(
            inst, state=InstanceState.SCHEDULED, next_fire_at=fire, updated_at=now
        )

    def _existing(self, task_id: str) -> WorkerTask:
        task = self._t.tasks.get(task_id)
        if task is None:
            raise NotFound("worker task", task_id)
        return task

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
        tenant = UNSCOPED if tenant_id is None else tenant_id
        self._t.seen[(worker_id, handler_name, tenant)] = WorkerSeen(
            worker_id=worker_id,
            handler_name=handler_name,
            tenant_id=tenant,
            queue_name=queue_name,
            last_seen_at=now,
        )
        if limit <= 0:
            return []
        pending = [
            t
            for t in self._t.tasks.values()
            if t.handler_name == handler_name
            and t.state is TaskState.PENDING
            and (queue_name is None or t.queue_name == queue_name)
            and (tenant_id is None or t.tenant_id == tenant_id)
        ]
        pending.sort(key=lambda t: (t.created_at, self._t.order[t.id]))
        return [
            self._put(
                evolve(
                    t,
                    state=TaskState.CLAIMED,
                    worker_id=worker_id,
                    claimed_at=now,
                    heartbeat_at=now,
                    claim_epoch=t.claim_epoch + 1,
                )
            )
            for t in pending[:limit]
        ]

    async def heartbeat(
        self, task_id: str, worker_id: str, claim_epoch: int | None, now: datetime
    ) -> WorkerTask:
        task = self._existing(task_id)
        if task.state is not TaskState.CLAIMED or not holds(task, worker_id, claim_epoch):
            raise Conflict(lost_claim(task, worker_id, claim_epoch))
        return self._put(evolve(task, heartbeat_at=now))

    async def complete(
        self, task_id: str, worker_id: str, claim_epoch: int | None, output: Any, now: datetime
    ) -> WorkerTask:
        task = self._existing(task_id)
        if repeated(task, TaskState.COMPLETED, worker_id, claim_epoch):
            return task
        if task.state is not TaskState.CLAIMED or not holds(task, worker_id, claim_epoch):
            raise Conflict(lost_claim(task, worker_id, claim_epoch))
        done = evolve(task, state=TaskState.COMPLETED, output=output, completed_at=now)
        self._wake(task.instance_id, now)
        return self._put(done)

    async def fail(
        self,
        task_id: str,
        worker_id: str,
        claim_epoch: int | None,
        message: str,
        retryable: bool,
        now: datetime,
    ) -> WorkerTask:
        task = self._existing(task_id)
        if repeated(task, TaskState.FAILED, worker_id, claim_epoch):
            return task
        if task.state is not TaskState.CLAIMED or not holds(task, worker_id, claim_epoch):
            raise Conflict(lost_claim(task, worker_id, claim_epoch))
        failed = evolve(
            task,
            state=TaskState.FAILED,
            error_message=message,
            error_retryable=retryable,
            completed_at=now,
        )
        self._wake(task.instance_id, now)
        return self._put(failed)

    async def get(self, task_id: str) -> WorkerTask | None:
        return self._t.tasks.get(task_id)

    async def query(self, flt: TaskFilter, page: Page) -> list[WorkerTask]:
        found = [
            t
            for t in self._t.tasks.values()
            if (flt.tenant_id is None or t.tenant_id == flt.tenant_id)
            and (flt.handler_name is None or t.handler_name == flt.handler_name)
            and (flt.state is None or t.state is flt.state)
            and (flt.instance_id is None or t.instance_id == flt.instance_id)
        ]
        found.sort(key=lambda t: (t.created_at, self._t.order[t.id]), reverse=True)
        return found[page.offset : page.offset + page.limit]

    async def results(self, instance_id: str, block_ids: Seq[str]) -> dict[str, WorkerTask]:
        wanted = set(block_ids)
        newest: dict[str, WorkerTask] = {}
        for task in self._t.tasks.values():
            if task.instance_id != instance_id or task.block_id not in wanted:
                continue
            held = newest.get(task.block_id)
            if held is None or self._newer(task, held):
                newest[task.block_id] = task
        return newest

    def _newer(self, a: WorkerTask, b: WorkerTask) -> bool:
        return (a.created_at, self._t.order[a.id]) > (b.created_at, self._t.order[b.id])

    async def cancel_open(self, instance_id: str, block_ids: Seq[str], now: datetime) -> int:
        wanted = set(block_ids)
        doomed = [
            t
            for t in self._t.tasks.values()
            if t.instance_id == instance_id and t.block_id in wanted and t.state in _OPEN
        ]
        for task in doomed:
            self._put(evolve(task, state=TaskState.CANCELLED, completed_at=now))
        return len(doomed)

    async def reap_stale(self, heartbeat_before: datetime, now: datetime) -> int:
        stale = [
            t
            for t in self._t.tasks.values()
            if t.state is TaskState.CLAIMED
            and t.heartbeat_at is not None
            and t.heartbeat_at < heartbeat_before
        ]
        for task in stale:
            self._put(
                evolve(
                    task,
                    state=TaskState.PENDING,
                    worker_id=None,
                    claimed_at=None,
                    heartbeat_at=None,
                )
            )
        return len(stale)

    async def expire_timed_out(self, now: datetime) -> int:
        expired = [
            t
            for t in self._t.tasks.values()
            if t.state in _OPEN
            and t.timeout_ms is not None
            and t.created_at + timedelta(milliseconds=t.timeout_ms) <= now
        ]
        for task in expired:
            self._put(
                evolve(
                    task,
                    state=TaskState.FAILED,
                    error_message=TIMED_OUT,
                    error_retryable=False,
                    completed_at=now,
                )
            )
            self._wake(task.instance_id, now)
        return len(expired)

    async def workers(self, tenant_id: str | None) -> list[WorkerSeen]:
        claimed = Counter(
            (t.worker_id, t.handler_name)
            for t in self._t.tasks.values()
            if t.state is TaskState.CLAIMED and (tenant_id is None or t.tenant_id == tenant_id)
        )
        found = [
            evolve(w, in_flight=claimed[(w.worker_id, w.handler_name)])
            for w in self._t.seen.values()
            if tenant_id is None or w.tenant_id in (tenant_id, UNSCOPED)
        ]
        found.sort(key=lambda w: (w.worker_id, w.handler_name, w.tenant_id))
        found.sort(key=lambda w: w.last_seen_at, reverse=True)
        return found

    async def stats(self, tenant_id: str | None) -> TaskStats:
        mine = [t for t in self._t.tasks.values() if tenant_id is None or t.tenant_id == tenant_id]
        counts = Counter((t.handler_name, t.state.value) for t in mine)
        active = {t.worker_id for t in mine if t.state is TaskState.CLAIMED and t.worker_id}
        return TaskStats(
            counts=tuple((h, TaskState(s), n) for (h, s), n in sorted(counts.items())),
            active_workers=tuple(sorted(active)),
        )
