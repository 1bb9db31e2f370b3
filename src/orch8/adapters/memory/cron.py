"""Cron schedules in memory: the reference behaviour of `CronStore`.

Single event loop, no await between a read and its write, so every method is
atomic; holds are kept beside the schedules, as the SQL adapters keep them in
a column the domain type does not carry.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from attrs import evolve

from orch8.application.errors import Conflict
from orch8.application.ports.storage import CRON_CLAIM_LEASE, CronStore
from orch8.domain.cron import SCHEDULE_ID_KEY, CronSchedule
from orch8.domain.instance import Instance


class MemoryCronStore(CronStore):
    def __init__(self, instances: Mapping[str, Instance]) -> None:
        self._instances = instances  # the storage's live instance table, read-only here
        self._schedules: dict[str, CronSchedule] = {}
        self._held_until: dict[str, datetime] = {}

    async def create(self, schedule: CronSchedule) -> None:
        if schedule.id in self._schedules:
            raise Conflict(f"cron schedule {schedule.id} already exists")
        self._schedules[schedule.id] = schedule

    async def get(self, schedule_id: str) -> CronSchedule | None:
        return self._schedules.get(schedule_id)

    async def query(self, tenant_id: str | None) -> list[CronSchedule]:
        found = [s for s in self._schedules.values() if tenant_id in (None, s.tenant_id)]
        return sorted(found, key=lambda s: (s.created_at, s.id))

    async def update(self, schedule: CronSchedule) -> bool:
        stored = self._schedules.get(schedule.id)
        if stored is None:
            return False
        self._schedules[schedule.id] = evolve(
            stored,
            cron_expr=schedule.cron_expr,
            timezone=schedule.timezone,
            metadata=schedule.metadata,
            enabled=schedule.enabled,
            overlap_policy=schedule.overlap_policy,
            next_fire_at=schedule.next_fire_at,
            updated_at=schedule.updated_at,
        )
        self._held_until.pop(schedule.id, None)
        return True

    async def delete(self, schedule_id: str) -> bool:
        self._held_until.pop(schedule_id, None)
        return self._schedules.pop(schedule_id, None) is not None

    async def claim_due(self, now: datetime, limit: int) -> list[CronSchedule]:
        if limit <= 0:
            return []
        due = [
            s
            for s in self._schedules.values()
            if s.enabled
            and s.next_fire_at is not None
            and s.next_fire_at <= now
            and self._held_until.get(s.id, now) <= now
        ]
        due.sort(key=lambda s: (s.next_fire_at, s.id))
        taken = due[:limit]
        for s in taken:
            self._held_until[s.id] = now + CRON_CLAIM_LEASE
        return taken

    def _pending(self, schedule_id: str, fire_at: datetime) -> CronSchedule | None:
        stored = self._schedules.get(schedule_id)
        if stored is None or stored.next_fire_at != fire_at:
            return None
        return stored

    async def record_fire(
        self, schedule_id: str, fire_at: datetime, next_fire_at: datetime | None, now: datetime
    ) -> bool:
        stored = self._pending(schedule_id, fire_at)
        if stored is None:
            return False
        self._schedules[schedule_id] = evolve(
            stored, next_fire_at=next_fire_at, last_triggered_at=now, updated_at=now
        )
        self._held_until.pop(schedule_id, None)
        return True

    async def record_skip(
        self, schedule_id: str, fire_at: datetime, next_fire_at: datetime | None, now: datetime
    ) -> bool:
        stored = self._pending(schedule_id, fire_at)
        if stored is None:
            return False
        self._schedules[schedule_id] = evolve(
            stored,
            next_fire_at=next_fire_at,
            skipped_fires=stored.skipped_fires + 1,
            last_skipped_at=now,
            updated_at=now,
        )
        self._held_until.pop(schedule_id, None)
        return True

    async def hold(self, schedule_id: str, fire_at: datetime, until: datetime) -> bool:
        if self._pending(schedule_id, fire_at) is None:
            return False
        self._held_until[schedule_id] = until
        return True

    async def next_due(self, now: datetime) -> datetime | None:
        fires = [
            s.next_fire_at
            for s in self._schedules.values()
            if s.enabled and s.next_fire_at is not None and self._held_until.get(s.id, now) <= now
        ]
        return min(fires, default=None)

    async def active_instance_ids(self, tenant_id: str, schedule_id: str) -> list[str]:
        found = [
            i
            for i in self._instances.values()
            if i.tenant_id == tenant_id
            and not i.state.is_terminal
            and i.metadata.get(SCHEDULE_ID_KEY) == schedule_id
        ]
        found.sort(key=lambda i: (i.created_at, i.id))
        return [i.id for i in found]
