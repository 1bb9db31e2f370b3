"""`Metrics`: what the engine and the HTTP layer tell the outside about the work done.

Each method is named for what happened; the adapter decides how it is counted
(`adapters/prometheus/`). Calls sit on the hot path (one or two per step), so
an implementation must be cheap and must never raise or block. Labels stay
bounded: the engine passes a handler's name and the adapter collapses it
(`handler_label`), HTTP passes the route template, never the raw path.

`NoMetrics` does nothing: the default for engine parts built without one, and
for tests that do not look at metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from attrs import frozen

from orch8.domain.evaluator.attempts import Ending
from orch8.domain.tasks import TaskState

# The label of a step's handler in `orch8_step_duration_seconds`: a built-in's
# name is its own label, `wasm://...` plugins share one, and every other name
# (an external worker's handler, or one an embedding application registered)
# shares another, so a sequence cannot add a series by naming a new handler.
WASM_LABEL = "wasm"
EXTERNAL_LABEL = "external"


def handler_label(name: str, builtin: frozenset[str]) -> str:
    if name in builtin:
        return name
    if name.startswith("wasm://"):
        return WASM_LABEL
    return EXTERNAL_LABEL


@frozen
class Exposition:
    """The current values in a scraper's format, and that format's media type."""

    content_type: str
    body: bytes


class Metrics(Protocol):
    # scheduler -------------------------------------------------------------
    def scheduler_ticked(self, claimed: int, seconds: float) -> None:
        """A scheduler tick claimed `claimed` instances and took `seconds`."""
        ...

    def instance_ran(self, seconds: float) -> None:
        """The runner gave back a claimed instance after holding it `seconds`."""
        ...

    def stale_instances_recovered(self, count: int) -> None:
        """Stale recovery handed `count` abandoned running instances back."""
        ...

    # runner ----------------------------------------------------------------
    def handler_ran(self, handler: str, seconds: float) -> None:
        """A step's handler returned or raised after `seconds` (in process, or as a
        worker reported it)."""
        ...

    def attempt_ended(self, ending: Ending) -> None:
        """A step attempt's result was recorded."""
        ...

    def instance_completed(self) -> None: ...

    def instance_failed(self) -> None: ...

    def signals_delivered(self, count: int) -> None:
        """`count` signals were acted on and marked delivered."""
        ...

    def rate_limit_exceeded(self) -> None:
        """A step's rate limit had no room: its place is later than now."""
        ...

    # cron ------------------------------------------------------------------
    def cron_triggered(self) -> None:
        """A cron occurrence started its instance."""
        ...

    def cron_skipped(self) -> None:
        """A cron occurrence was dropped by its `skip` overlap policy."""
        ...

    # read at scrape time ---------------------------------------------------
    def worker_tasks_counted(self, counts: Mapping[TaskState, int]) -> None:
        """How many worker tasks are in each state now (absent: none)."""
        ...

    # HTTP ------------------------------------------------------------------
    def http_request_served(self, method: str, route: str, status: int, seconds: float) -> None:
        """A request to `route` (the route's template) was answered with `status`."""
        ...

    def exposition(self) -> Exposition:
        """Every value, rendered for a scrape."""
        ...


class NoMetrics(Metrics):
    """Counts nothing; its exposition is empty."""

    def scheduler_ticked(self, claimed: int, seconds: float) -> None:
        return None

    def instance_ran(self, seconds: float) -> None:
        return None

    def stale_instances_recovered(self, count: int) -> None:
        return None

    def handler_ran(self, handler: str, seconds: float) -> None:
        return None

    def attempt_ended(self, ending: Ending) -> None:
        return None

    def instance_completed(self) -> None:
        return None

    def instance_failed(self) -> None:
        return None

    def signals_delivered(self, count: int) -> None:
        return None

    def rate_limit_exceeded(self) -> None:
        return None

    def cron_triggered(self) -> None:
        return None

    def cron_skipped(self) -> None:
        return None

    def worker_tasks_counted(self, counts: Mapping[TaskState, int]) -> None:
        return None

    def http_request_served(self, method: str, route: str, status: int, seconds: float) -> None:
        return None

    def exposition(self) -> Exposition:
        return Exposition("text/plain; charset=utf-8", b"")
