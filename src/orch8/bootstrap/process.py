"""The composition root: `build(settings)` makes every collaborator of one process.

A plain, typed function rather than a dependency-injection container: mypy
checks every constructor call here, the order of construction reads top to
bottom, and what a test wants to replace (clock, ids, storage, handlers,
engine settings) is a keyword argument of `build`. This is the only module
(with `storage.py`, which picks the storage adapter) that names concrete
adapters.

`Process` owns the lifecycle: `open` prepares storage (migrations when
configured) and cross-process notifications, `start_engine` runs the
background loops, `close` stops the engine and then releases the HTTP client
and the storage connections, in that order. `async with build(s) as process:`
opens and closes it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from importlib import metadata
from types import TracebackType

from orch8.adapters.cron import CroniterCalendar
from orch8.adapters.http_client import HttpRequestHandler
from orch8.adapters.prometheus import PrometheusMetrics
from orch8.adapters.system import SystemClock, UuidGenerator
from orch8.application.engine.bell import SignalBell
from orch8.application.engine.cron import CronFirer
from orch8.application.engine.service import Engine, EngineConfig
from orch8.application.engine.task_bell import TaskBell
from orch8.application.engine.wake import EngineFlags
from orch8.application.errors import ShuttingDown
from orch8.application.handlers import BUILTIN_HANDLERS, HandlerRegistry
from orch8.application.handlers.instance_handlers import SendSignalHandler, human_review
from orch8.application.ports.clock import Clock, IdGenerator
from orch8.application.ports.handlers import StepHandler
from orch8.application.ports.metrics import Metrics, NoMetrics
from orch8.application.ports.storage import Storage
from orch8.application.ports.task_events import TaskNotifications
from orch8.application.streams import LocalChangeFeed
from orch8.application.use_cases.api import UseCases
from orch8.application.use_cases.api_keys import ApiKeyService
from orch8.application.use_cases.cron import CronService
from orch8.application.use_cases.instance_ops import InstanceOps
from orch8.application.use_cases.instance_stream import InstanceStream
from orch8.application.use_cases.instances import InstanceService
from orch8.application.use_cases.rate_limits import RateLimitService
from orch8.application.use_cases.sequences import SequenceCatalog
from orch8.application.use_cases.service_info import MetricsService, ServerInfo
from orch8.application.use_cases.signals import SignalService
from orch8.application.use_cases.workers import WorkerService
from orch8.bootstrap.engine import build_engine
from orch8.bootstrap.settings import Settings
from orch8.bootstrap.storage import build_storage, storage_kind

# What every build serves (`/info`); `metrics` is added when metrics are kept.
FEATURES = ("rest", "sse", "openapi", "swagger_ui", "signals", "workers", "cron", "rate_limits")


def version() -> str:
    try:
        return metadata.version("orch8")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "0+unknown"


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


class Process:
    """Everything one orch8 process runs, built and ready; see the module docstring."""

    def __init__(
        self,
        *,
        settings: Settings,
        storage: Storage,
        clock: Clock,
        ids: IdGenerator,
        engine: Engine,
        handlers: HandlerRegistry,
        use_cases: UseCases,
        task_bell: TaskBell,
        http_client: HttpRequestHandler,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.clock = clock
        self.ids = ids
        self.engine = engine
        self.handlers = handlers
        self.use_cases = use_cases
        self.task_bell = task_bell
        self.metrics = metrics
        self._http_client = http_client
        self._opened = False
        self._closed = False

    async def open(self) -> None:
        """Make storage ready; safe to call twice."""
        if self._closed:
            raise RuntimeError("this process was closed; build a new one")
        if self._opened:
            return
        self._opened = True
        if self.settings.run_migrations:
            await self.storage.migrate()
        if isinstance(self.storage, TaskNotifications):
            # wake long-polls for tasks that other processes create
            await self.storage.listen(self.task_bell.ring)

    async def start_engine(self) -> None:
        await self.open()
        await self.engine.start()

    @property
    def draining(self) -> bool:
        """Shutting down: the engine claims nothing more and hands its work back."""
        return self.engine.stopping

    async def ready(self) -> None:
        """Raise unless this process should be sent work: ShuttingDown while it
        drains, the storage error when storage does not answer."""
        if self.draining:
            raise ShuttingDown("shutting down: finishing in-flight steps")
        await self.storage.ping()

    async def close(self) -> None:
        """Stop the engine (in-flight work reaches a step boundary or is handed back),
        then close the HTTP client and storage. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self.use_cases.streams.close()
            await self.engine.stop()
        finally:
            with contextlib.suppress(Exception):
                await self._http_client.close()
            await self.storage.close()

    async def __aenter__(self) -> Process:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


