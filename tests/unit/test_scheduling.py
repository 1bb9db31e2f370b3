"""Backoff and delay arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from orch8.domain.scheduling.backoff import backoff
from orch8.domain.scheduling.delay import delay_target, jitter_offset_ms
from orch8.domain.sequence import DelaySpec, RetryPolicy


def test_backoff_follows_the_formula_and_caps() -> None:
    policy = RetryPolicy(
        max_attempts=10, initial_backoff_ms=100, max_backoff_ms=1000, backoff_multiplier=2.0
    )
    assert [backoff(policy, n) for n in range(6)] == [
        timedelta(milliseconds=m) for m in (100, 200, 400, 800, 1000, 1000)
    ]


def test_backoff_never_overflows() -> None:
    policy = RetryPolicy(
        max_attempts=10, initial_backoff_ms=1, max_backoff_ms=5, backoff_multiplier=1e300
    )
    assert backoff(policy, 10_000) == timedelta(milliseconds=5)


@given(st.integers(0, 10_000_000), st.text(max_size=20))
def test_jitter_stays_in_range_and_is_reproducible(jitter: int, seed: str) -> None:
    offset = jitter_offset_ms(jitter, seed)
    assert -jitter <= offset <= jitter
    assert offset == jitter_offset_ms(jitter, seed)


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    st.integers(0, 30 * 86_400_000),
    st.lists(
        st.dates(min_value=datetime(2000, 1, 1).date(), max_value=datetime(2100, 3, 1).date()),
        max_size=20,
    ),
)
def test_business_day_delays_never_land_on_weekends_or_holidays(now, duration, holidays) -> None:
    spec = DelaySpec(
        duration_ms=duration,
        business_days_only=True,
        holidays=tuple(h.isoformat() for h in holidays),
    )
    target = delay_target(spec, now, seed="x")
    assert target >= now + timedelta(milliseconds=duration)
    assert target.weekday() < 5
    assert target.date() not in set(holidays)


def test_holidays_from_context_config_are_merged() -> None:
    friday = datetime(2026, 5, 22, 10, tzinfo=UTC)
    spec = DelaySpec(duration_ms=0, business_days_only=True)
    assert (
        delay_target(spec, friday, seed="s", extra_holidays=["2026-05-22", "2026-05-25"])
        .date()
        .isoformat()
        == "2026-05-26"
    )
