"""`CronCalendar` on croniter, with orch8's own DST rules.

croniter walks the expression over *naive local wall-clock times* (so it never
sees a DST change); each wall time is then placed on the UTC timeline here:

* a wall time that exists once is that instant;
* one that does not exist (inside a spring-forward gap) becomes the first
  valid instant after the gap, i.e. the transition itself;
* one that exists twice (inside a fall-back fold) is the earlier instant only
  (the walk never returns to the repeated wall times, so it fires once).

Several gap times collapse onto the same transition instant; results are kept
strictly increasing, so that instant fires once. croniter's own aware mode
agrees with this except in two places, which is why it is not used directly:
in a fold it fires both instants, and for some expressions (e.g. `0 30 * * * *`)
it drops a gap occurrence instead of moving it to the transition.
tests/unit/test_cron_calendar.py compares the two around every DST change.

Fields: 5 (Unix `min hour dom mon dow`), 6 (`sec min hour dom mon dow`) and
7 (`sec min hour dom mon dow year`, years 1970-2099): croniter reads the last
two natively with `second_at_beginning`. Day-of-week numbers follow Unix cron
(0 or 7 = Sunday); names (MON-FRI) are accepted; when both day-of-month and
day-of-week are restricted, either matching fires (Vixie cron).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

from orch8.application.ports.cron import CronCalendar
from orch8.domain.errors import ValidationError

# How far croniter searches for the next match before giving up (a year field
# can put the next occurrence decades away; 2099 is the last year it reads).
_MAX_YEARS = 130
_FIELD_COUNTS = (5, 6, 7)
# The most occurrences one call may ask for (the REST preview allows 50).
MAX_FIRES = 1000


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`; ValidationError(path="timezone") when unknown."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("must be an IANA timezone name", path="timezone")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValidationError(f"unknown timezone '{name}'", path="timezone") from None


def _field_count(expr: str) -> int:
    return len(expr.split())


def _check(expr: object) -> str:
    if not isinstance(expr, str) or not expr.strip():
        raise ValidationError("must be a cron expression", path="cron_expr")
    text = expr.strip()
    if not text.startswith("@") and _field_count(text) not in _FIELD_COUNTS:
        raise ValidationError(
            f"invalid cron expression '{text}': expected 5, 6 or 7 fields, "
            f"got {_field_count(text)}",
            path="cron_expr",
        )
    try:
        # strict: refuse a day-of-month no month has (`0 0 30 2 *` never fires)
        croniter.expand(text, second_at_beginning=True, strict=True)
    except (CroniterError, ValueError, TypeError, KeyError, IndexError) as exc:
        raise ValidationError(
            f"invalid cron expression '{text}': {exc}", path="cron_expr"
        ) from None
    return text


def _walker(expr: str, start: datetime) -> Any:
    return croniter(
        expr,
        start,
        ret_type=datetime,
        second_at_beginning=True,
        max_years_between_matches=_MAX_YEARS,
    )


def _wall(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


def to_utc(wall: datetime, tz: ZoneInfo) -> datetime:
    """The instant a naive local wall time fires at, by the DST rules above."""
    earlier = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if _wall(earlier, tz) == wall:
        return earlier  # exists; in a fold, fold=0 is the earlier instant
    # In a gap, fold=0 applies the offset from before the transition (an instant
    # after the gap) and fold=1 the one from after it (an instant before): the
    # transition lies between. Find it to the second (tz transitions fall on
    # whole seconds): the first instant whose wall time is past `wall`.
    lo = int(wall.replace(tzinfo=tz, fold=1).astimezone(UTC).timestamp())
    hi = int(earlier.timestamp()) + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if _wall(datetime.fromtimestamp(mid, UTC), tz) > wall:
            hi = mid
        else:
            lo = mid + 1
    return datetime.fromtimestamp(lo, UTC)


class CroniterCalendar(CronCalendar):
    def validate(self, expr: str) -> None:
        _check(expr)

    def next_fires(self, expr: str, timezone: str, after: datetime, n: int) -> list[datetime]:
        text = _check(expr)
        tz = zone(timezone)
        if after.tzinfo is None or after.utcoffset() is None:
            raise ValueError("next_fires needs a timezone-aware `after`")
        if n <= 0:
            return []
        n = min(n, MAX_FIRES)
        after = after.astimezone(UTC)
        walk = _walker(text, _wall(after, tz))
        found: list[datetime] = []
        last = after
        while len(found) < n:
            try:
                wall: datetime = walk.get_next(datetime)
            except CroniterBadDateError:
                break  # no occurrence left (a year field in the past)
            except CroniterError as exc:  # pragma: no cover - _check read it already
                raise ValidationError(f"invalid cron expression: {exc}", path="cron_expr") from None
            instant = to_utc(wall, tz)
            if instant > last:
                found.append(instant)
                last = instant
        return found
