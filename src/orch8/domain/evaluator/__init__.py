"""Advancing an instance's execution tree: pure functions of (definition, snapshot, now)."""

from orch8.domain.evaluator.decisions import (
    Advance,
    Cancelled,
    Complete,
    Fail,
    Outcome,
    RunStep,
    StartChild,
)
from orch8.domain.evaluator.driver import advance, step_deferred, step_failed, step_succeeded
from orch8.domain.evaluator.snapshot import Snapshot
from orch8.domain.evaluator.walk import ChildResult

__all__ = [
    "Advance",
    "Cancelled",
    "ChildResult",
    "Complete",
    "Fail",
    "Outcome",
    "RunStep",
    "Snapshot",
    "StartChild",
    "advance",
    "step_deferred",
    "step_failed",
    "step_succeeded",
]
