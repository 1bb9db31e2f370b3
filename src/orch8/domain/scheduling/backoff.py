"""Retry backoff, as the spec defines it: min(initial * multiplier^n, max)."""

from __future__ import annotations

from datetime import timedelta

from orch8.domain.sequence import RetryPolicy

_MAX_EXPONENT = 63


def backoff(policy: RetryPolicy, retry_number: int) -> timedelta:
    """The wait before retry `retry_number` (0 for the first retry)."""
    exponent = min(max(retry_number, 0), _MAX_EXPONENT)
    try:
        millis = policy.initial_backoff_ms * policy.backoff_multiplier**exponent
    except OverflowError:
        millis = float(policy.max_backoff_ms)
    return timedelta(milliseconds=min(millis, policy.max_backoff_ms))
