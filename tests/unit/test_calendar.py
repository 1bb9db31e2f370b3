"""Send windows, local wall-clock delays and DST, with a simulated clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orch8.domain.scheduling.delay import delay_target
from orch8.domain.scheduling.local_time import to_instant
from orch8.domain.scheduling.window import is_open, next_opening
from orch8.domain.sequence import DelaySpec, SendWindow
from tests.unit.sim import sequence, simulate

ZONES = ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe"]
instants = st.datetimes(
    min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
)
windows = st.builds(
    SendWindow,
    start_hour=st.integers(0, 23),
    end_hour=st.integers(0, 23),
    days=st.lists(st.integers(0, 6), max_size=7, unique=True).map(tuple),
).filter(lambda w: w.start_hour != w.end_hour)


@settings(max_examples=300)
@given(windows, instants, st.sampled_from(ZONES))
def test_the_next_opening_is_open_and_nothing_earlier_is(window, now, tz_name) -> None:
    tz = ZoneInfo(tz_name)
    opening = next_opening(window, now, tz)
    if opening is None:
        assert is_open(window, now, tz)
        return
    assert opening > now
    assert is_open(window, opening, tz)
    # nothing open in between (checked on a 15-minute grid, the finest DST shift is 30)
    probe = now + timedelta(minutes=15)
    while probe < opening - timedelta(minutes=1):
        assert not is_open(window, probe, tz), (probe, opening)
        probe += timedelta(minutes=15)


def transitions(tz_name: str, year: int) -> list[datetime]:
    """Every UTC instant in `year` where the zone's offset changes (to the minute)."""
    tz = ZoneInfo(tz_name)
    found = []
    at = datetime(year, 1, 1, tzinfo=UTC)
    step = timedelta(hours=1)
    while at.year == year:
        if (at + step).astimezone(tz).utcoffset() != at.astimezone(tz).utcoffset():
            low, high = at, at + step
            while high - low > timedelta(minutes=1):
                mid = low + (high - low) / 2
                if mid.astimezone(tz).utcoffset() == low.astimezone(tz).utcoffset():
                    low = mid
                else:
                    high = mid
            found.append(high)
        at += step
    return found


@pytest.mark.parametrize("tz_name", ZONES)
def test_every_dst_transition_of_a_year(tz_name: str) -> None:
    tz = ZoneInfo(tz_name)
    found = transitions(tz_name, 2026)
    assert len(found) == 2
    for change in found:
        before = (change - timedelta(minutes=1)).astimezone(tz)
        after = change.astimezone(tz)
        shift = after.utcoffset() - before.utcoffset()  # type: ignore[operator]
        wall_before = (before + timedelta(minutes=1)).replace(tzinfo=None)
        if shift > timedelta(0):
            # spring forward: the skipped wall-clock times map to the end of the gap
            for minutes in range(0, int(shift.total_seconds() // 60), 10):
                missing = wall_before + timedelta(minutes=minutes)
                assert to_instant(missing, tz) == change
        else:
            # fall back: a repeated wall-clock time means the earlier instant
            repeated = after.replace(tzinfo=None)
            first = to_instant(repeated, tz)
            assert first < change
            assert first.astimezone(tz).replace(tzinfo=None) == repeated


@settings(max_examples=200)
@given(instants, st.sampled_from(ZONES), st.integers(0, 23), st.integers(0, 59), st.integers(0, 10))
def test_fire_at_local_lands_on_that_wall_clock_time_or_just_after_a_gap(
    now, tz_name, hour, minute, days_ahead
) -> None:
    tz = ZoneInfo(tz_name)
    local = (now.astimezone(tz) + timedelta(days=days_ahead)).replace(
        hour=hour, minute=minute, second=0, microsecond=0, tzinfo=None
    )
    target = delay_target(
        DelaySpec(fire_at_local=local.isoformat()), now, seed="s", timezone=tz_name
    )
    wall = target.astimezone(tz).replace(tzinfo=None)
    assert wall >= local
    assert wall - local <= timedelta(hours=1)  # equal, or the end of a DST gap


@settings(max_examples=150)
@given(windows, st.integers(0, 3 * 86_400_000), st.sampled_from(ZONES))
def test_a_step_never_runs_before_its_delay_or_outside_its_window(
    window, delay_ms, tz_name
) -> None:
    blocks = [
        {
            "type": "step",
            "id": "send",
            "handler": "noop",
            "delay": {"duration": delay_ms},
            "send_window": {
                "start_hour": window.start_hour,
                "end_hour": window.end_hour,
                "days": list(window.days),
            },
        }
    ]
    result = simulate(sequence(blocks), timezone=tz_name)
    node = result.snapshot.nodes["send"]
    assert node.started_at is not None
    from tests.unit.sim import T0

    assert node.started_at >= T0 + timedelta(milliseconds=delay_ms)
    assert is_open(window, node.started_at, ZoneInfo(tz_name))


def test_a_window_that_wraps_midnight() -> None:
    night = SendWindow(start_hour=22, end_hour=6, days=(0,))  # Monday night into Tuesday
    tz = ZoneInfo("Europe/Berlin")
    tuesday_3am = datetime(2026, 3, 3, 3, tzinfo=tz)
    assert is_open(night, tuesday_3am, tz)
    assert not is_open(night, datetime(2026, 3, 3, 23, tzinfo=tz), tz)  # Tuesday night: closed
    assert next_opening(night, datetime(2026, 3, 3, 7, tzinfo=tz), tz) == datetime(
        2026, 3, 9, 22, tzinfo=tz
    )
