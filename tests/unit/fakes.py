"""A controllable clock, predictable ids and recorded metrics for application-layer tests."""

from __future__ import annotations

import asyncio
import collections
import itertools
from datetime import UTC, datetime, timedelta

from orch8.application.ports.clock import Clock, IdGenerator
from orch8.application.ports.metrics import NoMetrics
from orch8.application.ports.storage import Storage
from orch8.bootstrap.process import Process, build
from orch8.bootstrap.settings import Settings
from orch8.domain.evaluator.attempts import Ending


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, **kwargs: float) -> None:
        self.current += timedelta(**kwargs)

    async def sleep_until(self, instant: datetime) -> None:
        """Simulated time: jumps to `instant`, yielding to the loop once."""
        self.current = max(self.current, instant)
        await asyncio.sleep(0)


class CountingIds:
    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def new_id(self) -> str:
        return f"00000000-0000-7000-8000-{next(self._counter):012d}"


def build_process(storage: Storage, clock: Clock, ids: IdGenerator) -> Process:
    """The composition root around a test's store, clock and ids (nothing started)."""
    return build(Settings(database_url="memory://"), storage=storage, clock=clock, ids=ids)


class RecordingMetrics(NoMetrics):
    """Counts what the engine reported, by method (and by ending for attempts)."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()

    def rate_limit_exceeded(self) -> None:
        self.counts["rate_limit_exceeded"] += 1

    def cron_triggered(self) -> None:
        self.counts["cron_triggered"] += 1

    def cron_skipped(self) -> None:
        self.counts["cron_skipped"] += 1

    def stale_instances_recovered(self, count: int) -> None:
        self.counts["stale_instances_recovered"] += count

    def scheduler_ticked(self, claimed: int, seconds: float) -> None:
        self.counts["ticks"] += 1
        self.counts["claimed"] += claimed

    def attempt_ended(self, ending: Ending) -> None:
        self.counts[f"attempts_{ending.value}"] += 1

    def instance_completed(self) -> None:
        self.counts["instances_completed"] += 1

    def instance_failed(self) -> None:
        self.counts["instances_failed"] += 1
