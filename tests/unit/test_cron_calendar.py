"""The cron calendar: expressions, timezones, and DST, checked against croniter itself.

The reference is croniter's own timezone-aware iteration. orch8 differs from
it on purpose in two places, both stated by the DST rules:

* in a fall-back fold croniter fires a repeated wall time twice; orch8 once,
  at the earlier instant (the reference drops croniter's second one);
* for some expressions croniter drops a wall time that falls in a
  spring-forward gap; orch8 fires it at the first instant after the gap (the
  transition), so orch8 may have extra fires, each exactly at a transition,
  each standing for a matching wall time inside the gap.

Everything else must agree, instant for instant, around every DST change of
two years in three zones (America/New_York, Europe/Berlin, and
Australia/Lord_Howe, whose clocks move by 30 minutes).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from orch8.adapters.cron import CroniterCalendar
from orch8.domain.errors import ValidationError

CAL = CroniterCalendar()
ZONES = ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe"]
EXPRESSIONS = [  # (expression, hours either side of a transition to compare)
    ("30 2 * * *", 50),  # daily, inside the gap where one exists
    ("30 1 * * *", 50),  # daily, inside the fold (NY, Berlin)
    ("45 1 * * *", 50),  # Lord Howe's fold is 01:30-02:00
    ("15 2 * * *", 50),  # Lord Howe's gap is 02:00-02:30
    ("0 5 2 * * SUN *", 200),  # 7 fields, weekly
    ("0 * * * *", 26),
    ("0 0,15,30,45 1-3 * * * *", 26),  # 7 fields
    ("0 30 * * * *", 26),  # 6 fields: croniter drops the gap occurrence here
    ("*/15 * * * *", 26),
    ("* * * * *", 6),
    ("*/20 * * * * *", 2),  # every 20 s
]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def transitions(zone: str, year: int) -> list[datetime]:
    """The UTC instants at which `zone` changes its offset during `year`."""
    tz = ZoneInfo(zone)
    found = []
    t = utc(year, 1, 1)
    prev = t.astimezone(tz).utcoffset()
    while t.year == year:
        step = t + timedelta(minutes=30)
        offset = step.astimezone(tz).utcoffset()
        if offset != prev:
            lo, hi = t, step  # narrow to the second
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                if mid.astimezone(tz).utcoffset() == prev:
                    lo = mid
                else:
                    hi = mid
            found.append(hi)
            prev = offset
        t = step
    return found


def croniter_fires(expr: str, zone: str, after: datetime, until: datetime) -> list[datetime]:
    """croniter's aware iteration, minus the second instant of a repeated wall time."""
    tz = ZoneInfo(zone)
    walk = croniter(expr, after.astimezone(tz), ret_type=datetime, second_at_beginning=True)
    found: list[datetime] = []
    while True:
        fire = walk.get_next(datetime)
        if fire.astimezone(UTC) >= until:
            return found
        if fire.fold == 1 and fire.replace(fold=0).utcoffset() != fire.utcoffset():
            continue  # the repeated pass of a fold: orch8 fires the earlier one only
        found.append(fire.astimezone(UTC))


def orch8_fires(expr: str, zone: str, after: datetime, until: datetime) -> list[datetime]:
    return [t for t in CAL.next_fires(expr, zone, after, 1000) if t < until]


def gap_has_match(expr: str, zone: str, transition: datetime) -> bool:
    """Whether `expr` matches a wall time that does not exist at `transition`."""
    tz = ZoneInfo(zone)
    before = (transition - timedelta(microseconds=1)).astimezone(tz).replace(tzinfo=None)
    after = transition.astimezone(tz).replace(tzinfo=None)
    if after <= before:
        return False  # a fold, not a gap
    walk = croniter(expr, before, ret_type=datetime, second_at_beginning=True)
    return bool(walk.get_next(datetime) < after)


CASES = [
    (zone, expr, hours, transition)
    for zone in ZONES
    for year in (2025, 2026)
    for transition in transitions(zone, year)
    for expr, hours in EXPRESSIONS
]


@pytest.mark.parametrize(
    ("zone", "expr", "hours", "transition"),
    CASES,
    ids=[f"{z}-{t:%Y%m%d}-{e}" for z, e, _, t in CASES],
)
def test_next_fires_match_croniter_across_every_dst_change(
    zone: str, expr: str, hours: int, transition: datetime
) -> None:
    after = transition - timedelta(hours=hours)
    until = transition + timedelta(hours=hours)
    ours = orch8_fires(expr, zone, after, until)
    assert len(ours) < 1000, "the window must fit in one call"
    theirs = croniter_fires(expr, zone, after, until)
    assert ours == sorted(set(ours)), "strictly increasing"
    assert set(theirs) <= set(ours), sorted(set(theirs) - set(ours))[:3]
    extra = set(ours) - set(theirs)
    assert extra <= {transition}, sorted(extra)[:3]
    if extra:
        assert gap_has_match(expr, zone, transition)
    assert any(t < transition for t in ours) and any(t > transition for t in ours)


def test_there_are_two_transitions_a_year_in_each_zone() -> None:
    for zone in ZONES:
        assert len(transitions(zone, 2026)) == 2, zone


