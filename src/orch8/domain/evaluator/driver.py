"""The driver: one evaluation pass over an instance's execution tree.

Every function here is pure: it takes the stored snapshot, `now` and what the
engine learned from outside (latest outputs, finished children) and returns a
new snapshot plus effects. Persisting and calling handlers is the engine's
job, which is why resuming from any stored snapshot behaves exactly like never
having stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from attrs import evolve

from orch8.domain.evaluator import branches, children, choices, loops, recovery_blocks, steps
from orch8.domain.evaluator.decisions import Advance, Cancelled, Complete, Fail, Outcome, RunStep
from orch8.domain.evaluator.snapshot import Snapshot
from orch8.domain.evaluator.tree import BlockDriver, Tree
from orch8.domain.evaluator.walk import ChildResult, Status, Walk
from orch8.domain.scheduling.backoff import backoff
from orch8.domain.sequence import (
    Block,
    CancellationScopeBlock,
    Sequence,
    StepBlock,
    SubSequenceBlock,
    child_lists,
)
from orch8.domain.tree import Node, NodeState

DRIVERS: dict[type[Any], BlockDriver] = {
    **steps.DRIVERS,
    **branches.DRIVERS,
    **loops.DRIVERS,
    **choices.DRIVERS,
    **recovery_blocks.DRIVERS,
    **children.DRIVERS,
}
TREE = Tree(DRIVERS)


def advance(
    sequence: Sequence,
    snapshot: Snapshot,
    now: datetime,
    *,
    instance_id: str,
    outputs: Mapping[str, Any] | None = None,
    children: Mapping[str, ChildResult] | None = None,
    inputs: Mapping[str, Any] | None = None,
    cancelling: bool = False,
    timezone: str = "UTC",
) -> Advance:
    """Progress everything that can progress at `now` and say what must happen next.

    `inputs` are human choices that arrived, by block id. With `cancelling`, only
    protected work continues (started cancellation scopes, running non-cancellable
    steps); everything else is cancelled, and the outcome is Cancelled once the
    protected work is over.
    """
    w = Walk(
        snapshot,
        now,
        instance_id=instance_id,
        outputs=outputs or {},
        children=children or {},
        inputs=inputs,
        timezone=timezone,
    )
    outcome: Outcome | None = None
    if cancelling:
        if not _drive_protected(w, sequence.blocks):
            _cancel_everything(w, sequence.blocks)
            outcome = Cancelled()
    else:
        progress = TREE.drive_list(w, sequence.blocks, None, None)
        if progress.status is Status.DONE:
            outcome = Complete()
        elif progress.status is Status.FAILED:
            outcome = Fail(progress.error or "failed", progress.block_id)
    if outcome is not None:
        return Advance(
            w.snapshot(), outcome, outputs=tuple(w.emitted), consumed_inputs=tuple(w.consumed)
        )
    live = [r for r in w.run if w.nodes[r.block.id].state is NodeState.RUNNING]
    unique = list({(r.block.id, r.attempt): r for r in live}.values())
    return Advance(
        w.snapshot(),
        None,
        run=tuple(unique),
        children=tuple(c for c in w.children if w.nodes[c.block.id].state is NodeState.WAITING),
        wake_at=w.wake_at,
        outputs=tuple(w.emitted),
        waiting=w.waiting,
        consumed_inputs=tuple(w.consumed),
    )


def _drive_protected(w: Walk, blocks: tuple[Block, ...]) -> bool:
    """Keep protected work going while cancelling; True while some is still active.
    Unprotected steps and unstarted blocks are cancelled on the way."""
    active = False
    for block in blocks:
        node = w.nodes.get(block.id)
        if node is None or node.state.is_terminal:
            continue
        if isinstance(block, CancellationScopeBlock) and node.state is NodeState.RUNNING:
            progress = TREE.drive(w, block, node.parent_id, node.branch_index)
            active = active or progress.status is Status.ACTIVE
        elif isinstance(block, SubSequenceBlock):
            w.finish(node, NodeState.CANCELLED)  # the engine cancels the child too
        elif isinstance(block, StepBlock):
            if not block.cancellable and node.state is NodeState.RUNNING:
                w.run.append(RunStep(block, node.attempts))
                active = True
            else:
                w.finish(node, NodeState.CANCELLED)
        else:  # any other composite: look for protected work inside it
            for children_ in child_lists(block):
                active = _drive_protected(w, children_) or active
    return active


def _cancel_everything(w: Walk, blocks: tuple[Block, ...]) -> None:
    w.cancel(blocks)


def _attempt_node(snapshot: Snapshot, block: StepBlock, attempt: int) -> Node | None:
    """The node if it is still running this attempt; None when the result is stale
    (the node was cancelled, reset by a loop, or already recorded)."""
    node = snapshot.nodes.get(block.id)
    if node is None or node.state is not NodeState.RUNNING or node.attempts != attempt:
        return None
    return node


def step_succeeded(snapshot: Snapshot, block: StepBlock, attempt: int, now: datetime) -> Snapshot:
    node = _attempt_node(snapshot, block, attempt)
    if node is None:
        return snapshot
    return snapshot.with_node(
        evolve(node, state=NodeState.COMPLETED, completed_at=now, error=None, reserved_at=None)
    )


def step_deferred(
    snapshot: Snapshot,
    block: StepBlock,
    attempt: int,
    until: datetime,
    *,
    reserved_at: datetime | None = None,
) -> Snapshot:
    """Give back an attempt that was not made (its rate limit has a place for it only
    later): the node waits, pending, until `until`, holding the place `reserved_at`,
    and the attempt number is not used up."""
    node = _attempt_node(snapshot, block, attempt)
    if node is None:
        return snapshot
    return snapshot.with_node(
        evolve(
            node,
            state=NodeState.PENDING,
            attempts=node.attempts - 1,
            not_before=until,
            reserved_at=reserved_at,
        )
    )


def step_failed(
    snapshot: Snapshot,
    block: StepBlock,
    attempt: int,
    error: str,
    *,
    retryable: bool,
    now: datetime,
) -> Snapshot:
    """Record a failed attempt: schedule the retry the policy allows, or fail the node."""
    node = _attempt_node(snapshot, block, attempt)
    if node is None:
        return snapshot
    policy = block.retry
    if retryable and policy is not None and node.attempts < policy.max_attempts:
        retry_at = now + backoff(policy, node.attempts - 1)
        return snapshot.with_node(
            evolve(
                node, state=NodeState.PENDING, not_before=retry_at, error=error, reserved_at=None
            )
        )
    return snapshot.with_node(
        evolve(node, state=NodeState.FAILED, completed_at=now, error=error, reserved_at=None)
    )
