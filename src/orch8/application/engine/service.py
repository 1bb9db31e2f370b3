"""The engine as one service: scheduler tick, heartbeats and stale recovery."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from attrs import frozen

from orch8.application.engine.bell import SignalBell
from orch8.application.engine.cron import CronFirer
from orch8.application.engine.loops import supervised
from orch8.application.engine.reaper import WorkerReaper
from orch8.application.engine.runner import RESERVATION_LEAD, InstanceRunner
from orch8.application.engine.scheduler import Scheduler
from orch8.application.engine.sequence_cache import SequenceCache
from orch8.application.engine.task_bell import TaskBell
from orch8.application.handlers.registry import HandlerRegistry
from orch8.application.ports.clock import Clock, IdGenerator
from orch8.application.ports.events import ChangeFeed
from orch8.application.ports.storage import Storage

_log = logging.getLogger("orch8.engine")

# A child that ends while its parent is still running cannot wake it directly;
# this sweep finds such parents once they have gone to wait.
WAKE_SWEEP_S = 1.0


@frozen
class EngineConfig:
    tick_interval_s: float = 0.1
    batch_size: int = 256
    max_concurrent_steps: int = 128
    stale_instance_threshold_s: float = 30.0
    shutdown_grace_period_s: float = 30.0
    worker_reaper_tick_s: float = 30.0
    worker_reaper_stale_s: float = 60.0
    cron_tick_s: float = 10.0


class Engine:
    """Owns every background loop; `start` once, `stop` once."""

    def __init__(
        self,
        storage: Storage,
        handlers: HandlerRegistry,
        clock: Clock,
        ids: IdGenerator,
        config: EngineConfig,
        feed: ChangeFeed | None = None,
        bell: SignalBell | None = None,
        cron: CronFirer | None = None,
        task_bell: TaskBell | None = None,
    ) -> None:
        self._storage = storage
        self._task_bell = task_bell
        self._clock = clock
        self._config = config
        self._cron = cron
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        runner = InstanceRunner(
            storage,
            handlers,
            clock,
            ids,
            SequenceCache(storage.sequences),
            stopping=self._stop.is_set,
            feed=feed,
            bell=bell,
            saturated=lambda: self.scheduler.saturated,
            task_bell=task_bell,
            # Room for a few scheduler ticks and a claim between the wake-up and
            # the place.
            reservation_lead=max(RESERVATION_LEAD, timedelta(seconds=5 * config.tick_interval_s)),
        )
        self.scheduler = Scheduler(
            storage,
            runner,
            clock,
            batch_size=config.batch_size,
            max_concurrent=config.max_concurrent_steps,
            on_capacity=self.nudge,
        )

    def nudge(self) -> None:
        """Something became due now (a new instance): tick without waiting."""
        self._wake.set()

    async def recover(self) -> int:
        now = self._clock.now()
        moved = await self._storage.instances.recover_stale(
            now - timedelta(seconds=self._config.stale_instance_threshold_s), now
        )
        if moved:
            _log.info("recovered %d stale running instances", moved)
        return moved

    async def _tick(self) -> None:
        await self.scheduler.tick()

    async def _heartbeat(self) -> None:
        ids = self.scheduler.inflight_ids
        if ids:
            await self._storage.instances.heartbeat(ids, self._clock.now())

    async def _recover(self) -> None:
        await self.recover()

    async def _wake_parents(self) -> None:
        now = self._clock.now()
        woken = await self._storage.instances.wake_parents_of_finished_children(now)
        woken += await self._storage.instances.wake_due_waiting(now)
        if woken:
            self.nudge()

    async def _cron_tick(self) -> None:
        if self._cron is not None and await self._cron.tick():
            self.nudge()  # the instances just started are due now

    async def start(self) -> None:
        await self.recover()
        stale = self._config.stale_instance_threshold_s
        loops = [
            ("scheduler", self._tick, self._config.tick_interval_s, self._wake),
            ("heartbeat", self._heartbeat, max(stale / 3, 1.0), None),
            ("recovery", self._recover, max(stale / 2, 1.0), None),
            ("waiting-wake", self._wake_parents, WAKE_SWEEP_S, None),
        ]
        if self._cron is not None:
            loops.append(("cron", self._cron_tick, self._config.cron_tick_s, self._cron.wake))
        reaper = WorkerReaper(
            self._storage.tasks,
            self._clock,
            stale_s=self._config.worker_reaper_stale_s,
            on_woken=self.nudge,
            bell=self._task_bell,
        )
        loops.append(("worker-reaper", reaper.run, self._config.worker_reaper_tick_s, None))
        for name, body, interval, wake in loops:
            self._tasks.append(
                asyncio.create_task(
                    supervised(name, body, interval_s=interval, stop=self._stop, wake=wake),
                    name=f"orch8:{name}",
                )
            )

    async def stop(self) -> None:
        """Stop claiming, let in-flight instances reach a step boundary, then end the loops."""
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        cancelled = await self.scheduler.drain(self._config.shutdown_grace_period_s)
        if cancelled:
            _log.warning("%d instances did not finish within the grace period", cancelled)
