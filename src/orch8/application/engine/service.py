"""The engine as one service: it owns every background loop of a process.

The parts (scheduler, runner, reaper, cron firer, caches) are built by the
composition root (`orch8.bootstrap`) and handed in ready; the engine only runs
them: start the loops, stop them on purpose, start them again.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from attrs import frozen

from orch8.application.engine.cron import CronFirer
from orch8.application.engine.loops import supervised
from orch8.application.engine.reaper import WorkerReaper
from orch8.application.engine.scheduler import Scheduler
from orch8.application.engine.wake import EngineFlags
from orch8.application.errors import StaleWrite
from orch8.application.ports.clock import Clock
from orch8.application.ports.metrics import Metrics, NoMetrics
from orch8.application.ports.storage import InstanceStore
from orch8.domain.instance import InstanceState

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
    """Runs the scheduler tick, heartbeats, stale recovery, the waiting sweep, the
    worker reaper and (when given) the cron loop.

    `start` and `stop` may alternate any number of times: a stopped engine has no
    task left running and starts afresh. `start` on a running engine is an error.
    """

    def __init__(
        self,
        *,
        instances: InstanceStore,
        scheduler: Scheduler,
        reaper: WorkerReaper,
        clock: Clock,
        config: EngineConfig,
        flags: EngineFlags,
        cron: CronFirer | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._instances = instances
        self._metrics = metrics or NoMetrics()
        self.scheduler = scheduler
        self._reaper = reaper
        self._clock = clock
        self._config = config
        self._flags = flags
        self._cron = cron
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    @property
    def stopping(self) -> bool:
        """`stop` was called (and no `start` since): nothing new is claimed."""
        return self._flags.stopping()

    def nudge(self) -> None:
        """Something became due now (a new instance): tick without waiting."""
        self._flags.nudge()

    async def recover(self) -> int:
        now = self._clock.now()
        moved = await self._instances.recover_stale(
            now - timedelta(seconds=self._config.stale_instance_threshold_s), now
        )
        if moved:
            _log.info("recovered %d stale running instances", moved)
            self._metrics.stale_instances_recovered(moved)
        return moved

    async def _tick(self) -> None:
        await self.scheduler.tick()

    async def _heartbeat(self) -> None:
        ids = self.scheduler.inflight_ids
        if ids:
            await self._instances.heartbeat(ids, self._clock.now())

    async def _recover(self) -> None:
        await self.recover()

    async def _wake_parents(self) -> None:
        now = self._clock.now()
        woken = await self._instances.wake_parents_of_finished_children(now)
        woken += await self._instances.wake_due_waiting(now)
        if woken:
            self.nudge()

    async def _cron_tick(self) -> None:
        if self._cron is not None and await self._cron.tick():
            self.nudge()  # the instances just started are due now

    async def start(self) -> None:
        if self._tasks:
            raise RuntimeError("the engine is already running; stop it before starting again")
        self._flags.stop.clear()
        await self.recover()
        stale = self._config.stale_instance_threshold_s
        loops = [
            ("scheduler", self._tick, self._config.tick_interval_s, self._flags.wake),
            ("heartbeat", self._heartbeat, max(stale / 3, 1.0), None),
            ("recovery", self._recover, max(stale / 2, 1.0), None),
            ("waiting-wake", self._wake_parents, WAKE_SWEEP_S, None),
            ("worker-reaper", self._reaper.run, self._config.worker_reaper_tick_s, None),
        ]
        if self._cron is not None:
            loops.append(("cron", self._cron_tick, self._config.cron_tick_s, self._cron.wake))
        for name, body, interval, wake in loops:
            self._tasks.append(
                asyncio.create_task(
                    supervised(name, body, interval_s=interval, stop=self._flags.stop, wake=wake),
                    name=f"orch8:{name}",
                )
            )

    async def stop(self) -> None:
        """Stop claiming, let in-flight instances reach a step boundary (they go back to
        `scheduled` there) within the grace period, hand back those still running after
        it, then end. Safe to call on an engine that is not running."""
        self._flags.stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        # Keep heartbeating what still runs, or another process's recovery would take
        # it over while it finishes here.
        drained = asyncio.Event()
        stale = self._config.stale_instance_threshold_s
        heartbeat = asyncio.create_task(
            supervised(
                "drain-heartbeat", self._heartbeat, interval_s=max(stale / 3, 1.0), stop=drained
            ),
            name="orch8:drain-heartbeat",
        )
        try:
            cancelled = await self.scheduler.drain(self._config.shutdown_grace_period_s)
        finally:
            drained.set()
            await heartbeat
        if cancelled:
            _log.warning(
                "%d instances did not reach a step boundary within the grace period;"
                " their running steps were cancelled and will run again",
                len(cancelled),
            )
            await self._hand_back(cancelled)

    async def _hand_back(self, instance_ids: list[str]) -> None:
        """`running` -> `scheduled` (due now) for instances whose run was cancelled, so the
        next process takes them at once instead of after the stale threshold."""
        for instance_id in instance_ids:
            now = self._clock.now()
            try:
                await self._instances.update_state(
                    instance_id, InstanceState.RUNNING, InstanceState.SCHEDULED, now, now
                )
            except StaleWrite:
                continue  # its last write landed meanwhile, or another process took it
            except Exception:
                _log.exception("could not hand back instance %s; recovery will", instance_id)
