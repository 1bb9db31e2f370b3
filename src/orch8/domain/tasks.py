"""Worker tasks: a step handed to an external worker, and what came back."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from attrs import field, frozen


class TaskState(StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self in (TaskState.COMPLETED, TaskState.FAILED, TaskState.CANCELLED)


@frozen
class WorkerTask:
    """One attempt of one step, owned by whichever worker claimed it last.

    `claim_epoch` grows by one at every claim; a report carrying an older epoch
    comes from a worker that lost the task and is refused.
    """

    id: str
    instance_id: str
    tenant_id: str
    block_id: str
    handler_name: str
    attempt: int
    created_at: datetime
    params: Mapping[str, Any] = field(factory=dict)
    context: Mapping[str, Any] = field(factory=dict)
    queue_name: str | None = None
    timeout_ms: int | None = None
    state: TaskState = TaskState.PENDING
    worker_id: str | None = None
    claimed_at: datetime | None = None
    heartbeat_at: datetime | None = None
    claim_epoch: int = 0
    output: Any = None
    error_message: str | None = None
    error_retryable: bool | None = None
    completed_at: datetime | None = None
