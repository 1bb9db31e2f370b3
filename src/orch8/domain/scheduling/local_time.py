"""Local wall-clock times in IANA zones, with the DST rules the product promises:
a local time that does not exist (the spring-forward gap) means the first valid instant
after the gap; one that exists twice (fall-back) means the earlier."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orch8.domain.errors import ValidationError


def zone(name: str, *, path: str = "timezone") -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"unknown timezone '{name}'", path=path) from None


def to_instant(local: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant of naive wall-clock `local` in `tz`."""
    earlier = local.replace(tzinfo=tz, fold=0)
    instant = earlier.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == local:
        return instant  # exists (once, or twice: fold=0 is the earlier)
    # In a gap: find the first instant whose wall clock is at or after `local`.
    low = min(instant, local.replace(tzinfo=tz, fold=1).astimezone(UTC))
    high = max(instant, local.replace(tzinfo=tz, fold=1).astimezone(UTC))
    while high - low > timedelta(seconds=1):
        mid = low + (high - low) / 2
        if mid.astimezone(tz).replace(tzinfo=None) >= local:
            high = mid
        else:
            low = mid
    return high.replace(microsecond=0) if high.microsecond else high
