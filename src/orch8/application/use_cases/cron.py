"""Creating, reading, changing and previewing cron schedules."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from attrs import evolve, field, frozen

from orch8.application.errors import NotFound
from orch8.application.ports.clock import Clock, IdGenerator
from orch8.application.ports.cron import CronCalendar
from orch8.application.ports.storage import CronStore, SequenceStore
from orch8.application.use_cases.tenancy import effective_tenant, visible
from orch8.domain.cron import CronSchedule, OverlapPolicy
from orch8.domain.errors import ValidationError

DEFAULT_NAMESPACE = "default"
# `GET /cron/{id}/next-fires?n=`: Orch8's default and maximum.
DEFAULT_PREVIEW = 5
MAX_PREVIEW = 50


@frozen
class NewCron:
    """A create-schedule request, parsed by the edge."""

    sequence_id: str
    cron_expr: str
    tenant_id: str | None = None
    namespace: str = DEFAULT_NAMESPACE
    timezone: str = "UTC"
    metadata: Mapping[str, Any] = field(factory=dict)
    enabled: bool = True
    overlap_policy: OverlapPolicy = OverlapPolicy.ALLOW


@frozen
class CronChanges:
    """An update: None leaves a field as it is."""

    cron_expr: str | None = None
    timezone: str | None = None
    enabled: bool | None = None
    metadata: Mapping[str, Any] | None = None
    overlap_policy: OverlapPolicy | None = None


class CronService:
    def __init__(
        self,
        sequences: SequenceStore,
        cron: CronStore,
        calendar: CronCalendar,
        clock: Clock,
        ids: IdGenerator,
    ) -> None:
        self._sequences = sequences
        self._cron = cron
        self._calendar = calendar
        self._clock = clock
        self._ids = ids

    def _first_after(self, expr: str, timezone: str, now: datetime) -> datetime:
        """The first occurrence after `now`; checks the expression, then the timezone."""
        self._calendar.validate(expr)
        fires = self._calendar.next_fires(expr, timezone, now, 1)
        if not fires:
            raise ValidationError(
                f"'{expr}' has no occurrence after {now.isoformat()}", path="cron_expr"
            )
        return fires[0]

    async def create(self, cmd: NewCron, *, caller: str | None) -> CronSchedule:
        tenant = effective_tenant(cmd.tenant_id, caller, default=None)
        now = self._clock.now()
        next_fire_at = self._first_after(cmd.cron_expr, cmd.timezone, now)
        seq = await self._sequences.get(cmd.sequence_id)
        if seq is None or seq.tenant_id != tenant or not visible(seq.tenant_id, caller):
            raise NotFound("sequence", cmd.sequence_id)
        if cmd.namespace not in (seq.namespace, DEFAULT_NAMESPACE):
            raise ValidationError(
                f"sequence lives in namespace '{seq.namespace}'", path="namespace"
            )
        schedule = CronSchedule(
            id=self._ids.new_id(),
            tenant_id=tenant,
            namespace=seq.namespace,
            sequence_id=seq.id,
            cron_expr=cmd.cron_expr,
            timezone=cmd.timezone,
            metadata=dict(cmd.metadata),
            enabled=cmd.enabled,
            overlap_policy=cmd.overlap_policy,
            next_fire_at=next_fire_at,
            created_at=now,
            updated_at=now,
        )
        await self._cron.create(schedule)
        return schedule

    async def get(self, schedule_id: str, *, caller: str | None) -> CronSchedule:
        schedule = await self._cron.get(schedule_id)
        if schedule is None or not visible(schedule.tenant_id, caller):
            raise NotFound("cron schedule", schedule_id)
        return schedule

    async def query(self, tenant_id: str | None, *, caller: str | None) -> list[CronSchedule]:
        if caller is not None:
            if tenant_id not in (None, caller):
                return []
            tenant_id = caller
        return await self._cron.query(tenant_id)

    async def update(
        self, schedule_id: str, changes: CronChanges, *, caller: str | None
    ) -> CronSchedule:
        current = await self.get(schedule_id, caller=caller)
        now = self._clock.now()
        updated = evolve(
            current,
            cron_expr=current.cron_expr if changes.cron_expr is None else changes.cron_expr,
            timezone=current.timezone if changes.timezone is None else changes.timezone,
            enabled=current.enabled if changes.enabled is None else changes.enabled,
            metadata=current.metadata if changes.metadata is None else dict(changes.metadata),
            overlap_policy=changes.overlap_policy or current.overlap_policy,
            updated_at=now,
        )
        # A new calendar, or a schedule switched back on, starts from now: the
        # occurrences it missed while off are not fired. Other edits keep the
        # pending occurrence (it may be firing at this moment).
        timing = (updated.cron_expr, updated.timezone) != (current.cron_expr, current.timezone)
        if timing or (updated.enabled and not current.enabled):
            updated = evolve(
                updated, next_fire_at=self._first_after(updated.cron_expr, updated.timezone, now)
            )
        if not await self._cron.update(updated):
            raise NotFound("cron schedule", schedule_id)
        return await self.get(schedule_id, caller=caller)

    async def delete(self, schedule_id: str, *, caller: str | None) -> None:
        await self.get(schedule_id, caller=caller)
        if not await self._cron.delete(schedule_id):
            raise NotFound("cron schedule", schedule_id)

    async def next_fires(
        self, schedule_id: str, n: int = DEFAULT_PREVIEW, *, caller: str | None
    ) -> list[datetime]:
        """The schedule's next `n` occurrences (1..MAX_PREVIEW) after now, in UTC."""
        if not 1 <= n <= MAX_PREVIEW:
            raise ValidationError(f"must be between 1 and {MAX_PREVIEW}", path="n")
        schedule = await self.get(schedule_id, caller=caller)
        return self._calendar.next_fires(
            schedule.cron_expr, schedule.timezone, self._clock.now(), n
        )