@pytest.mark.parametrize(
    ("zone", "expr", "after", "expected"),
    [
        # New York springs forward 2026-03-08 02:00 EST -> 03:00 EDT (07:00 UTC).
        ("America/New_York", "30 2 * * *", utc(2026, 3, 7, 12), [utc(2026, 3, 8, 7)]),
        # ... and falls back 2026-11-01 02:00 EDT -> 01:00 EST: 01:30 happens twice.
        (
            "America/New_York",
            "30 1 * * *",
            utc(2026, 10, 31, 12),
            [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)],
        ),
        # Berlin springs forward 2026-03-29 02:00 CET -> 03:00 CEST (01:00 UTC).
        ("Europe/Berlin", "0 30 2 * * * *", utc(2026, 3, 28, 12), [utc(2026, 3, 29, 1)]),
        # Lord Howe: 2026-10-04 02:00 -> 02:30 (+10:30 -> +11), at 15:30 UTC the day before.
        ("Australia/Lord_Howe", "15 2 * * *", utc(2026, 10, 3, 0), [utc(2026, 10, 3, 15, 30)]),
        # ... and 2026-04-05 02:00 -> 01:30 (+11 -> +10:30): 01:45 happens twice.
        (
            "Australia/Lord_Howe",
            "45 1 * * *",
            utc(2026, 4, 4, 0),
            [utc(2026, 4, 4, 14, 45), utc(2026, 4, 5, 15, 15)],
        ),
    ],
)
def test_dst_rules_by_example(
    zone: str, expr: str, after: datetime, expected: list[datetime]
) -> None:
    assert CAL.next_fires(expr, zone, after, len(expected)) == expected


def test_every_minute_across_a_gap_fires_once_at_the_transition() -> None:
    fires = CAL.next_fires("* * * * *", "America/New_York", utc(2026, 3, 8, 6, 58), 3)
    assert fires == [utc(2026, 3, 8, 6, 59), utc(2026, 3, 8, 7, 0), utc(2026, 3, 8, 7, 1)]


def test_every_minute_across_a_fold_skips_the_repeated_hour() -> None:
    # 01:00-01:59 EDT (05:00-05:59 UTC) fire; the repeated 01:xx EST hour does not.
    fires = CAL.next_fires("*/30 * * * *", "America/New_York", utc(2026, 11, 1, 4, 59), 4)
    assert fires == [
        utc(2026, 11, 1, 5),
        utc(2026, 11, 1, 5, 30),
        utc(2026, 11, 1, 7),  # 02:00 EST
        utc(2026, 11, 1, 7, 30),
    ]


def test_starting_inside_the_repeated_hour_fires_nothing_from_it() -> None:
    after = utc(2026, 11, 1, 6, 10)  # 01:10 EST, the second pass
    assert CAL.next_fires("*/20 * * * *", "America/New_York", after, 1) == [utc(2026, 11, 1, 7)]


def test_field_counts() -> None:
    after = utc(2026, 5, 5, 10, 0, 0)
    assert CAL.next_fires("*/10 * * * *", "UTC", after, 2) == [
        utc(2026, 5, 5, 10, 10),
        utc(2026, 5, 5, 10, 20),
    ]
    assert CAL.next_fires("* * * * * *", "UTC", after, 2) == [
        utc(2026, 5, 5, 10, 0, 1),
        utc(2026, 5, 5, 10, 0, 2),
    ]
    assert CAL.next_fires("30 0 9 1 1 * 2030", "UTC", after, 3) == [utc(2030, 1, 1, 9, 0, 30)]
    assert CAL.next_fires("0 0 9 * * MON-FRI *", "UTC", utc(2026, 5, 8, 10), 1) == [
        utc(2026, 5, 11, 9)  # Friday 10:00 -> Monday 09:00
    ]


def test_results_are_strictly_after_and_utc() -> None:
    after = utc(2026, 5, 5, 10, 0, 0)
    fires = CAL.next_fires("*/5 * * * *", "Asia/Kolkata", after, 3)
    assert all(t.tzinfo is UTC and t > after for t in fires)
    assert fires[0] == utc(2026, 5, 5, 10, 0) + timedelta(minutes=5)
    assert CAL.next_fires("*/5 * * * *", "UTC", after, 0) == []


def test_a_year_in_the_past_has_no_more_fires() -> None:
    assert CAL.next_fires("0 0 0 1 1 * 2020", "UTC", utc(2026, 1, 1), 5) == []


@pytest.mark.parametrize(
    "expr",
    [
        "",
        "   ",
        "not a cron",
        "* * * *",
        "* * * * * * * *",
        "60 * * * *",
        "0 99 * * * * *",
        "banana * * * * * *",
        "*/0 * * * *",
        "0 0 30 2 *",  # February 30th never comes
        "0 0 0 1 1 * 2150",
    ],
)
def test_invalid_expressions_name_cron_expr(expr: str) -> None:
    with pytest.raises(ValidationError) as info:
        CAL.validate(expr)
    assert info.value.path == "cron_expr"
    with pytest.raises(ValidationError) as info:
        CAL.next_fires(expr, "UTC", utc(2026, 1, 1), 1)
    assert info.value.path == "cron_expr"


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", "../../etc/passwd", "UTC+3"])
def test_unknown_timezones_name_timezone(zone: str) -> None:
    with pytest.raises(ValidationError) as info:
        CAL.next_fires("* * * * *", zone, utc(2026, 1, 1), 1)
    assert info.value.path == "timezone"


def test_naive_after_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        CAL.next_fires("* * * * *", "UTC", datetime(2026, 1, 1), 1)