def build(
    settings: Settings,
    *,
    storage: Storage | None = None,
    clock: Clock | None = None,
    ids: IdGenerator | None = None,
    handlers: Mapping[str, StepHandler] | None = None,
    engine: EngineConfig | None = None,
    metrics: Metrics | None = None,
) -> Process:
    """Every collaborator of one process. The keyword arguments replace a part
    (a test's simulated clock, an in-memory store, extra step handlers, a faster
    engine tick, metrics: by default Prometheus metrics in a registry of this
    process's own); nothing is started and no connection is opened here."""
    storage = storage or build_storage(
        settings.database_url,
        sqlite_synchronous=settings.sqlite_synchronous,
        max_connections=settings.database_max_connections,
    )
    clock = clock or SystemClock()
    ids = ids or UuidGenerator()
    flags = EngineFlags()
    bell = SignalBell()  # a signal sent here reaches the runner holding its instance at once
    task_bell = TaskBell()  # rung when tasks are created; long-polls wait on it
    feed = LocalChangeFeed()  # the engine publishes every commit; live streams subscribe

    sequences = SequenceCatalog(storage.sequences, clock, ids)
    instances = InstanceService(
        storage.sequences,
        storage.instances,
        storage.snapshots,
        storage.outputs,
        clock,
        ids,
        max_context_bytes=settings.max_context_bytes,
    )
    signals = SignalService(
        storage.sequences,
        storage.instances,
        storage.signals,
        storage.snapshots,
        clock,
        ids,
        bell,
        wake=flags.nudge,
    )

    http_client = HttpRequestHandler(allow_internal_urls=settings.allow_internal_urls)
    registry = HandlerRegistry(BUILTIN_HANDLERS)
    registry.register("http_request", http_client)
    registry.register("send_signal", SendSignalHandler(signals))
    registry.register("human_review", human_review)
    for name, handler in (handlers or {}).items():
        registry.register(name, handler)
    # Handlers registered now are their own label; any other name collapses.
    metrics = metrics or PrometheusMetrics(registry.names())

    calendar = CroniterCalendar()
    cron_firer = CronFirer(storage.cron, calendar, clock, instances, signals, metrics=metrics)
    engine_ = build_engine(
        storage,
        registry,
        clock,
        ids,
        engine or engine_config(settings),
        flags=flags,
        feed=feed,
        bell=bell,
        task_bell=task_bell,
        cron=cron_firer,
        metrics=metrics,
    )
    features = FEATURES if isinstance(metrics, NoMetrics) else (*FEATURES, "metrics")
    use_cases = UseCases(
        sequences=sequences,
        instances=instances,
        instance_ops=InstanceOps(
            storage.sequences,
            storage.instances,
            storage.snapshots,
            instances,
            clock,
            wake=flags.nudge,
            max_batch=settings.max_batch_instances,
        ),
        signals=signals,
        streams=InstanceStream(
            storage.instances, storage.outputs, feed, max_streams=settings.max_sse_streams
        ),
        workers=WorkerService(
            storage.tasks,
            clock,
            bell=task_bell,
            max_output_bytes=settings.worker_max_output_bytes,
            wake=flags.nudge,
        ),
        cron=CronService(storage.sequences, storage.cron, calendar, clock, ids),
        rate_limits=RateLimitService(storage.rate_limits, clock),
        api_keys=ApiKeyService(storage.api_keys, clock, ids, root_key=settings.api_key),
        metrics=MetricsService(metrics, storage.tasks),
        info=ServerInfo(
            version=version(),
            storage=storage_kind(storage),
            features=features,
            env_label=settings.env_label or None,
            env_color=settings.env_color or None,
        ),
    )
    return Process(
        settings=settings,
        storage=storage,
        clock=clock,
        ids=ids,
        engine=engine_,
        handlers=registry,
        use_cases=use_cases,
        task_bell=task_bell,
        http_client=http_client,
        metrics=metrics,
    )
