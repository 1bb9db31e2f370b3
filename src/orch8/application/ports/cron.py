"""Cron arithmetic behind a port: the application never parses an expression itself."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class CronCalendar(Protocol):
    """Reads cron expressions and finds their occurrences.

    Accepted expressions: 5 fields (Unix: `min hour dom mon dow`), 6 fields
    (`sec min hour dom mon dow`) and 7 fields (`sec min hour dom mon dow year`).
    Occurrences are wall-clock times in the schedule's IANA timezone. Across a
    DST change, a wall-clock time that does not exist (clocks jump forward)
    fires at the first valid instant after the gap; one that happens twice
    (clocks fall back) fires once, at the earlier instant.
    """

    def validate(self, expr: str) -> None:
        """Raise ValidationError(path="cron_expr") unless `expr` is a cron expression
        this calendar reads and that can match at least one date."""
        ...

    def next_fires(self, expr: str, timezone: str, after: datetime, n: int) -> list[datetime]:
        """The first `n` occurrences strictly after `after`, as aware UTC datetimes in
        increasing order (fewer when the expression runs out, e.g. a year field in
        the past). Raises ValidationError(path="cron_expr") for a bad expression and
        ValidationError(path="timezone") for an unknown timezone."""
        ...
