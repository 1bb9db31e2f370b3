"""How SQLite stores times, flags and error text, and the shared mappers bound to it.

Times become INTEGER microseconds since the epoch (UTC), so that ordering and
the claim's `next_fire_at <= now` are integer comparisons; flags are INTEGER
0/1; text, error text included, is TEXT (SQLite keeps a NUL character).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orch8.adapters.sql.api_key_rows import ApiKeyRows
from orch8.adapters.sql.rows import Rows
from orch8.adapters.sql.schedule_rows import ScheduleRows
from orch8.adapters.sql.task_rows import TaskRows
from orch8.adapters.sql.values import Values

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_us(value: datetime) -> int:
    """Microseconds since the epoch; naive datetimes are refused, not guessed at."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"storage needs timezone-aware datetimes, got naive {value!r}")
    return (value - _EPOCH) // _MICROSECOND


def from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


class SqliteValues(Values):
    # Plain functions, not methods wrapping them: these run for every time column.
    time = staticmethod(to_us)
    read_time = staticmethod(from_us)

    # Called for every time column of every row written or read: one call, not two.
    def time_or_none(self, value: datetime | None) -> int | None:
        return None if value is None else to_us(value)

    def read_time_or_none(self, value: int | None) -> datetime | None:
        return None if value is None else _EPOCH + timedelta(microseconds=value)

    def flag(self, value: bool) -> int:
        return int(value)

    def error_text(self, value: str) -> str:
        return value

    def read_error_text(self, value: str) -> str:
        return value


VALUES = SqliteValues()
ROWS = Rows(VALUES)
TASK_ROWS = TaskRows(VALUES)
SCHEDULE_ROWS = ScheduleRows(VALUES)
API_KEY_ROWS = ApiKeyRows(VALUES)
