"""Row <-> domain conversions for cron schedules and rate limits.

Both are operator-made settings whose columns match in the two schemas; only
times and flags are stored differently, as `Values` says.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from attrs import frozen

from orch8.adapters.sql.rows import Row
from orch8.adapters.sql.values import Values, dump_json
from orch8.domain.cron import CronSchedule, OverlapPolicy
from orch8.domain.rate_limits import RateLimit


@frozen
class ScheduleRows:
    """The cron schedule and rate limit mappers of one dialect."""

    values: Values

    def schedule_params(self, s: CronSchedule) -> tuple[Any, ...]:
        """cron_schedules columns id .. updated_at, in table order."""
        v = self.values
        return (
            s.id,
            s.tenant_id,
            s.namespace,
            s.sequence_id,
            s.cron_expr,
            s.timezone,
            dump_json(dict(s.metadata)),
            v.flag(s.enabled),
            s.overlap_policy.value,
            v.time_or_none(s.next_fire_at),
            v.time_or_none(s.last_triggered_at),
            s.skipped_fires,
            v.time_or_none(s.last_skipped_at),
            v.time(s.created_at),
            v.time(s.updated_at),
        )

    def schedule_from_row(self, row: Row) -> CronSchedule:
        """The same columns as `schedule_params`, in its order."""
        (
            sid,
            tenant_id,
            namespace,
            sequence_id,
            cron_expr,
            timezone,
            metadata,
            enabled,
            overlap_policy,
            next_fire_at,
            last_triggered_at,
            skipped_fires,
            last_skipped_at,
            created_at,
            updated_at,
        ) = row
        v = self.values
        return CronSchedule(
            id=sid,
            tenant_id=tenant_id,
            namespace=namespace,
            sequence_id=sequence_id,
            cron_expr=cron_expr,
            timezone=timezone,
            metadata=json.loads(metadata),
            enabled=bool(enabled),
            overlap_policy=OverlapPolicy(overlap_policy),
            next_fire_at=v.read_time_or_none(next_fire_at),
            last_triggered_at=v.read_time_or_none(last_triggered_at),
            skipped_fires=int(skipped_fires),
            last_skipped_at=v.read_time_or_none(last_skipped_at),
            created_at=v.read_time(created_at),
            updated_at=v.read_time(updated_at),
        )

    def schedule_update_params(self, s: CronSchedule) -> tuple[Any, ...]:
        """id, then what an update changes: cron_expr, timezone, metadata, enabled,
        overlap_policy, next_fire_at, updated_at."""
        return (
            s.id,
            s.cron_expr,
            s.timezone,
            dump_json(dict(s.metadata)),
            self.values.flag(s.enabled),
            s.overlap_policy.value,
            self.values.time_or_none(s.next_fire_at),
            self.values.time(s.updated_at),
        )

    def settle_params(
        self, schedule_id: str, fire_at: datetime, next_fire_at: datetime | None, now: datetime
    ) -> tuple[Any, ...]:
        """Settling a fire or a skip: id, the occurrence settled, the next one, now."""
        v = self.values
        return (schedule_id, v.time(fire_at), v.time_or_none(next_fire_at), v.time(now))

    def limit_params(self, limit: RateLimit) -> tuple[Any, ...]:
        """rate_limits columns tenant_id .. updated_at, in table order."""
        return (
            limit.tenant_id,
            limit.key,
            limit.max_count,
            limit.window_seconds,
            limit.window_us,
            self.values.time(limit.created_at),
            self.values.time(limit.updated_at),
        )

    def limit_from_row(self, row: Row) -> RateLimit:
        """tenant_id, resource_key, max_count, window_seconds, created_at, updated_at."""
        tenant_id, key, max_count, window_seconds, created_at, updated_at = row
        return RateLimit(
            tenant_id=tenant_id,
            key=key,
            max_count=int(max_count),
            window_seconds=float(window_seconds),
            created_at=self.values.read_time(created_at),
            updated_at=self.values.read_time(updated_at),
        )
