"""What the evaluator tells the engine to do next."""

from __future__ import annotations

from datetime import datetime

from attrs import frozen

from orch8.domain.evaluator.snapshot import Snapshot
from orch8.domain.sequence import StepBlock


@frozen
class RunStep:
    """Call the step's handler now; `attempt` is 1-based."""

    block: StepBlock
    attempt: int


@frozen
class Sleep:
    """Nothing can run before `until`: park the instance in storage."""

    until: datetime


@frozen
class Complete:
    pass


@frozen
class Fail:
    error: str
    block_id: str | None = None


Decision = RunStep | Sleep | Complete | Fail


@frozen
class Advance:
    snapshot: Snapshot
    decision: Decision
