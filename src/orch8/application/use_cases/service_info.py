"""What a process says about itself: `/info` and the metrics scrape.

`ServerInfo` is fixed when the process is built (the composition root knows
the version, the storage kind and what is wired in); `MetricsService` reads the
few values only storage knows at scrape time, then renders every metric.
"""

from __future__ import annotations

import logging

from attrs import frozen

from orch8.application.ports.metrics import Exposition, Metrics
from orch8.application.ports.storage import TaskQueue
from orch8.domain.tasks import TaskState

_log = logging.getLogger("orch8.metrics")


@frozen
class ServerInfo:
    """Orch8's `/info` (`version`, `env_label`, `env_color`) plus what this process
    runs on and offers: `storage` is `sqlite`, `postgres` or `memory` (never the
    URL), `features` names what this build serves."""

    version: str
    storage: str
    features: tuple[str, ...]
    env_label: str | None = None
    env_color: str | None = None


class MetricsService:
    def __init__(self, metrics: Metrics, tasks: TaskQueue) -> None:
        self._metrics = metrics
        self._tasks = tasks

    def http_request_served(self, method: str, route: str, status: int, seconds: float) -> None:
        self._metrics.http_request_served(method, route, status, seconds)

    async def scrape(self) -> Exposition:
        """Every metric now. Worker-task counts are read from storage; when it does not
        answer, the engine's own metrics are still served (with the last counts)."""
        try:
            stats = await self._tasks.stats(None)
        except Exception:
            _log.warning("metrics: worker task counts could not be read", exc_info=True)
        else:
            counts: dict[TaskState, int] = {}
            for _handler, state, count in stats.counts:
                counts[state] = counts.get(state, 0) + count
            self._metrics.worker_tasks_counted(counts)
        return self._metrics.exposition()
