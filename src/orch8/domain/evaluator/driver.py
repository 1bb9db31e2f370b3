"""The driver: walks the top-level block list and decides the next move.

Each function is pure: it takes the stored snapshot and `now`, and returns a
new snapshot plus a decision. Persisting and calling handlers is the engine's
job, which is why resuming from any stored snapshot behaves exactly like never
having stopped.
"""

from __future__ import annotations

from datetime import datetime

from attrs import evolve

from orch8.domain.evaluator.decisions import Advance, Complete, Fail, RunStep, Sleep
from orch8.domain.evaluator.snapshot import Snapshot
from orch8.domain.scheduling.backoff import backoff
from orch8.domain.scheduling.delay import delay_target
from orch8.domain.sequence import Block, Sequence, StepBlock, block_type
from orch8.domain.tree import Node, NodeState


def node_for(snapshot: Snapshot, block: Block) -> Node:
    existing = snapshot.nodes.get(block.id)
    return existing if existing is not None else Node(block.id, block_type(block))


def advance(sequence: Sequence, snapshot: Snapshot, now: datetime, *, instance_id: str) -> Advance:
    for block in sequence.blocks:
        node = node_for(snapshot, block)
        if node.state.is_done:
            continue
        if node.state in (NodeState.FAILED, NodeState.CANCELLED):
            return Advance(snapshot, Fail(node.error or "step failed", block.id))
        if not isinstance(block, StepBlock):
            error = f"block type '{node.block_type}' cannot run yet"
            failed = evolve(node, state=NodeState.FAILED, error=error, completed_at=now)
            return Advance(snapshot.with_node(failed), Fail(error, block.id))
        return _advance_step(block, node, snapshot, now, instance_id=instance_id)
    return Advance(snapshot, Complete())


def _advance_step(
    block: StepBlock, node: Node, snapshot: Snapshot, now: datetime, *, instance_id: str
) -> Advance:
    if node.state is NodeState.RUNNING:
        # The process that started this attempt died before recording it: run again.
        return Advance(snapshot, RunStep(block, node.attempts))
    if node.not_before is None and node.attempts == 0 and block.delay is not None:
        holidays = snapshot.context.config.get("holidays", ())
        until = delay_target(
            block.delay,
            now,
            seed=f"{instance_id}:{block.id}",
            extra_holidays=[h for h in holidays if isinstance(h, str)]
            if isinstance(holidays, list | tuple)
            else (),
        )
        node = evolve(node, not_before=until)
        snapshot = snapshot.with_node(node)
    if node.not_before is not None and node.not_before > now:
        return Advance(snapshot, Sleep(node.not_before))
    running = evolve(
        node,
        state=NodeState.RUNNING,
        attempts=node.attempts + 1,
        started_at=now,
        not_before=None,
    )
    return Advance(snapshot.with_node(running), RunStep(block, running.attempts))


def _find_step(sequence: Sequence, block_id: str) -> StepBlock:
    for block in sequence.blocks:
        if block.id == block_id and isinstance(block, StepBlock):
            return block
    raise KeyError(block_id)


def step_succeeded(
    sequence: Sequence, snapshot: Snapshot, block_id: str, now: datetime
) -> Snapshot:
    node = node_for(snapshot, _find_step(sequence, block_id))
    return snapshot.with_node(evolve(node, state=NodeState.COMPLETED, completed_at=now, error=None))


def step_failed(
    sequence: Sequence,
    snapshot: Snapshot,
    block_id: str,
    error: str,
    *,
    retryable: bool,
    now: datetime,
) -> Snapshot:
    """Record a failed attempt: schedule the retry the policy allows, or fail the node."""
    block = _find_step(sequence, block_id)
    node = node_for(snapshot, block)
    policy = block.retry
    if retryable and policy is not None and node.attempts < policy.max_attempts:
        retry_at = now + backoff(policy, node.attempts - 1)
        return snapshot.with_node(
            evolve(node, state=NodeState.PENDING, not_before=retry_at, error=error)
        )
    return snapshot.with_node(evolve(node, state=NodeState.FAILED, completed_at=now, error=error))
