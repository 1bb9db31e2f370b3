"""`CronStore`: cron schedules, claimed with a lease so one process fires each."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from orch8.domain.cron import CronSchedule

# How long `CronStore.claim_due` holds a schedule for the process that took it:
# a holder that dies before settling its occurrence delays it by this much.
CRON_CLAIM_LEASE = timedelta(seconds=30)


class CronStore(Protocol):
    """Cron schedules, and the bookkeeping of their fires.

    A fire is claimed (`claim_due`), acted on, then settled by exactly one of
    `record_fire`, `record_skip` or `hold`. Settling is guarded by the
    occurrence being settled: it applies only while the schedule's
    next_fire_at still equals `fire_at` (an edit in between wins) and returns
    whether it applied.
    """

    async def create(self, schedule: CronSchedule) -> None:
        """Insert a schedule; Conflict when the id exists."""
        ...

    async def get(self, schedule_id: str) -> CronSchedule | None: ...

    async def query(self, tenant_id: str | None) -> list[CronSchedule]:
        """One tenant's schedules (None: every tenant's), oldest first (created_at, id)."""
        ...

    async def update(self, schedule: CronSchedule) -> bool:
        """Store the user-editable fields of `schedule` (cron_expr, timezone, metadata,
        enabled, overlap_policy) with its next_fire_at and updated_at, and drop any
        claim on it; the fire bookkeeping (last_triggered_at, skipped_fires,
        last_skipped_at) is left as stored. False when there is no such schedule."""
        ...

    async def delete(self, schedule_id: str) -> bool:
        """Remove a schedule; False when absent. Instances it started are kept."""
        ...

    async def claim_due(self, now: datetime, limit: int) -> list[CronSchedule]:
        """Atomically take up to `limit` enabled schedules whose next_fire_at has come
        and that no caller holds, earliest next_fire_at first, holding each until
        now + CRON_CLAIM_LEASE. Two concurrent callers (threads, processes) never
        take the same schedule; a holder that never settles it loses it when the
        hold expires, and the next taker gets the same occurrence. The returned
        schedules carry the occurrence to fire as next_fire_at (a claim does not
        change it). A limit of zero or less takes nothing."""
        ...

    async def record_fire(
        self, schedule_id: str, fire_at: datetime, next_fire_at: datetime | None, now: datetime
    ) -> bool:
        """The occurrence `fire_at` started its instance: last_triggered_at = updated_at
        = now, next_fire_at = `next_fire_at`, claim released."""
        ...

    async def record_skip(
        self, schedule_id: str, fire_at: datetime, next_fire_at: datetime | None, now: datetime
    ) -> bool:
        """The occurrence `fire_at` was skipped (overlap policy `skip`): skipped_fires + 1,
        last_skipped_at = updated_at = now, next_fire_at = `next_fire_at`, claim released."""
        ...

    async def hold(self, schedule_id: str, fire_at: datetime, until: datetime) -> bool:
        """Keep the occurrence `fire_at` pending but unclaimable until `until` (overlap
        policy `buffer_one` waiting for the previous run)."""
        ...

    async def next_due(self, now: datetime) -> datetime | None:
        """The earliest next_fire_at among enabled schedules no caller holds at `now`
        (None when there is none): when a claim will next find work. May be in
        the past when due schedules are waiting to be claimed."""
        ...

    async def active_instance_ids(self, tenant_id: str, schedule_id: str) -> list[str]:
        """The tenant's instances not yet ended (scheduled, running, waiting, paused)
        whose metadata.cron_schedule_id is `schedule_id`, oldest first."""
        ...
