"""A worker's counters, apart from the Worker because its task runs and reports count too."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class WorkerStats:
    """Counters a caller can watch (tests, metrics, a health endpoint)."""

    claimed: int = 0
    completed: int = 0
    failed: int = 0
    dropped: int = 0
    """Reports the server refused with 409/404: the task had been re-offered or was gone."""
    abandoned: int = 0
    """Handlers cancelled before reporting: at the end of a stop's grace period, or
    because a heartbeat learned the claim was lost."""
    poll_errors: int = 0
