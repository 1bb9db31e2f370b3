"""Cron schedules: a sequence started on a calendar.

The calendar arithmetic itself (parsing 5/6/7-field expressions, DST) sits
behind the `CronCalendar` port; this module holds the schedule and the rules
that need no calendar.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from attrs import field, frozen

from orch8.domain.errors import ValidationError


class OverlapPolicy(StrEnum):
    """What a due fire does while an earlier run of the same schedule is still active."""

    ALLOW = "allow"  # fire anyway
    SKIP = "skip"  # drop this occurrence (counted in skipped_fires)
    BUFFER_ONE = "buffer_one"  # wait for the earlier run to end, then fire once
    CANCEL_PREVIOUS = "cancel_previous"  # cancel the earlier runs, then fire


def overlap_policy(value: object, path: str = "overlap_policy") -> OverlapPolicy:
    if isinstance(value, str):
        try:
            return OverlapPolicy(value)
        except ValueError:
            pass
    names = ", ".join(p.value for p in OverlapPolicy)
    raise ValidationError(f"must be one of {names}", path=path)


# Metadata keys the engine stamps on every instance a schedule starts: which
# schedule, and which occurrence (RFC 3339, UTC) it is.
SCHEDULE_ID_KEY = "cron_schedule_id"
FIRE_AT_KEY = "cron_fire_at"


@frozen
class CronSchedule:
    id: str
    tenant_id: str
    namespace: str
    sequence_id: str
    cron_expr: str
    created_at: datetime
    updated_at: datetime
    timezone: str = "UTC"
    metadata: Mapping[str, Any] = field(factory=dict)
    enabled: bool = True
    overlap_policy: OverlapPolicy = OverlapPolicy.ALLOW
    # The occurrence to fire next (UTC); None when the expression has no later one.
    next_fire_at: datetime | None = None
    last_triggered_at: datetime | None = None
    skipped_fires: int = 0
    last_skipped_at: datetime | None = None


def fire_time_text(fire_at: datetime) -> str:
    """An occurrence as RFC 3339 in UTC ('Z'), the way the wire writes times."""
    return fire_at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def fire_idempotency_key(schedule_id: str, fire_at: datetime) -> str:
    """The key of the one instance an occurrence may start, whichever process fires it:
    `cron:<schedule id>:<occurrence, RFC 3339>`."""
    return f"cron:{schedule_id}:{fire_time_text(fire_at)}"
