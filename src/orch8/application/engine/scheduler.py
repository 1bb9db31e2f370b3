"""The timer path: claim due instances every tick and run them under a concurrency cap."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from time import perf_counter

from orch8.application.engine.runner import InstanceRunner
from orch8.application.ports.clock import Clock
from orch8.application.ports.metrics import Metrics, NoMetrics
from orch8.application.ports.storage import InstanceStore
from orch8.domain.instance import Instance

_log = logging.getLogger("orch8.engine")


class Scheduler:
    def __init__(
        self,
        instances: InstanceStore,
        runner: InstanceRunner,
        clock: Clock,
        *,
        batch_size: int,
        max_concurrent: int,
        on_capacity: Callable[[], None] = lambda: None,
        metrics: Metrics | None = None,
    ) -> None:
        self._instances = instances
        self._runner = runner
        self._clock = clock
        self._batch_size = batch_size
        self._max_concurrent = max_concurrent
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._on_capacity = on_capacity
        self._saturated = False
        self._metrics = metrics or NoMetrics()
        self.claimed_total = 0
        self.claims_made = 0

    @property
    def saturated(self) -> bool:
        """Every slot is taken: new due work must wait for one to free."""
        return len(self._inflight) >= self._max_concurrent

    @property
    def inflight_ids(self) -> list[str]:
        return list(self._inflight)

    async def tick(self) -> int:
        """Claim what fits under the cap and start it; returns how many were claimed."""
        started = perf_counter()
        free = self._max_concurrent - len(self._inflight)
        if free <= 0:
            self._saturated = True
            self._metrics.scheduler_ticked(0, perf_counter() - started)
            return 0
        wanted = min(self._batch_size, free)
        claimed = await self._instances.claim_due(self._clock.now(), wanted)
        # A full claim means more may be due: claim again as soon as a slot frees.
        self._saturated = len(claimed) == wanted
        for instance in claimed:
            task = asyncio.create_task(self._run(instance), name=f"instance:{instance.id}")
            self._inflight[instance.id] = task
        self.claimed_total += len(claimed)
        self.claims_made += 1
        self._metrics.scheduler_ticked(len(claimed), perf_counter() - started)
        return len(claimed)

    async def _run(self, instance: Instance) -> None:
        started = perf_counter()
        try:
            await self._runner.run(instance)
            self._metrics.instance_ran(perf_counter() - started)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Left `running`: stale recovery hands it back to the scheduler.
            _log.exception("instance %s crashed in the runner", instance.id)
        finally:
            self._inflight.pop(instance.id, None)
            if self._saturated:
                self._saturated = False
                self._on_capacity()

    async def drain(self, grace_s: float) -> list[str]:
        """Wait up to `grace_s` for in-flight instances; cancel the rest. Returns the ids
        of those cancelled (still `running` in storage: the caller hands them back)."""
        tasks = dict(self._inflight)
        if not tasks:
            return []
        _done, pending = await asyncio.wait(tasks.values(), timeout=grace_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return [ident for ident, task in tasks.items() if task in pending]
