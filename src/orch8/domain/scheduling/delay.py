"""When a delayed step becomes due.

Jitter is drawn from a hash of a caller-given seed (instance and block id), so
the same instance lands on the same instant however often it is evaluated —
a restart never re-rolls it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import date, datetime, timedelta

from orch8.domain.scheduling.local_time import to_instant, zone
from orch8.domain.sequence import DelaySpec

_SATURDAY = 5


def delay_target(
    spec: DelaySpec,
    now: datetime,
    *,
    seed: str,
    extra_holidays: Iterable[str] = (),
    timezone: str = "UTC",
) -> datetime:
    """`fire_at_local` (a wall-clock time in the delay's or else the instance's
    timezone) overrides `duration`; business days are judged in that timezone too."""
    tz = zone(spec.timezone or timezone, path="delay.timezone")
    if spec.fire_at_local is not None:
        target = to_instant(datetime.fromisoformat(spec.fire_at_local), tz)
    else:
        target = now + timedelta(milliseconds=spec.duration_ms)
    if spec.business_days_only:
        local = target.astimezone(tz)
        moved = next_business_day(local, {*spec.holidays, *extra_holidays})
        if moved != local:
            target = to_instant(moved.replace(tzinfo=None), tz)
    if spec.jitter_ms:
        target += timedelta(milliseconds=jitter_offset_ms(spec.jitter_ms, seed))
    return target


def next_business_day(at: datetime, holidays: set[str]) -> datetime:
    """Move `at` forward by whole days until it is neither a weekend nor a holiday."""
    parsed = {_parse_day(h) for h in holidays}
    parsed.discard(None)
    while at.weekday() >= _SATURDAY or at.date() in parsed:
        at += timedelta(days=1)
    return at


def jitter_offset_ms(jitter_ms: int, seed: str) -> int:
    digest = hashlib.sha256(seed.encode()).digest()
    span = 2 * jitter_ms + 1
    return int.from_bytes(digest[:8], "big") % span - jitter_ms


def _parse_day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None
