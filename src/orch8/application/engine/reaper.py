"""The worker-task reaper: lost claims go back to pending, overdue tasks fail."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from orch8.application.engine.task_bell import TaskBell
from orch8.application.ports.clock import Clock
from orch8.application.ports.storage import TaskQueue

_log = logging.getLogger("orch8.engine")


class WorkerReaper:
    """One sweep (run every `worker_reaper_tick_s` by the engine):

    * claimed tasks whose heartbeat is older than `stale_s` go back to `pending`
      (the next claim gets a new epoch, so the lost worker's late reports are
      refused), and waiting long-polls are woken to pick them up;
    * open tasks past their `timeout_ms` fail, not retryable, and their instances
      are made due; `on_woken` (the engine's nudge) runs them without waiting.
    """

    def __init__(
        self,
        tasks: TaskQueue,
        clock: Clock,
        *,
        stale_s: float,
        on_woken: Callable[[], None] | None = None,
        bell: TaskBell | None = None,
    ) -> None:
        self._tasks = tasks
        self._clock = clock
        self._stale = timedelta(seconds=stale_s)
        self._on_woken = on_woken
        self._bell = bell

    async def sweep(self) -> tuple[int, int]:
        """(tasks handed back to pending, tasks failed by timeout)."""
        now = self._clock.now()
        reaped = await self._tasks.reap_stale(now - self._stale, now)
        if reaped:
            _log.info("reaped %d worker tasks with stale heartbeats", reaped)
            if self._bell is not None:
                self._bell.ring_all()
        expired = await self._tasks.expire_timed_out(now)
        if expired:
            _log.info("failed %d worker tasks past their timeout", expired)
            if self._on_woken is not None:
                self._on_woken()
        return reaped, expired

    async def run(self) -> None:
        await self.sweep()
