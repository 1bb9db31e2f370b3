"""One evaluation pass: the mutable working set behind a pure `advance` call.

A Walk starts from a snapshot, lets each block driver read and replace nodes,
and collects the effects. Nothing outside the pass ever sees it mutate: the
result is frozen into an `Advance`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from functools import lru_cache
from typing import Any

from attrs import evolve, frozen

from orch8.domain.context import ExecutionContext
from orch8.domain.context_keys import STATE_KEY
from orch8.domain.errors import DomainError
from orch8.domain.evaluator.decisions import RunStep, StartChild
from orch8.domain.evaluator.snapshot import Snapshot
from orch8.domain.expressions import Expr, evaluate, parse, truthy
from orch8.domain.scope import Scope
from orch8.domain.sequence import Block, block_type, walk
from orch8.domain.templates import render
from orch8.domain.tree import Node, NodeState


class Status(Enum):
    DONE = "done"  # completed or skipped
    FAILED = "failed"
    ACTIVE = "active"  # still running, waiting or sleeping


@frozen
class Progress:
    status: Status
    error: str | None = None
    block_id: str | None = None  # the innermost block that failed


DONE = Progress(Status.DONE)
ACTIVE = Progress(Status.ACTIVE)


def failed(error: str, block_id: str | None) -> Progress:
    return Progress(Status.FAILED, error, block_id)


@frozen
class ChildResult:
    """What a sub_sequence child ended as, handed in by the engine."""

    state: str  # completed | failed | cancelled
    output: Any = None


class Walk:
    def __init__(
        self,
        snapshot: Snapshot,
        now: datetime,
        *,
        instance_id: str,
        outputs: Mapping[str, Any],
        children: Mapping[str, ChildResult],
        inputs: Mapping[str, Any] | None = None,
        timezone: str = "UTC",
    ) -> None:
        self.nodes: dict[str, Node] = dict(snapshot.nodes)
        self.context = snapshot.context
        self.now = now
        self.instance_id = instance_id
        self.outputs: dict[str, Any] = dict(outputs)
        self.child_results = children
        self.inputs: Mapping[str, Any] = inputs or {}
        self.timezone = timezone
        self.consumed: list[str] = []
        self.waiting = False
        self.locals: dict[str, Any] = {}
        self.run: list[RunStep] = []
        self.children: list[StartChild] = []
        self.emitted: list[tuple[str, Any]] = []
        self.wake_at: datetime | None = None

    # nodes -----------------------------------------------------------------
    def node(self, block: Block, parent: str | None, branch: int | None) -> Node:
        found = self.nodes.get(block.id)
        if found is None:
            found = Node(block.id, block_type(block), parent_id=parent, branch_index=branch)
        return found

    def put(self, node: Node) -> Node:
        self.nodes[node.block_id] = node
        return node

    def start(self, node: Node) -> Node:
        if node.state is NodeState.PENDING:
            return self.put(evolve(node, state=NodeState.RUNNING, started_at=self.now))
        return node

    def finish(self, node: Node, state: NodeState, error: str | None = None) -> Node:
        return self.put(evolve(node, state=state, completed_at=self.now, error=error))

    def reset(self, blocks: tuple[Block, ...]) -> None:
        """Forget every node below (for the next loop iteration)."""
        for block, _depth in walk(blocks):
            existing = self.nodes.get(block.id)
            if existing is not None:
                self.nodes[block.id] = Node(
                    block.id,
                    existing.block_type,
                    parent_id=existing.parent_id,
                    branch_index=existing.branch_index,
                )
                self.outputs.pop(block.id, None)

    def cancel(self, blocks: tuple[Block, ...]) -> None:
        """Cancel every started, unfinished node below; an in-flight step's result
        will be ignored when it arrives."""
        for block, _depth in walk(blocks):
            existing = self.nodes.get(block.id)
            if existing is not None and not existing.state.is_terminal:
                self.finish(existing, NodeState.CANCELLED)

    # effects ---------------------------------------------------------------
    def sleep_until(self, at: datetime) -> None:
        if self.wake_at is None or at < self.wake_at:
            self.wake_at = at

    def emit(self, block_id: str, output: Any) -> None:
        self.emitted.append((block_id, output))
        self.outputs[block_id] = output

    def set_data(self, key: str, value: Any) -> None:
        self.context = evolve(self.context, data={**self.context.data, key: value})

    def drop_data(self, key: str) -> None:
        if key in self.context.data:
            data = dict(self.context.data)
            del data[key]
            self.context = evolve(self.context, data=data)

    def value(self, text: str, *, strict: bool = False) -> Any:
        """Evaluate an expression (or a `{{ }}`-wrapped path) against the instance."""
        return evaluate(parsed(text), self.scope(), strict=strict)

    def collection(self, text: str) -> Any:
        """A for_each collection: a path or expression, or a `{{ }}` template (which may
        use fallbacks and filters that expressions lack)."""
        if "|" in text and "{{" in text:
            try:
                return render(text, self.scope())
            except DomainError:
                return None
        return self.value(text)

    def condition(self, text: str, *, strict: bool = False) -> bool:
        return truthy(self.value(text, strict=strict))

    def scope(self) -> Scope:
        return scope_for(
            self.context, self.outputs, self.locals, instance_id=self.instance_id, now=self.now
        )

    def snapshot(self) -> Snapshot:
        return Snapshot(self.context, self.nodes)


@lru_cache(maxsize=4096)
def parsed(text: str) -> Expr:
    """Parsing is pure, so each distinct expression is parsed once per process."""
    return parse(text)


def scope_for(
    context: ExecutionContext,
    outputs: Mapping[str, Any],
    locals_: Mapping[str, Any],
    *,
    instance_id: str,
    now: datetime,
) -> Scope:
    state = context.runtime.get(STATE_KEY)
    return Scope(
        data=context.data,
        config=context.config,
        runtime=context.runtime,
        outputs=outputs,
        state=state if isinstance(state, Mapping) else {},
        instance_id=instance_id,
        now=now,
        seed=instance_id,
        locals=locals_,
    )
