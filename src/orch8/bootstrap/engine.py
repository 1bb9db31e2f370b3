"""Wiring the engine's parts: the only place that decides who holds whom.

The scheduler runs instances through the runner, and the runner asks the
scheduler whether every slot is taken (to yield to more urgent work): the
runner is given a callable that reads the scheduler built right after it.
"""

from __future__ import annotations

from datetime import timedelta

from orch8.application.engine.bell import SignalBell
from orch8.application.engine.cron import CronFirer
from orch8.application.engine.reaper import WorkerReaper
from orch8.application.engine.runner import RESERVATION_LEAD, InstanceRunner
from orch8.application.engine.scheduler import Scheduler
from orch8.application.engine.sequence_cache import SequenceCache
from orch8.application.engine.service import Engine, EngineConfig
from orch8.application.engine.task_bell import TaskBell
from orch8.application.engine.wake import EngineFlags
from orch8.application.handlers.registry import HandlerRegistry
from orch8.application.ports.clock import Clock, IdGenerator
from orch8.application.ports.events import ChangeFeed
from orch8.application.ports.metrics import Metrics, NoMetrics
from orch8.application.ports.storage import Storage


def build_engine(
    storage: Storage,
    handlers: HandlerRegistry,
    clock: Clock,
    ids: IdGenerator,
    config: EngineConfig,
    *,
    flags: EngineFlags | None = None,
    feed: ChangeFeed | None = None,
    bell: SignalBell | None = None,
    task_bell: TaskBell | None = None,
    cron: CronFirer | None = None,
    metrics: Metrics | None = None,
) -> Engine:
    """An engine over `storage`; the optional parts default to private ones (a test
    that needs no signal bell or change feed of its own leaves them out), and
    metrics to none."""
    flags = flags or EngineFlags()
    metrics = metrics or NoMetrics()
    task_bell = task_bell or TaskBell()
    scheduler: Scheduler | None = None

    def saturated() -> bool:
        return scheduler is not None and scheduler.saturated

    runner = InstanceRunner(
        storage,
        handlers,
        clock,
        ids,
        SequenceCache(storage.sequences),
        stopping=flags.stopping,
        feed=feed,
        bell=bell,
        saturated=saturated,
        task_bell=task_bell,
        metrics=metrics,
        # Room for a few scheduler ticks and a claim between the wake-up and the place.
        reservation_lead=max(RESERVATION_LEAD, timedelta(seconds=5 * config.tick_interval_s)),
    )
    scheduler = Scheduler(
        storage.instances,
        runner,
        clock,
        batch_size=config.batch_size,
        max_concurrent=config.max_concurrent_steps,
        on_capacity=flags.nudge,
        metrics=metrics,
    )
    reaper = WorkerReaper(
        storage.tasks,
        clock,
        stale_s=config.worker_reaper_stale_s,
        on_woken=flags.nudge,
        bell=task_bell,
    )
    return Engine(
        instances=storage.instances,
        scheduler=scheduler,
        reaper=reaper,
        clock=clock,
        config=config,
        flags=flags,
        cron=cron,
        metrics=metrics,
    )
