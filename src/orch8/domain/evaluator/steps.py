"""The `step` block: guard, delay, then a handler attempt."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from attrs import evolve

from orch8.domain.errors import DomainError
from orch8.domain.evaluator.decisions import RunStep
from orch8.domain.evaluator.tree import BlockDriver, Tree
from orch8.domain.evaluator.walk import ACTIVE, DONE, Progress, Walk, failed
from orch8.domain.scheduling.delay import delay_target
from orch8.domain.scheduling.local_time import zone
from orch8.domain.scheduling.window import next_opening
from orch8.domain.sequence import Block, StepBlock
from orch8.domain.tree import Node, NodeState


def drive_step(w: Walk, block: Block, node: Node, tree: Tree) -> Progress:
    assert isinstance(block, StepBlock)
    if node.state is NodeState.RUNNING:
        # In flight (the engine dedups), or orphaned by a crash: run it (again).
        w.run.append(RunStep(block, node.attempts, dict(w.locals)))
        return ACTIVE
    if node.state is NodeState.WAITING:
        if node.ref is not None:  # handed to an external worker: wait for its report
            w.waiting = True
            return ACTIVE
        return _await_input(w, block, node)
    fresh = node.attempts == 0 and node.not_before is None
    if fresh and block.when is not None:
        try:
            go = w.condition(block.when, strict=True)
        except DomainError as exc:
            error = f"when: {exc}"
            w.finish(node, NodeState.FAILED, error)
            return failed(error, block.id)
        if not go:
            w.finish(node, NodeState.SKIPPED)
            return DONE
    if fresh and block.delay is not None:
        holidays = w.context.config.get("holidays", ())
        extra = [h for h in holidays if isinstance(h, str)] if isinstance(holidays, list) else []
        node = w.put(
            evolve(
                node,
                not_before=delay_target(
                    block.delay,
                    w.now,
                    seed=f"{w.instance_id}:{block.id}",
                    extra_holidays=extra,
                    timezone=w.timezone,
                ),
            )
        )
    if node.not_before is not None and node.not_before > w.now:
        w.sleep_until(node.not_before)
        return ACTIVE
    if block.send_window is not None:
        opening = next_opening(block.send_window, w.now, zone(w.timezone))
        if opening is not None:  # outside the window: defer to its next opening
            w.put(evolve(node, not_before=opening))
            w.sleep_until(opening)
            return ACTIVE
    if block.wait_for_input is not None and node.attempts == 0:
        # The gate comes before the handler: wait for a person's choice.
        waiting = w.put(evolve(node, state=NodeState.WAITING, started_at=w.now, not_before=None))
        return _await_input(w, block, waiting)
    return _start_attempt(w, block, node)


def _start_attempt(w: Walk, block: StepBlock, node: Node) -> Progress:
    running = w.put(
        evolve(
            node,
            state=NodeState.RUNNING,
            attempts=node.attempts + 1,
            started_at=w.now,
            not_before=None,
        )
    )
    w.run.append(RunStep(block, running.attempts, dict(w.locals)))
    return ACTIVE


def _await_input(w: Walk, block: StepBlock, node: Node) -> Progress:
    """A step parked at its `wait_for_input` gate: take the person's choice, or time out."""
    gate = block.wait_for_input
    if gate is None:  # a waiting step without a gate waits on something else
        w.waiting = True
        return ACTIVE
    if block.id in w.inputs:
        value = w.inputs[block.id]
        w.consumed.append(block.id)
        w.emit(block.id, {"value": value})
        w.set_data(gate.store_as or block.id, value)
        return _start_attempt(w, block, evolve(node, state=NodeState.PENDING))
    started = node.started_at or w.now
    if gate.timeout_ms is not None:
        deadline = started + timedelta(milliseconds=gate.timeout_ms)
        if w.now >= deadline:
            if gate.escalation_handler:
                w.emit(
                    block.id,
                    {
                        "_escalated": True,
                        "_escalation_handler": gate.escalation_handler,
                        "_timeout_seconds": gate.timeout_ms // 1000,
                    },
                )
                w.finish(node, NodeState.COMPLETED)
                return DONE
            error = f"no input within {gate.timeout_ms} ms"
            w.finish(node, NodeState.FAILED, error)
            return failed(error, block.id)
        w.sleep_until(deadline)
    w.waiting = True
    return ACTIVE


# The block types this module drives (the driver merges every module's table).
DRIVERS: dict[type[Any], BlockDriver] = {
    StepBlock: drive_step,
}
