"""What one evaluation pass tells the engine to do."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from attrs import field, frozen

from orch8.domain.evaluator.snapshot import Snapshot
from orch8.domain.instance import InstanceState
from orch8.domain.sequence import StepBlock, SubSequenceBlock


@frozen
class RunStep:
    """Call the step's handler now; `attempt` is 1-based. `locals` are the loop and
    for_each bindings in force where the step sits (for templates)."""

    block: StepBlock
    attempt: int
    locals: Mapping[str, Any] = field(factory=dict)


@frozen
class StartChild:
    """Create a child instance of `sequence_name` for this sub_sequence node."""

    block: SubSequenceBlock
    input: Mapping[str, Any]


@frozen
class Complete:
    pass


@frozen
class Fail:
    error: str
    block_id: str | None = None


@frozen
class Cancelled:
    pass


Outcome = Complete | Fail | Cancelled


@frozen
class Advance:
    """The new snapshot and every effect the pass produced.

    `outcome` is set when the instance is finished. Otherwise the engine runs
    `run`, starts `children`, and when nothing can run now sleeps until
    `wake_at` (a delay or backoff) or, when `waiting` (a node waits for a child or
    a person), parks the instance as waiting — until `wake_at` at the latest.
    `consumed_inputs` names the blocks whose human input this pass used.
    """

    snapshot: Snapshot
    outcome: Outcome | None = None
    run: tuple[RunStep, ...] = ()
    children: tuple[StartChild, ...] = ()
    wake_at: datetime | None = None
    outputs: tuple[tuple[str, Any], ...] = ()
    waiting: bool = False
    consumed_inputs: tuple[str, ...] = ()

    @property
    def idle(self) -> bool:
        """Nothing to do now: the instance must sleep or wait."""
        return self.outcome is None and not self.run and not self.children

    def parked(self, now: datetime) -> tuple[InstanceState, datetime | None]:
        """The state and due time an unfinished instance is handed back with when this
        run makes no more progress."""
        if self.run:  # the engine is stopping: hand the started steps back, due now
            return InstanceState.SCHEDULED, now
        if self.waiting:  # for a child or a person; until a timeout at the latest
            return InstanceState.WAITING, self.wake_at
        if self.wake_at is not None:
            return InstanceState.SCHEDULED, self.wake_at
        return InstanceState.WAITING, None
