"""Execution-tree nodes: the per-block part of an instance's snapshot."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from attrs import frozen


class NodeState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    WAITING = "waiting"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"

    @property
    def is_done(self) -> bool:
        return self in (NodeState.COMPLETED, NodeState.SKIPPED)

    @property
    def is_terminal(self) -> bool:
        return self in (
            NodeState.COMPLETED,
            NodeState.SKIPPED,
            NodeState.FAILED,
            NodeState.CANCELLED,
        )


@frozen
class Node:
    """One block's progress inside one instance.

    `attempts` counts handler attempts started; `not_before` is when a pending
    node may next run (its delay, or its retry backoff), fixed once computed so
    a restart never re-rolls jitter or restarts a delay. Composite blocks keep
    their progress in `iteration` (loop and for_each count) and `branch` (the
    chosen route or variant, the try/catch phase, the saga step being undone);
    `ref` names what a waiting node waits for (a child instance). `reserved_at`
    is the place a pending step holds under its rate limit: the instant it may
    start, already counted in the key's log, so it is not counted again.
    """

    block_id: str
    block_type: str
    state: NodeState = NodeState.PENDING
    parent_id: str | None = None
    branch_index: int | None = None
    attempts: int = 0
    not_before: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error: str | None = None
    iteration: int = 0
    branch: int | None = None
    ref: str | None = None
    reserved_at: datetime | None = None
