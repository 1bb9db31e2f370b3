"""`PrometheusMetrics`: the `Metrics` port on prometheus-client, one registry per process.

Every series is created up front (or its label values are bounded and looked
up in a dict), so a call on the hot path is a dict lookup and a locked add.
Names follow Orch8's (`orch8-engine/src/metrics.rs`), so its dashboards read
ours; `docs/metrics.md` says what moves each one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.process_collector import ProcessCollector

from orch8.application.ports.metrics import (
    EXTERNAL_LABEL,
    WASM_LABEL,
    Exposition,
    Metrics,
    handler_label,
)
from orch8.domain.evaluator.attempts import Ending
from orch8.domain.tasks import TaskState

# No `*_created` series: Orch8 exposes none, and a restart is seen in the counters
# themselves. (A switch of the library's, for the whole process.)
disable_created_metrics()  # type: ignore[no-untyped-call]  # (no annotations upstream)

# Orch8's media type for the text format (the body is the same in 1.0.0 for these names).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

TICK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
STEP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
INSTANCE_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0)
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0)

# Request methods counted by name; any other (a client may send any token) is OTHER.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"


class PrometheusMetrics(Metrics):
    """`handlers`: the handler names that are their own label (those registered in
    the process at start); every other name collapses (`handler_label`)."""

    def __init__(self, handlers: Iterable[str] = (), *, process_collector: bool = True) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        if process_collector:
            ProcessCollector(registry=registry)

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, registry=registry)

        self._claimed = counter("orch8_instances_claimed", "Instances claimed by the scheduler")
        self._completed = counter("orch8_instances_completed", "Instances that completed")
        self._failed = counter("orch8_instances_failed", "Instances that failed")
        self._executed = counter(
            "orch8_steps_executed", "Step attempts that ended (succeeded or failed)"
        )
        self._steps_failed = counter(
            "orch8_steps_failed", "Step attempts that failed (retried or not)"
        )
        self._retried = counter(
            "orch8_steps_retried", "Failed step attempts that will be attempted again"
        )
        self._signals = counter("orch8_signals_delivered", "Signals acted on and delivered")
        self._rate_limited = counter(
            "orch8_rate_limits_exceeded", "Steps whose rate limit had no room at once"
        )
        self._cron = counter("orch8_cron_triggered", "Cron occurrences that started an instance")
        self._cron_skipped = counter(
            "orch8_cron_skipped", "Cron occurrences dropped by the skip overlap policy"
        )
        self._recovered = counter(
            "orch8_recovery_stale_instances", "Stale running instances handed back"
        )
        self._tick = Histogram(
            "orch8_tick_duration_seconds",
            "Time of one scheduler tick",
            registry=registry,
            buckets=TICK_BUCKETS,
        )
        self._instance = Histogram(
            "orch8_instance_processing_seconds",
            "Time the runner held a claimed instance",
            registry=registry,
            buckets=INSTANCE_BUCKETS,
        )
        step = Histogram(
            "orch8_step_duration_seconds",
            "Time a step's handler took, by handler",
            ["handler"],
            registry=registry,
            buckets=STEP_BUCKETS,
        )
        self._builtin = frozenset(handlers)
        self._step_by_label = {
            label: step.labels(label) for label in (*self._builtin, WASM_LABEL, EXTERNAL_LABEL)
        }
        self._queue_depth = Gauge(
            "orch8_queue_depth", "Instances claimed by the latest scheduler tick", registry=registry
        )
        tasks = Gauge(
            "orch8_worker_tasks",
            "Worker tasks by state (read at scrape time)",
            ["state"],
            registry=registry,
        )
        self._tasks = {state: tasks.labels(state.value) for state in TaskState}
        self._http_requests = Counter(
            "orch8_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=registry,
        )
        self._http_seconds = Histogram(
            "orch8_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template",
            ["method", "route"],
            registry=registry,
            buckets=HTTP_BUCKETS,
        )
        self._http_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    # scheduler -------------------------------------------------------------
    def scheduler_ticked(self, claimed: int, seconds: float) -> None:
        if claimed:
            self._claimed.inc(claimed)
        self._queue_depth.set(claimed)
        self._tick.observe(seconds)

    def instance_ran(self, seconds: float) -> None:
        self._instance.observe(seconds)

    def stale_instances_recovered(self, count: int) -> None:
        self._recovered.inc(count)

    # runner ----------------------------------------------------------------
    def handler_ran(self, handler: str, seconds: float) -> None:
        child = self._step_by_label.get(handler)
        if child is None:
            child = self._step_by_label[handler_label(handler, self._builtin)]
        child.observe(seconds)

    def attempt_ended(self, ending: Ending) -> None:
        self._executed.inc()
        if ending is Ending.SUCCEEDED:
            return
        self._steps_failed.inc()
        if ending is Ending.RETRYING:
            self._retried.inc()

    def instance_completed(self) -> None:
        self._completed.inc()

    def instance_failed(self) -> None:
        self._failed.inc()

    def signals_delivered(self, count: int) -> None:
        self._signals.inc(count)

    def rate_limit_exceeded(self) -> None:
        self._rate_limited.inc()

    # cron ------------------------------------------------------------------
    def cron_triggered(self) -> None:
        self._cron.inc()

    def cron_skipped(self) -> None:
        self._cron_skipped.inc()

    # read at scrape time ---------------------------------------------------
    def worker_tasks_counted(self, counts: Mapping[TaskState, int]) -> None:
        for state, gauge in self._tasks.items():
            gauge.set(counts.get(state, 0))

    # HTTP ------------------------------------------------------------------
    def http_request_served(self, method: str, route: str, status: int, seconds: float) -> None:
        # Bounded: methods are collapsed, routes are the router's templates and
        # statuses are three digits.
        key = (method if method in HTTP_METHODS else OTHER_METHOD, route, status)
        children = self._http_children.get(key)
        if children is None:
            children = self._http_children[key] = (
                self._http_requests.labels(key[0], route, str(status)),
                self._http_seconds.labels(key[0], route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def exposition(self) -> Exposition:
        return Exposition(CONTENT_TYPE, generate_latest(self.registry))
