"""The `step` block: guard, delay, then a handler attempt."""

from __future__ import annotations

from attrs import evolve

from orch8.domain.errors import DomainError
from orch8.domain.evaluator.decisions import RunStep
from orch8.domain.evaluator.tree import Tree
from orch8.domain.evaluator.walk import ACTIVE, DONE, Progress, Walk, failed
from orch8.domain.scheduling.delay import delay_target
from orch8.domain.sequence import Block, StepBlock
from orch8.domain.tree import Node, NodeState


def drive_step(w: Walk, block: Block, node: Node, tree: Tree) -> Progress:
    assert isinstance(block, StepBlock)
    if node.state is NodeState.RUNNING:
        # In flight (the engine dedups), or orphaned by a crash: run it (again).
        w.run.append(RunStep(block, node.attempts, dict(w.locals)))
        return ACTIVE
    if node.state is NodeState.WAITING:
        return ACTIVE
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
                    block.delay, w.now, seed=f"{w.instance_id}:{block.id}", extra_holidays=extra
                ),
            )
        )
    if node.not_before is not None and node.not_before > w.now:
        w.sleep_until(node.not_before)
        return ACTIVE
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
