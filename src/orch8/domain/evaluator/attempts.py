"""What became of a step attempt, applied to the snapshot.

The runner calls handlers, waits for rate-limit places and hands steps to
workers; what each of those comes back with is one of the values here, and
applying it is pure: the new snapshot plus the output rows the commit must
record. Ids and the instant are passed in, so a replay applies the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from enum import Enum
from typing import Any

from attrs import evolve, frozen

from orch8.domain.context_changes import apply_changes
from orch8.domain.evaluator.decisions import RunStep
from orch8.domain.evaluator.driver import step_deferred, step_failed, step_succeeded
from orch8.domain.evaluator.snapshot import Snapshot
from orch8.domain.outputs import ERROR_REF, BlockOutput
from orch8.domain.sequence import StepBlock
from orch8.domain.tasks import TaskState, WorkerTask
from orch8.domain.tree import Node, NodeState


@frozen
class Succeeded:
    output: Any
    size: int
    data: Mapping[str, Any] | None = None
    state: Mapping[str, Any] | None = None


@frozen
class Failed:
    message: str
    retryable: bool


@frozen
class Deferred:
    """An attempt not made yet: the step's rate-limit place is at `reserved_at`, and
    its instance is handed back until `until`, a little before it."""

    until: datetime
    reserved_at: datetime | None = None


@frozen
class Dispatched:
    """The step's handler lives in an external worker: this task was created for it."""

    task: WorkerTask


HandlerOutcome = Succeeded | Failed
AttemptResult = Succeeded | Failed | Deferred | Dispatched


class Ending(Enum):
    """How a recorded attempt ended: what the engine's step counters count."""

    SUCCEEDED = "succeeded"
    RETRYING = "retrying"  # failed, and the step will be attempted again
    FAILED = "failed"  # failed, and the step fails with it


_SUCCEEDED = (Ending.SUCCEEDED,)
_RETRYING = (Ending.RETRYING,)
_FAILED = (Ending.FAILED,)


@frozen
class Applied:
    """The snapshot after a result, the rows to record with it, the worker task to
    insert when the step was handed to a worker, and how the attempts recorded
    ended (none for an attempt not made, handed to a worker, or stale)."""

    snapshot: Snapshot
    rows: tuple[BlockOutput, ...] = ()
    task: WorkerTask | None = None
    ends: tuple[Ending, ...] = ()


@frozen
class Stamp:
    """Where and when results are recorded: the instance, the instant, and where
    the rows' ids come from (asked only for a row actually made)."""

    instance_id: str
    now: datetime
    new_id: Callable[[], str]

    def row(
        self, block_id: str, output: Any, attempt: int, *, size: int = 0, ref: str | None = None
    ) -> BlockOutput:
        return BlockOutput(
            id=self.new_id(),
            instance_id=self.instance_id,
            block_id=block_id,
            output=output,
            attempt=attempt,
            created_at=self.now,
            output_size=size,
            output_ref=ref,
        )


def result_row(result: AttemptResult, block_id: str, attempt: int, at: Stamp) -> BlockOutput | None:
    """The row an attempt leaves: its output, or its error under ERROR_REF. An attempt
    not made (deferred, or handed to a worker) leaves none."""
    if isinstance(result, Succeeded):
        return at.row(block_id, result.output, attempt, size=result.size)
    if isinstance(result, Failed):
        error = {"error": result.message, "retryable": result.retryable}
        return at.row(block_id, error, attempt, ref=ERROR_REF)
    return None


def apply_attempt(snapshot: Snapshot, step: RunStep, result: AttemptResult, at: Stamp) -> Applied:
    """Record a finished attempt; a stale one (its node cancelled, reset or already
    recorded meanwhile) leaves the snapshot as it is and records nothing."""
    block, attempt = step.block, step.attempt
    if isinstance(result, Succeeded):  # the common case first: this runs after every step
        after = step_succeeded(snapshot, block, attempt, at.now)
        if after is snapshot:
            return Applied(snapshot)
        row = at.row(block.id, result.output, attempt, size=result.size)
        return Applied(apply_changes(after, result.data, result.state), (row,), ends=_SUCCEEDED)
    if isinstance(result, Failed):
        after = step_failed(
            snapshot, block, attempt, result.message, retryable=result.retryable, now=at.now
        )
        if after is snapshot:
            return Applied(snapshot)
        error = {"error": result.message, "retryable": result.retryable}
        ends = _RETRYING if after.nodes[block.id].state is NodeState.PENDING else _FAILED
        return Applied(after, (at.row(block.id, error, attempt, ref=ERROR_REF),), ends=ends)
    if isinstance(result, Deferred):  # its rate-limit place is later: wait, never fail
        return Applied(
            step_deferred(snapshot, block, attempt, result.until, reserved_at=result.reserved_at)
        )
    # Dispatched: the instance waits for a worker
    node = snapshot.nodes.get(block.id)
    if node is None or node.state is not NodeState.RUNNING:
        return Applied(snapshot)
    waiting = evolve(node, state=NodeState.WAITING, ref=result.task.id)
    return Applied(snapshot.with_node(waiting), task=result.task)


def waits_on_task(node: Node) -> bool:
    """A step node parked on the worker task its `ref` names."""
    return node.state is NodeState.WAITING and node.block_type == "step" and node.ref is not None


def apply_task_result(
    snapshot: Snapshot, block: StepBlock, task: WorkerTask, at: Stamp
) -> Applied | None:
    """Record how a worker task ended for the step waiting on it; None when the step
    does not wait on this task or the task has not ended (or was cancelled)."""
    node = snapshot.nodes.get(block.id)
    if node is None or not waits_on_task(node) or node.ref != task.id:
        return None
    if not task.state.is_final or task.state is TaskState.CANCELLED:
        return None
    running = snapshot.with_node(evolve(node, state=NodeState.RUNNING))
    result: HandlerOutcome
    if task.state is TaskState.COMPLETED:
        data = task.output if isinstance(task.output, Mapping) else None
        result = Succeeded(task.output, len(json.dumps(task.output)), data=data)
    else:
        message = task.error_message or "worker reported a failure"
        result = Failed(message, bool(task.error_retryable))
    step = RunStep(block, node.attempts)
    return apply_attempt(running, step, result, at)


def apply_task_results(
    snapshot: Snapshot,
    steps: Mapping[str, StepBlock],
    results: Mapping[str, WorkerTask],
    at: Stamp,
) -> tuple[Applied, int]:
    """Record the worker tasks that ended while their instance waited (by block id,
    as read from the task queue); also how many steps that ended."""
    rows: list[BlockOutput] = []
    ends: list[Ending] = []
    ended = 0
    for block_id, task in results.items():
        block = steps.get(block_id)
        applied = None if block is None else apply_task_result(snapshot, block, task, at)
        if applied is not None:
            snapshot = applied.snapshot
            rows += applied.rows
            ends += applied.ends
            ended += 1
    return Applied(snapshot, tuple(rows), ends=tuple(ends)), ended
