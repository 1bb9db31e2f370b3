"""A driver for the pure evaluator that plays the engine: runs steps, sleeps, records.

Steps complete with the outcome `outcomes(block_id, attempt)` gives ("ok",
"retryable", "permanent"); when several steps are in flight, `pick` chooses
which finishes first (by default the first started).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from attrs import frozen

from orch8.codec.blocks import read_blocks
from orch8.domain.context import ExecutionContext
from orch8.domain.evaluator import Outcome, RunStep, Snapshot, advance, step_failed, step_succeeded
from orch8.domain.sequence import Block, Sequence, walk
from orch8.domain.tree import NodeState
from orch8.domain.validation import validate_blocks

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def ok(_block: str, _attempt: int) -> str:
    return "ok"


def sequence(blocks: list[dict[str, Any]] | tuple[Block, ...]) -> Sequence:
    parsed = read_blocks(blocks, "blocks") if isinstance(blocks, list) else blocks
    validate_blocks(parsed)
    return Sequence("seq", "t", "default", "n", 1, parsed, T0)


@frozen
class Result:
    outcome: Outcome
    runs: list[tuple[str, int]]
    snapshot: Snapshot
    outputs: dict[str, Any]

    def state(self, block_id: str) -> NodeState:
        node = self.snapshot.nodes.get(block_id)
        return NodeState.PENDING if node is None else node.state


def parents(seq: Sequence) -> dict[str, str | None]:
    found: dict[str, str | None] = {b.id: None for b in seq.blocks}
    from orch8.domain.sequence import child_lists

    for block, _ in walk(seq.blocks):
        for lst in child_lists(block):
            for child in lst:
                found[child.id] = block.id
    return found


def simulate(
    seq: Sequence,
    *,
    data: dict[str, Any] | None = None,
    outcomes: Callable[[str, int], str] = ok,
    pick: Callable[[list[RunStep]], int] = lambda steps: 0,
    crash_after: int | None = None,
    max_passes: int = 20_000,
    timezone: str = "UTC",
) -> Result:
    snap = Snapshot(ExecutionContext(data=data or {}))
    committed = snap
    outputs: dict[str, Any] = {}
    now = T0
    inflight: list[RunStep] = []
    runs: list[tuple[str, int]] = []
    up = parents(seq)
    for _ in range(max_passes):
        adv = advance(seq, snap, now, instance_id="i-1", outputs=outputs, timezone=timezone)
        for block_id, value in adv.outputs:
            outputs[block_id] = value
        snap = adv.snapshot
        if adv.outcome is not None:
            return Result(adv.outcome, runs, snap, outputs)
        for step in adv.run:
            # invariant: nothing starts below a finished block
            parent = up[step.block.id]
            while parent is not None:
                assert not snap.nodes[parent].state.is_terminal, (step.block.id, parent)
                parent = up[parent]
            if all((s.block.id, s.attempt) != (step.block.id, step.attempt) for s in inflight):
                inflight.append(step)
        inflight = [
            s
            for s in inflight
            if snap.nodes[s.block.id].state is NodeState.RUNNING
            and snap.nodes[s.block.id].attempts == s.attempt
        ]
        if inflight:
            if crash_after is not None and len(runs) == crash_after:
                crash_after = None
                # The in-flight work was never recorded. Recovery happens at the same
                # simulated instant, so delays computed again land where they did.
                snap, inflight = committed, []
                continue
            step = inflight.pop(pick(inflight) % len(inflight))
            runs.append((step.block.id, step.attempt))
            now += timedelta(milliseconds=5)
            result = outcomes(step.block.id, step.attempt)
            if result == "ok":
                snap = step_succeeded(snap, step.block, step.attempt, now)
                outputs[step.block.id] = {"block": step.block.id}
            else:
                snap = step_failed(
                    snap, step.block, step.attempt, result, retryable=result == "retryable", now=now
                )
            committed = snap
        elif adv.wake_at is not None:
            assert adv.wake_at > now
            now = adv.wake_at
        else:
            raise AssertionError("stuck: nothing to run, nothing to wait for")
    raise AssertionError("did not terminate")
