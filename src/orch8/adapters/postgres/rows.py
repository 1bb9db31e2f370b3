"""How PostgreSQL stores times, flags and error text, and the shared mappers bound to it.

Times are timestamptz (asyncpg hands back UTC-aware datetimes; naive ones are
refused on the way in, never guessed at); flags are BOOLEAN; error text is
UTF-8 BYTEA, because PostgreSQL text cannot hold a NUL character and a
worker's or a step's error may. JSON documents travel as compact text and are
parsed by the shared mappers, so every JSONB value round-trips through the
same `json` module the other adapters use.
"""

from __future__ import annotations

from datetime import datetime

from orch8.adapters.sql.api_key_rows import ApiKeyRows
from orch8.adapters.sql.rows import Rows
from orch8.adapters.sql.schedule_rows import ScheduleRows
from orch8.adapters.sql.task_rows import TaskRows
from orch8.adapters.sql.values import Values


def aware(value: datetime) -> datetime:
    """`value` itself, once checked to carry a timezone."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"storage needs timezone-aware datetimes, got naive {value!r}")
    return value


def aware_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else aware(value)


class PostgresValues(Values):
    def time(self, value: datetime) -> datetime:
        return aware(value)

    def read_time(self, value: datetime) -> datetime:
        return value

    # Called for every time column of every row written or read: one call, not two.
    def time_or_none(self, value: datetime | None) -> datetime | None:
        return None if value is None else aware(value)

    def read_time_or_none(self, value: datetime | None) -> datetime | None:
        return value

    def flag(self, value: bool) -> bool:
        return value

    def error_text(self, value: str) -> bytes:
        return value.encode("utf-8")

    def read_error_text(self, value: bytes) -> str:
        return bytes(value).decode("utf-8")


VALUES = PostgresValues()
ROWS = Rows(VALUES)
TASK_ROWS = TaskRows(VALUES)
SCHEDULE_ROWS = ScheduleRows(VALUES)
API_KEY_ROWS = ApiKeyRows(VALUES)
