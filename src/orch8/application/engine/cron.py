"""The cron loop's body: claim due schedules and fire each occurrence once.

Every `cron_tick_s` each engine process calls `CronFirer.tick`. A schedule is
fired by whichever process claims it (`CronStore.claim_due`: never two at
once); the instance it starts carries the idempotency key
`cron:<schedule id>:<occurrence>`, so even a fire repeated after a crash (the
claim lapsed before the fire was settled) starts one instance. After a fire
the schedule moves to its first occurrence after *now*: occurrences missed
while no process ran collapse into the one fire.

Overlap policies look at the schedule's previous runs (its instances not yet
ended, found by `metadata.cron_schedule_id`):

* `allow`: fire regardless;
* `skip`: drop the occurrence, counting it in `skipped_fires`;
* `buffer_one`: keep the occurrence pending and look again every
  BUFFER_RECHECK until the previous runs have ended, then fire it once;
* `cancel_previous`: send each previous run a cancel signal, then fire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from orch8.application.commands import NewInstance
from orch8.application.errors import InstanceTerminal, NotFound
from orch8.application.ports.clock import Clock
from orch8.application.ports.cron import CronCalendar
from orch8.application.ports.metrics import Metrics, NoMetrics
from orch8.application.ports.storage import CronStore
from orch8.application.use_cases.instances import InstanceService
from orch8.application.use_cases.signals import SignalService
from orch8.domain.cron import (
    FIRE_AT_KEY,
    SCHEDULE_ID_KEY,
    CronSchedule,
    OverlapPolicy,
    fire_idempotency_key,
    fire_time_text,
)
from orch8.domain.errors import ValidationError
from orch8.domain.instance import Priority
from orch8.domain.signals import SignalKind

_log = logging.getLogger("orch8.cron")

# How often a `buffer_one` occurrence looks again whether the previous run ended.
BUFFER_RECHECK = timedelta(seconds=5)
# Most schedules one tick claims; the loop comes back at once for the rest.
CLAIM_BATCH = 100
# The shortest wait before looking again: a due schedule another process is
# claiming at this instant (not yet marked held) must not make the loop spin.
MIN_WAKE_S = 0.01


class CronFirer:
    def __init__(
        self,
        cron: CronStore,
        calendar: CronCalendar,
        clock: Clock,
        instances: InstanceService,
        signals: SignalService,
        *,
        batch_size: int = CLAIM_BATCH,
        metrics: Metrics | None = None,
    ) -> None:
        self._cron = cron
        self._calendar = calendar
        self._clock = clock
        self._instances = instances
        self._signals = signals
        self._batch_size = batch_size
        self._metrics = metrics or NoMetrics()
        # Set when the soonest schedule comes due (`next_due`, or one this tick
        # held), so that the loop, which waits on it, fires it on time rather than
        # at its next regular tick. Every process arms it: they race for the claim.
        self.wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._soonest: datetime | None = None

    async def tick(self) -> int:
        """Fire every due schedule this process can claim; the number of instances started."""
        claimed = await self._cron.claim_due(self._clock.now(), self._batch_size)
        started = 0
        self._soonest = None
        for schedule in claimed:
            try:
                started += await self._fire(schedule)
            except Exception:
                # The claim lapses after CRON_CLAIM_LEASE and the occurrence is tried
                # again (by any process); its idempotency key keeps it to one instance.
                _log.exception("cron schedule %s failed to fire", schedule.id)
        self._due_again(await self._cron.next_due(self._clock.now()))
        self._arm()
        return started

    def _due_again(self, when: datetime | None) -> None:
        if when is not None and (self._soonest is None or when < self._soonest):
            self._soonest = when

    def _arm(self) -> None:
        """Wake the loop when the soonest schedule is due (at once if one is due now:
        more were due than one claim takes)."""
        if self._soonest is None:
            return
        delay = (self._soonest - self._clock.now()).total_seconds()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(max(delay, MIN_WAKE_S), self.wake.set)

    def _next_after(self, schedule: CronSchedule, now: datetime) -> datetime | None:
        try:
            fires = self._calendar.next_fires(schedule.cron_expr, schedule.timezone, now, 1)
        except ValidationError as exc:  # stored before a stricter calendar: stop firing it
            _log.error("cron schedule %s can no longer be read: %s", schedule.id, exc)
            return None
        return fires[0] if fires else None

    async def _fire(self, schedule: CronSchedule) -> int:
        fire_at = schedule.next_fire_at
        assert fire_at is not None, "claim_due returns schedules with a fire time"
        cron = self._cron
        policy = schedule.overlap_policy
        if policy is not OverlapPolicy.ALLOW:
            previous = await cron.active_instance_ids(schedule.tenant_id, schedule.id)
            if previous and policy is OverlapPolicy.SKIP:
                now = self._clock.now()
                await cron.record_skip(schedule.id, fire_at, self._next_after(schedule, now), now)
                self._metrics.cron_skipped()
                _log.info("cron schedule %s skipped %s: previous run active", schedule.id, fire_at)
                return 0
            if previous and policy is OverlapPolicy.BUFFER_ONE:
                until = self._clock.now() + BUFFER_RECHECK
                await cron.hold(schedule.id, fire_at, until)
                self._due_again(until)  # `next_due` leaves held schedules out
                return 0
            if previous and policy is OverlapPolicy.CANCEL_PREVIOUS:
                await self._cancel(previous)
        started = await self._start(schedule, fire_at)
        if started:  # (a fire repeated after a lapsed claim starts nothing: counted once)
            self._metrics.cron_triggered()
        now = self._clock.now()
        await cron.record_fire(schedule.id, fire_at, self._next_after(schedule, now), now)
        return started

    async def _cancel(self, instance_ids: list[str]) -> None:
        for instance_id in instance_ids:
            # NotFound / InstanceTerminal: it ended (or went) meanwhile, nothing to cancel
            with contextlib.suppress(NotFound, InstanceTerminal):
                await self._signals.send(instance_id, SignalKind.CANCEL, {}, caller=None)

    async def _start(self, schedule: CronSchedule, fire_at: datetime) -> int:
        """Start the occurrence's instance; 1 when this call created it, 0 when it
        existed already (a repeated fire) or the sequence is gone."""
        metadata = {
            **schedule.metadata,
            SCHEDULE_ID_KEY: schedule.id,
            FIRE_AT_KEY: fire_time_text(fire_at),
        }
        cmd = NewInstance(
            sequence_id=schedule.sequence_id,
            tenant_id=schedule.tenant_id,
            namespace=schedule.namespace,
            priority=Priority.NORMAL,
            timezone=schedule.timezone,
            metadata=metadata,
            idempotency_key=fire_idempotency_key(schedule.id, fire_at),
        )
        try:
            started = await self._instances.create(cmd, caller=None)
        except NotFound:
            _log.error(
                "cron schedule %s: sequence %s no longer exists; occurrence %s not started",
                schedule.id,
                schedule.sequence_id,
                fire_at,
            )
            return 0
        text = fire_time_text(fire_at)
        fields = {
            "cron_schedule_id": schedule.id,
            "fire_at": text,
            "instance_id": started.instance.id,
            "deduplicated": started.deduplicated,
        }
        if started.deduplicated:  # a fire repeated after its claim lapsed
            message = "cron schedule %s: occurrence %s had started instance %s already"
        else:
            message = "cron schedule %s fired %s: instance %s"
        _log.info(message, schedule.id, text, started.instance.id, extra=fields)
        return 0 if started.deduplicated else 1
