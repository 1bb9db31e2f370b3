"""The RateLimitStore contract, for every backend: CRUD, and `acquire` as an exact
sliding log of places (reservations), atomic across storage objects (processes)
sharing one database."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orch8.adapters.memory import MemoryStorage
from orch8.adapters.postgres import PostgresStorage
from orch8.adapters.sqlite import SqliteStorage
from orch8.application.ports.storage import Storage
from orch8.domain.errors import ValidationError
from orch8.domain.rate_limits import RateLimit
from tests.contract.builders import T0, at

US = timedelta(microseconds=1)
_keys = itertools.count()


def limit(
    key: str = "smtp",
    max_count: int = 3,
    window_seconds: float = 10.0,
    *,
    tenant_id: str = "acme",
    created: datetime = T0,
    updated: datetime | None = None,
) -> RateLimit:
    return RateLimit(
        tenant_id=tenant_id,
        key=key,
        max_count=max_count,
        window_seconds=window_seconds,
        created_at=created,
        updated_at=updated or created,
    )


def fresh_key() -> str:
    return f"k{next(_keys)}"


def assert_never_over(admitted: Sequence[datetime], max_count: int, window: timedelta) -> None:
    """No half-open interval of length `window` holds more than max_count admissions:
    sorted, any max_count + 1 consecutive ones span at least one window."""
    times = sorted(admitted)
    for first, last in zip(times, times[max_count:], strict=False):
        assert last - first >= window, (first, last, max_count, window)


async def admission_rows(storage: Storage) -> int:
    """How many admissions the backend keeps (to check pruning)."""
    if isinstance(storage, MemoryStorage):
        return sum(len(v) for v in storage.rate_limits._admitted.values())  # type: ignore[attr-defined]
    sql = "SELECT count(*) FROM rate_limit_admissions"
    if isinstance(storage, SqliteStorage):
        return int((await storage._db.read(sql))[0][0])
    assert isinstance(storage, PostgresStorage)
    return int((await storage._db.fetch(sql))[0][0])


# --- the limits themselves -------------------------------------------------------


async def test_upsert_get_list_delete(storage: Storage) -> None:
    store = storage.rate_limits
    a = await store.upsert(limit("smtp", 50, 1.0))
    assert a == limit("smtp", 50, 1.0)
    await store.upsert(limit("sms", 5, 0.25))
    await store.upsert(limit("smtp", 2, 60, tenant_id="other"))
    assert await store.get("acme", "smtp") == a
    assert await store.get("acme", "nope") is None
    assert await store.get("nobody", "smtp") is None
    assert [(x.tenant_id, x.key) for x in await store.list("acme")] == [
        ("acme", "sms"),
        ("acme", "smtp"),
    ]
    assert [(x.tenant_id, x.key) for x in await store.list(None)] == [
        ("acme", "sms"),
        ("acme", "smtp"),
        ("other", "smtp"),
    ]
    assert await store.list("nobody") == []
    assert await store.delete("acme", "smtp") is True
    assert await store.delete("acme", "smtp") is False
    assert await store.get("acme", "smtp") is None
    assert await store.get("other", "smtp") is not None


async def test_upsert_replaces_the_numbers_and_keeps_created_at(storage: Storage) -> None:
    store = storage.rate_limits
    await store.upsert(limit(max_count=3, window_seconds=10, created=T0))
    later = at(5)
    stored = await store.upsert(limit(max_count=7, window_seconds=0.5, created=later))
    assert stored == limit(max_count=7, window_seconds=0.5, created=T0, updated=later)
    assert await store.get("acme", "smtp") == stored


async def test_window_seconds_round_trips_exactly(storage: Storage) -> None:
    for n, seconds in enumerate((1 / 3, 0.1, 1e-6, 86_400.5, 7)):
        stored = await storage.rate_limits.upsert(limit(f"k{n}", 1, seconds))
        assert stored.window_seconds == float(seconds)
        assert (await storage.rate_limits.get("acme", f"k{n}")) == stored


@pytest.mark.parametrize(
    ("field", "overrides"),
    [
        ("max_count", {"max_count": 0}),
        ("max_count", {"max_count": -1}),
        ("max_count", {"max_count": 1.5}),
        ("max_count", {"max_count": True}),
        ("window_seconds", {"window_seconds": 0}),
        ("window_seconds", {"window_seconds": -2.0}),
        ("window_seconds", {"window_seconds": float("nan")}),
        ("window_seconds", {"window_seconds": float("inf")}),
        ("window_seconds", {"window_seconds": "1"}),
        ("key", {"key": ""}),
        ("key", {"key": "   "}),
        ("key", {"key": "x" * 256}),
        ("tenant_id", {"tenant_id": ""}),
        ("created_at", {"created": datetime(2030, 1, 1)}),  # naive on purpose
    ],
)
def test_a_bad_limit_names_its_field(field: str, overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as err:
        limit(**overrides)
    assert err.value.path == field


# --- acquire: places in the log -----------------------------------------------------
# With a window of 10 s the grace is 25 ms (a twentieth of the window, at most 25 ms),
# so places are spaced by 10.025 s.

G = timedelta(milliseconds=25)


async def place(
    storage: Storage, t: datetime, key: str = "smtp", *, held: datetime | None = None
) -> datetime | None:
    """The instant of the place given at `t` (None: the key has no limit)."""
    got = await storage.rate_limits.acquire("acme", key, t, held)
    if got is None:
        return None
    assert got.at >= t or (held is not None and got.at == held)
    assert timedelta(0) < got.deadline - got.at <= G
    return got.at


async def test_no_limit_gives_now_and_records_nothing(storage: Storage) -> None:
    for i in range(20):
        assert await storage.rate_limits.acquire("acme", "smtp", at(i * 0.001)) is None
    assert await admission_rows(storage) == 0
    # A limit stored afterwards starts with its whole capacity.
    await storage.rate_limits.upsert(limit(max_count=2))
    assert await place(storage, at(1)) == at(1)
    assert await place(storage, at(1)) == at(1)
    assert await place(storage, at(1)) == at(11) + G
    assert await admission_rows(storage) == 3


async def test_the_grace_is_a_twentieth_of_the_window_at_most_25_ms(storage: Storage) -> None:
    rl = storage.rate_limits
    for key, seconds, grace in (("a", 10, G), ("b", 0.2, timedelta(milliseconds=10))):
        await rl.upsert(limit(key, 1, seconds))
        first = await rl.acquire("acme", key, T0)
        assert first is not None
        assert (first.at, first.deadline, first.fresh) == (T0, T0 + grace, True)
        second = await rl.acquire("acme", key, T0)
        assert second is not None
        assert second.at == T0 + timedelta(seconds=seconds) + grace


async def test_limits_are_per_tenant_and_key(storage: Storage) -> None:
    await storage.rate_limits.upsert(limit("smtp", 1))
    await storage.rate_limits.upsert(limit("smtp", 1, tenant_id="other"))
    rl = storage.rate_limits
    assert (await rl.acquire("acme", "smtp", T0)).at == T0  # type: ignore[union-attr]
    assert (await rl.acquire("other", "smtp", T0)).at == T0  # type: ignore[union-attr]
    assert await rl.acquire("acme", "sms", T0) is None  # no limit
    assert (await rl.acquire("acme", "smtp", T0)).at == at(10) + G  # type: ignore[union-attr]
    assert (await rl.acquire("other", "smtp", T0)).at == at(10) + G  # type: ignore[union-attr]


async def test_a_full_window_gives_places_in_order_one_spacing_apart(storage: Storage) -> None:
    await storage.rate_limits.upsert(limit(max_count=3, window_seconds=10))
    for t in (0, 4, 9):
        assert await place(storage, at(t)) == at(t)
    # Full: each new place is the spacing after the max_count-th newest one, and
    # never before a place already given.
    assert await place(storage, at(9.5)) == at(10) + G
    assert await place(storage, at(9.6)) == at(14) + G
    assert await place(storage, at(9.7)) == at(19) + G
    assert await place(storage, at(9.8)) == at(20) + 2 * G
    # Much later, with room again: now.
    assert await place(storage, at(60)) == at(60)


async def test_a_held_place_is_kept_until_its_grace_runs_out(storage: Storage) -> None:
    rl = storage.rate_limits
    await rl.upsert(limit(max_count=1, window_seconds=10))
    assert await place(storage, T0) == T0
    reserved = await rl.acquire("acme", "smtp", at(1))
    assert reserved is not None and reserved.fresh and reserved.at == at(10) + G
    rows = await admission_rows(storage)
    # Asking again with the place held, early or within the grace: the same place,
    # nothing recorded.
    for t in (at(9), reserved.at, reserved.deadline):
        kept = await rl.acquire("acme", "smtp", t, reserved.at)
        assert kept == attrs.evolve(reserved, fresh=False)
    assert await admission_rows(storage) == rows
    # Past the grace the place is lost, and given back (it was never used): the
    # window has room again, so the new place is now.
    late = reserved.deadline + US
    again = await rl.acquire("acme", "smtp", late, reserved.at)
    assert again is not None and again.fresh
    assert again.at == late
    assert await admission_rows(storage) == rows
    # A place no longer in the log (pruned) is simply replaced.
    assert await place(storage, late, held=at(-60)) == late + timedelta(seconds=10) + G


async def test_acquire_many_gives_in_order_the_places_acquire_would(storage: Storage) -> None:
    rl = storage.rate_limits
    assert await rl.acquire_many("acme", "smtp", lambda: T0, [None, None]) is None  # no limit
    await rl.upsert(limit(max_count=2, window_seconds=10))
    first = await rl.acquire_many("acme", "smtp", lambda: T0, [None, None, None])
    assert first is not None
    assert [(p.at, p.fresh) for p in first] == [(T0, True), (T0, True), (at(10) + G, True)]
    # A held place still ahead is kept; a new use queues after it; a place held
    # since T0 has lapsed (1 s is past its grace): given back, and replaced.
    later = await rl.acquire_many("acme", "smtp", lambda: at(1), [first[2].at, None, T0])
    assert later is not None
    assert [(p.at, p.fresh) for p in later] == [
        (at(10) + G, False),
        (at(10) + G, True),
        (at(20) + 2 * G, True),
    ]
    assert all(p.deadline == p.at + G for p in [*first, *later])
    assert await admission_rows(storage) == 4


async def test_no_burst_across_a_window_boundary(storage: Storage) -> None:
    """A fixed window would admit 2 * max_count around its boundary; this never does."""
    await storage.rate_limits.upsert(limit(max_count=5, window_seconds=1))
    first = [at(0.9 + i * 0.01) for i in range(5)]
    for t in first:
        assert await place(storage, t) == t
    spacing = timedelta(seconds=1) + G
    for i, t in enumerate((1.0, 1.1, 1.5, 1.8999, 1.95)):
        assert await place(storage, at(t)) == first[i] + spacing


async def test_equal_instants_count_separately(storage: Storage) -> None:
    await storage.rate_limits.upsert(limit(max_count=3, window_seconds=1))
    results = [await place(storage, T0) for _ in range(5)]
    later = at(1) + G
    assert results == [T0, T0, T0, later, later]


async def test_lowering_the_limit_applies_to_places_already_given(storage: Storage) -> None:
    await storage.rate_limits.upsert(limit(max_count=5, window_seconds=10))
    for t in range(5):
        assert await place(storage, at(t)) == at(t)
    await storage.rate_limits.upsert(limit(max_count=2, window_seconds=10))
    # Five in the window, two allowed: the spacing after the second-newest (t=3).
    assert await place(storage, at(5)) == at(13) + G
    # Raising it again gives room at once, after the newest place.
    await storage.rate_limits.upsert(limit(max_count=10, window_seconds=10))
    assert await place(storage, at(5)) == at(13) + G
    assert await place(storage, at(14)) == at(14)


async def test_a_longer_window_counts_older_admissions(storage: Storage) -> None:
    await storage.rate_limits.upsert(limit(max_count=1, window_seconds=1))
    assert await place(storage, at(0)) == at(0)
    await storage.rate_limits.upsert(limit(max_count=1, window_seconds=1.5))
    assert await place(storage, at(1.2)) == at(1.5) + G


async def test_places_later_than_now_only_tighten(storage: Storage) -> None:
    """A caller whose clock lags sees the others' places as in its window, and is
    placed after them."""
    await storage.rate_limits.upsert(limit(max_count=2, window_seconds=1))
    assert await place(storage, at(10)) == at(10)
    assert await place(storage, at(9.5)) == at(10)
    assert await place(storage, at(9.6)) == at(11) + G
    assert await place(storage, at(10.2)) == at(11) + G


async def test_deleting_a_limit_drops_its_log(storage: Storage) -> None:
    rl = storage.rate_limits
    await rl.upsert(limit(max_count=1, window_seconds=60))
    assert await place(storage, T0) == T0
    reserved = await place(storage, T0)
    assert reserved == at(60) + G
    assert await rl.delete("acme", "smtp")
    assert await rl.acquire("acme", "smtp", T0) is None  # no limit: start now, unrecorded
    assert await rl.acquire("acme", "smtp", T0, reserved) is None  # a held place too
    assert await admission_rows(storage) == 0
    await rl.upsert(limit(max_count=1, window_seconds=60))
    assert await place(storage, T0) == T0  # a new limit starts empty


async def test_the_log_is_pruned_as_places_are_recorded(storage: Storage) -> None:
    rl = storage.rate_limits
    await rl.upsert(limit(max_count=10, window_seconds=1))
    t = T0
    places: list[datetime] = []
    for _ in range(300):  # 10 per second offered for 30 s, each one used
        t += timedelta(milliseconds=100)
        got = await rl.acquire("acme", "smtp", t)
        assert got is not None and got.at >= t
        places.append(got.at)
    assert_never_over(places, 10, timedelta(seconds=1) + G)
    # Kept: the places of the last two windows behind the last caller's now, and
    # those ahead of it; everything older was pruned.
    kept = sum(1 for a in places if a > t - timedelta(seconds=2))
    assert await admission_rows(storage) == kept
    assert kept <= 2 * 10 + 10


# --- the reservation property -------------------------------------------------------

gaps_ms = st.one_of(st.just(0), st.integers(0, 40), st.integers(0, 2_500))
# What a caller does with its place: start at its instant, start within the grace,
# come back too late (and ask again), or give it up.
uses = st.sampled_from(["on_time", "within_grace", "late", "abandon"])
scenarios = st.tuples(
    st.integers(1, 5),  # max_count
    st.sampled_from([1, 50, 333, 1000, 2500]),  # window, ms
    st.lists(st.tuples(gaps_ms, uses), min_size=1, max_size=40),
)


def model_place(
    log: Sequence[datetime], max_count: int, spacing: timedelta, now: datetime
) -> datetime:
    """The definition: the earliest instant at or after `now` and every place given
    at which fewer than max_count places lie in the `spacing` before it."""
    candidate = max([now, *log])
    while sum(1 for a in log if candidate - spacing < a <= candidate) >= max_count:
        candidate = min(a for a in log if a > candidate - spacing) + spacing
    return candidate


@settings(
    max_examples=60,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios)
async def test_uses_never_start_over_the_limit_in_any_window(
    storage: Storage, scenario: tuple[int, int, list[tuple[int, str]]]
) -> None:
    """Uses asking at generated instants (non-decreasing, ties allowed), each then
    starting on time, within its grace, too late (asking again with its place
    held, which gives it back), or never: every place agrees with the
    definition, no window of window + grace ever holds more than max_count
    places, and no window of the configured length more than max_count starts."""
    max_count, window_ms, steps = scenario
    key = fresh_key()
    window = timedelta(milliseconds=window_ms)
    stored = await storage.rate_limits.upsert(limit(key, max_count, window_ms / 1000))
    grace, spacing = stored.grace, stored.spacing
    log: list[datetime] = []
    starts: list[datetime] = []
    now = T0

    async def ask(t: datetime, held: datetime | None = None) -> datetime:
        got = await storage.rate_limits.acquire("acme", key, t, held)
        assert got is not None
        if held is not None and t <= held + grace:
            assert (got.at, got.fresh) == (held, False)
        else:
            if held is not None:  # lapsed: given back
                log.remove(held)
            assert got.fresh
            assert got.at == model_place(log, max_count, spacing, t), (t, log)
            log.append(got.at)
        assert got.deadline == got.at + grace
        assert_never_over(log, max_count, spacing)
        return got.at

    for gap, use in steps:
        now += timedelta(milliseconds=gap)
        reserved = await ask(now)
        if use == "on_time":
            starts.append(await ask(reserved, reserved))
        elif use == "within_grace":
            assert await ask(reserved + grace, reserved) == reserved
            starts.append(reserved + grace)
        elif use == "late":
            again = await ask(reserved + grace + US, reserved)
            assert again > reserved + grace
            starts.append(again)
    assert_never_over(log, max_count, spacing)
    assert_never_over(starts, max_count, window)


# --- concurrency: two storage objects (as two processes) on one database ----------


async def test_concurrent_acquires_give_every_place_once(
    two_stores: tuple[Storage, Storage],
) -> None:
    """300 callers at once over two stores, 25 per minute: 25 places at once, then
    25 in each following spacing, none lost, none doubled up over the limit."""
    a, b = two_stores
    stored = await a.rate_limits.upsert(limit(max_count=25, window_seconds=60))
    nows = [at(i * 0.001) for i in range(300)]
    random.Random(7).shuffle(nows)
    stores = [a, b] * 150
    results = await asyncio.gather(
        *(s.rate_limits.acquire("acme", "smtp", t) for s, t in zip(stores, nows, strict=True))
    )
    places = sorted(r.at for r in results if r is not None)
    assert len(places) == 300
    assert all(r is not None and r.at >= t for r, t in zip(results, nows, strict=True))
    assert_never_over(places, 25, stored.spacing)
    # Dense: the k-th batch of 25 sits within the spacing after the previous one.
    assert places[-1] - places[0] < 12 * stored.spacing
    assert await admission_rows(a) == 300


async def test_concurrent_callers_on_a_real_clock_never_start_over_the_limit(
    two_stores: tuple[Storage, Storage],
) -> None:
    """Sixteen callers over two stores read the clock, ask for a place, sleep until
    it, and start if it has not lapsed (else ask again, holding it), for 1.2 s,
    against 10 per 0.2 s: no 0.2 s ever holds more than 10 starts."""
    a, b = two_stores
    max_count, window = 10, timedelta(milliseconds=200)
    await a.rate_limits.upsert(limit(max_count=max_count, window_seconds=0.2))
    started: list[datetime] = []
    deadline = time.monotonic() + 1.2

    async def caller(store: Storage) -> None:
        held: datetime | None = None
        while time.monotonic() < deadline:
            got = await store.rate_limits.acquire("acme", "smtp", datetime.now(UTC), held)
            assert got is not None
            await asyncio.sleep(max(0.0, (got.at - datetime.now(UTC)).total_seconds()))
            now = datetime.now(UTC)
            if now < got.at:
                held = got.at  # woke a hair early: the place is still ours
                continue
            if got.lapsed(now):
                held = got.at  # too late: asking again with it gives a new one
                continue
            started.append(now)
            held = None
            await asyncio.sleep(0.001)

    await asyncio.gather(*(caller(s) for s in [a, b] * 8))
    assert_never_over(started, max_count, window)
    # ~6 windows' worth: the limiter is not starving anyone either.
    assert len(started) >= 4 * max_count, len(started)


async def test_concurrent_first_uses_of_many_keys_place_max_count_at_once(
    two_stores: tuple[Storage, Storage],
) -> None:
    """Many keys reaching their limit at once: each crossing is a chance for two
    callers to both see room (what a missing lock, or a log read from a
    snapshot older than the lock, would let through)."""
    a, b = two_stores
    keys = [f"burst{n}" for n in range(300)]
    for key in keys:
        await a.rate_limits.upsert(limit(key, max_count=2, window_seconds=60))
    calls = [(key, store) for key in keys for store in (a, b) * 3]
    random.Random(11).shuffle(calls)
    results = await asyncio.gather(*(s.rate_limits.acquire("acme", k, T0) for k, s in calls))
    now_places = Counter(
        key for (key, _), r in zip(calls, results, strict=True) if r is not None and r.at == T0
    )
    assert set(now_places) == set(keys)
    assert set(now_places.values()) == {2}
