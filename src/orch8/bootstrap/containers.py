"""The composition root: the only place that names concrete adapters."""

from __future__ import annotations

from dependency_injector import containers, providers

from orch8.adapters.cron import CroniterCalendar
from orch8.adapters.http_client import HttpRequestHandler
from orch8.adapters.system import SystemClock, UuidGenerator
from orch8.application.engine.bell import SignalBell
from orch8.application.engine.cron import CronFirer
from orch8.application.engine.service import Engine, EngineConfig
from orch8.application.engine.task_bell import TaskBell
from orch8.application.handlers import BUILTIN_HANDLERS, HandlerRegistry
from orch8.application.handlers.instance_handlers import SendSignalHandler, human_review
from orch8.application.ports.handlers import StepHandler
from orch8.application.streams import LocalChangeFeed
from orch8.application.use_cases.cron import CronService
from orch8.application.use_cases.instance_ops import InstanceOps
from orch8.application.use_cases.instance_stream import InstanceStream
from orch8.application.use_cases.instances import InstanceService
from orch8.application.use_cases.rate_limits import RateLimitService
from orch8.application.use_cases.sequences import SequenceCatalog
from orch8.application.use_cases.signals import SignalService
from orch8.application.use_cases.workers import WorkerService
from orch8.bootstrap.settings import Settings
from orch8.bootstrap.storage import build_storage


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(
        tick_interval_s=settings.tick_interval_ms / 1000,
        batch_size=settings.batch_size,
        max_concurrent_steps=settings.max_concurrent_steps,
        stale_instance_threshold_s=float(settings.stale_instance_threshold_secs),
        shutdown_grace_period_s=float(settings.shutdown_grace_period_secs),
        worker_reaper_tick_s=float(settings.worker_reaper_tick_secs),
        worker_reaper_stale_s=float(settings.worker_reaper_stale_secs),
        cron_tick_s=float(settings.cron_tick_secs),
    )


def handler_registry(http_request: StepHandler, signals: SignalService) -> HandlerRegistry:
    registry = HandlerRegistry(BUILTIN_HANDLERS)
    registry.register("http_request", http_request)
    registry.register("send_signal", SendSignalHandler(signals))
    registry.register("human_review", human_review)
    return registry


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    clock = providers.Singleton(SystemClock)
    ids = providers.Singleton(UuidGenerator)
    storage = providers.Singleton(
        build_storage,
        url=settings.provided.database_url,
        sqlite_synchronous=settings.provided.sqlite_synchronous,
        max_connections=settings.provided.database_max_connections,
    )
    # owns an aiohttp session: serve() closes it at shutdown
    http_client = providers.Singleton(
        HttpRequestHandler, allow_internal_urls=settings.provided.allow_internal_urls
    )
    bell = providers.Singleton(SignalBell)
    # rung when this process creates worker tasks; long-polls wait on it
    task_bell = providers.Singleton(TaskBell)
    # Signals sent by steps need no engine nudge (the sender's own engine ticks), which
    # keeps the engine -> handlers -> signals chain free of a cycle.
    step_signals = providers.Singleton(
        SignalService, storage=storage, clock=clock, ids=ids, bell=bell
    )
    handlers = providers.Singleton(handler_registry, http_request=http_client, signals=step_signals)
    cron_calendar = providers.Singleton(CroniterCalendar)
    cron_firer = providers.Singleton(
        CronFirer,
        storage=storage,
        calendar=cron_calendar,
        clock=clock,
        ids=ids,
        signals=step_signals,
    )
    # one per process: the engine publishes every commit, live streams subscribe
    feed = providers.Singleton(LocalChangeFeed)
    engine = providers.Singleton(
        Engine,
        storage=storage,
        handlers=handlers,
        clock=clock,
        ids=ids,
        config=providers.Callable(engine_config, settings),
        cron=cron_firer,
        bell=bell,
        task_bell=task_bell,
        feed=feed,
    )
    sequences = providers.Singleton(SequenceCatalog, storage=storage, clock=clock, ids=ids)
    cron = providers.Singleton(
        CronService, storage=storage, calendar=cron_calendar, clock=clock, ids=ids
    )
    instances = providers.Singleton(InstanceService, storage=storage, clock=clock, ids=ids)
    instance_ops = providers.Singleton(
        InstanceOps, storage=storage, clock=clock, ids=ids, wake=engine.provided.nudge
    )
    streams = providers.Singleton(InstanceStream, storage=storage, feed=feed)
    rate_limits = providers.Singleton(RateLimitService, storage=storage, clock=clock)
    signals = providers.Singleton(
        SignalService,
        storage=storage,
        clock=clock,
        ids=ids,
        bell=bell,
        wake=engine.provided.nudge,
    )
    workers = providers.Singleton(
        WorkerService,
        storage=storage,
        clock=clock,
        bell=task_bell,
        max_output_bytes=settings.provided.worker_max_output_bytes,
        wake=engine.provided.nudge,
    )


def build_container(settings: Settings) -> Container:
    return Container(settings=settings)
