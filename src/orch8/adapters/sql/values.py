"""How a dialect stores the values whose column types differ between the two.

Row mapping is the same in both dialects except for three kinds of value:
times (SQLite: INTEGER microseconds; PostgreSQL: timestamptz), flags (INTEGER 0/1
against BOOLEAN) and free error text (TEXT against BYTEA, since PostgreSQL text
cannot hold a NUL character and a worker's error may). Each dialect states
those conversions once, in a `Values`; the shared mappers use nothing else.
JSON documents travel as compact text in both.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any

from orch8.codec.wire import context_from_json, context_to_json
from orch8.domain.context import ExecutionContext


class Values(ABC):
    """One dialect's conversions between domain values and column values."""

    @abstractmethod
    def time(self, value: datetime) -> Any:
        """The column value of a timezone-aware time; naive ones are refused."""

    @abstractmethod
    def read_time(self, value: Any) -> datetime:
        """The aware time a time column holds."""

    @abstractmethod
    def flag(self, value: bool) -> Any:
        """The column value of a boolean."""

    @abstractmethod
    def error_text(self, value: str) -> Any:
        """The column value of free text that may hold any character, NUL included."""

    @abstractmethod
    def read_error_text(self, value: Any) -> str:
        """The text an error-text column holds."""

    def time_or_none(self, value: datetime | None) -> Any:
        return None if value is None else self.time(value)

    def read_time_or_none(self, value: Any) -> datetime | None:
        return None if value is None else self.read_time(value)

    def flag_or_none(self, value: bool | None) -> Any:
        return None if value is None else self.flag(value)

    def error_text_or_none(self, value: str | None) -> Any:
        return None if value is None else self.error_text(value)

    def read_error_text_or_none(self, value: Any) -> str | None:
        return None if value is None else self.read_error_text(value)


def dump_json(value: Any) -> str:
    """Compact JSON text, the form every JSON column is written in."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def json_or_none(value: Any) -> str | None:
    return None if value is None else dump_json(value)


def load_json_or_none(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def dump_context(ctx: ExecutionContext) -> str:
    return dump_json(context_to_json(ctx))


def load_context(text: str) -> ExecutionContext:
    return context_from_json(json.loads(text))
