"""Send windows: hours `[start_hour, end_hour)` on `days` (0 = Monday), in a timezone.

A window whose start is after its end wraps midnight (22-6 is open from 22:00 to
06:00 the next morning); the night belongs to the day it started on.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from orch8.domain.scheduling.local_time import to_instant
from orch8.domain.sequence import SendWindow


def _day_allowed(window: SendWindow, weekday: int) -> bool:
    return not window.days or weekday in window.days


def is_open(window: SendWindow, at: datetime, tz: ZoneInfo) -> bool:
    local = at.astimezone(tz)
    hour, weekday = local.hour, local.weekday()
    if window.start_hour < window.end_hour:
        return window.start_hour <= hour < window.end_hour and _day_allowed(window, weekday)
    if hour >= window.start_hour:
        return _day_allowed(window, weekday)
    if hour < window.end_hour:
        return _day_allowed(window, (weekday - 1) % 7)
    return False


def next_opening(window: SendWindow, now: datetime, tz: ZoneInfo) -> datetime | None:
    """None when the window is open at `now`, else the instant it next opens."""
    if is_open(window, now, tz):
        return None
    today = now.astimezone(tz).date()
    for offset in range(9):
        day = today + timedelta(days=offset)
        if not _day_allowed(window, day.weekday()):
            continue
        opening = to_instant(datetime.combine(day, time(window.start_hour)), tz)
        if opening > now:
            return opening
    raise AssertionError("a validated window opens within a week")  # pragma: no cover
