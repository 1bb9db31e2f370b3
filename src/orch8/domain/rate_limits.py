"""Rate limits: at most `max_count` uses of a key in any window of `window_seconds`.

An exact sliding log, not Orch8's fixed window (which admits up to twice the
limit across a window boundary). Each admitted use is remembered with its
instant; a use at `now` is admitted while fewer than `max_count` admissions lie
in the window `(now - window, now]`. Sorted, any `max_count + 1` consecutive
admissions therefore span at least one window: no half-open interval of that
length ever holds more than `max_count`.

A refused use learns when it will be admitted: the instant the admission that
keeps the window full leaves it (with exactly `max_count` in the window, the
oldest one; more are possible after the limit was lowered). Nothing is
admitted in between unless someone else takes the freed place first.

Admissions stamped later than `now` (another process's clock running a little
ahead, or a caller that read the clock before waiting for the lock) count as
inside the window, so clock skew only ever makes the limit stricter. Storage
keeps admissions for `KEPT_WINDOWS` windows, which covers a skew of up to one
window; anything older can no longer matter and is pruned.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from attrs import field, frozen

from orch8.domain.errors import ValidationError

MAX_KEY_LENGTH = 255
MAX_COUNT = 2**31 - 1
MIN_WINDOW_SECONDS = 1e-6  # one microsecond, the resolution of stored instants
MAX_WINDOW_SECONDS = 366 * 24 * 3600.0  # a year: the longest window a limit may span
KEPT_WINDOWS = 2
_MICROSECOND = timedelta(microseconds=1)


def _text(name: str) -> Any:
    def check(_inst: object, _attr: object, value: object) -> None:
        if not isinstance(value, str) or not value.strip():
            raise ValidationError("must be a non-empty string", path=name)
        if len(value) > MAX_KEY_LENGTH:
            raise ValidationError(f"must be at most {MAX_KEY_LENGTH} characters", path=name)
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValidationError("must not contain control characters", path=name)

    return check


def _max_count(_inst: object, _attr: object, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("must be an integer", path="max_count")
    if value <= 0:
        raise ValidationError("must be positive", path="max_count")
    if value > MAX_COUNT:
        raise ValidationError(f"must be at most {MAX_COUNT}", path="max_count")


def _seconds(value: Any) -> Any:
    """Whole numbers become floats; anything else is left for the validator."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            return math.inf
    return value


def _window(_inst: object, _attr: object, value: Any) -> None:
    if not isinstance(value, float) or math.isnan(value):
        raise ValidationError("must be a number of seconds", path="window_seconds")
    if value <= 0:
        raise ValidationError("must be positive", path="window_seconds")
    if not MIN_WINDOW_SECONDS <= value <= MAX_WINDOW_SECONDS:
        raise ValidationError(
            f"must be between {MIN_WINDOW_SECONDS} and {MAX_WINDOW_SECONDS:.0f}",
            path="window_seconds",
        )


def _instant(name: str) -> Any:
    def check(_inst: object, _attr: object, value: object) -> None:
        if not isinstance(value, datetime) or value.utcoffset() is None:
            raise ValidationError("must be a timezone-aware datetime", path=name)

    return check


@frozen
class RateLimit:
    """The limit on one key of one tenant (every field is checked on construction;
    a bad one raises ValidationError naming it)."""

    tenant_id: str = field(validator=_text("tenant_id"))
    key: str = field(validator=_text("key"))
    max_count: int = field(validator=_max_count)
    window_seconds: float = field(converter=_seconds, validator=_window)
    created_at: datetime = field(validator=_instant("created_at"))
    updated_at: datetime = field(validator=_instant("updated_at"))

    @property
    def window(self) -> timedelta:
        """The window, to the microsecond (every backend computes with this value)."""
        return max(timedelta(seconds=self.window_seconds), _MICROSECOND)

    @property
    def window_us(self) -> int:
        return self.window // _MICROSECOND

    def admission(self, admitted: Iterable[datetime], now: datetime) -> datetime | None:
        """Whether a use at `now` is admitted, given earlier admissions of this key
        (any order; those outside the window are ignored): None when it is, else
        the earliest instant at which it would be."""
        return next_admission(self.max_count, self.window, admitted, now)

    def prune_before(self, now: datetime) -> datetime:
        """Admissions at or before this instant can no longer affect a decision."""
        return now - KEPT_WINDOWS * self.window


def next_admission(
    max_count: int, window: timedelta, admitted: Iterable[datetime], now: datetime
) -> datetime | None:
    """None when a use at `now` is admitted, else the instant it will be.

    Counts the admissions later than `now - window`; with `n >= max_count` of
    them, sorted, the window stops being full when the `(n - max_count)`-th
    leaves it, at its instant plus `window` (always after `now`).
    """
    start = now - window
    recent = sorted(t for t in admitted if t > start)
    if len(recent) < max_count:
        return None
    return recent[len(recent) - max_count] + window
