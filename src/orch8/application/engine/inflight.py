"""The attempts of one instance running at once, for its parallel branches.

Bounded per instance, so one wide fan-out cannot take every slot of the
process; an attempt whose node was cancelled meanwhile (a race lost, a branch
failed) is cancelled rather than left running for nobody.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any

from orch8.domain.evaluator import RunStep, Snapshot
from orch8.domain.evaluator.attempts import AttemptResult
from orch8.domain.tree import NodeState

Call = Callable[[RunStep], Coroutine[Any, Any, AttemptResult]]


class Inflight(dict["asyncio.Task[AttemptResult]", RunStep]):
    """Each running call and the step it runs. A dict itself: the loop asks whether
    anything runs after every step, and a dict answers without a Python call."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def launch(self, steps: Iterable[RunStep], call: Call) -> None:
        """Start the steps not already running, while there is room."""
        busy = {(s.block.id, s.attempt) for s in self.values()}
        for step in steps:
            if len(self) >= self.limit:
                return
            if (step.block.id, step.attempt) in busy:
                continue
            self[asyncio.create_task(call(step))] = step

    def cancel_stale(self, snapshot: Snapshot) -> None:
        """Stop the calls whose node no longer runs their attempt."""
        for task, step in self.items():
            node = snapshot.nodes.get(step.block.id)
            if node is None or node.state is not NodeState.RUNNING or node.attempts != step.attempt:
                task.cancel()

    async def finished(self, interrupt: Awaitable[None]) -> list[tuple[RunStep, AttemptResult]]:
        """Wait for an attempt to end, or for `interrupt` (a signal may need seeing
        while long steps run). The attempts ended by then, in launch order; a
        cancelled one is dropped."""
        wake = asyncio.ensure_future(interrupt)
        try:
            done, _ = await asyncio.wait([*self, wake], return_when=asyncio.FIRST_COMPLETED)
        finally:
            wake.cancel()
        ended: list[tuple[RunStep, AttemptResult]] = []
        for task in list(self):
            if task in done:
                step = self.pop(task)
                if not task.cancelled():
                    ended.append((step, task.result()))
        return ended

    def cancel_all(self) -> None:
        for task in self:
            task.cancel()
