"""Advancing an instance's execution tree: pure functions of (definition, snapshot, now)."""

from orch8.domain.evaluator.decisions import Advance, Complete, Decision, Fail, RunStep, Sleep
from orch8.domain.evaluator.driver import advance, step_failed, step_succeeded
from orch8.domain.evaluator.snapshot import Snapshot

__all__ = [
    "Advance",
    "Complete",
    "Decision",
    "Fail",
    "RunStep",
    "Sleep",
    "Snapshot",
    "advance",
    "step_failed",
    "step_succeeded",
]
