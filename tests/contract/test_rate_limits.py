"""The RateLimitStore contract, for every backend: CRUD, and `acquire` as an exact
sliding log, atomic across storage objects (processes) sharing one database."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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
from tests.pg_server import fresh_schema

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


def model_admits(
    admitted: Sequence[datetime], max_count: int, window: timedelta, t: datetime
) -> bool:
    """The definition, by brute force: fewer than max_count admissions in (t - window, t]."""
    return sum(1 for a in admitted if t - window < a <= t) < max_count


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


# --- acquire ---------------------------------------------------------------------


async def test_no_limit_admits_everything_and_records_nothing(storage: Storage) -> None:
    for i in range(20):
        assert await storage.rate_limits.acquire("acme", "smtp", at(i * 0.001)) is None
    assert await admission_rows(storage) == 0
    # A limit stored afterwards starts with its whole capacity.
    await storage.rate_limits.upsert(limit(max_count=2))
    assert await storage.rate_limits.acquire("acme", "smtp", at(1)) is None
    assert await storage.rate_limits.acquire("acme", "smtp", at(1)) is None
    assert await storage.rate_limits.acquire("acme", "smtp", at(1)) == at(11)


async def test_limits_are_per_tenant_and_key(storage: Storage) -> None:
    await storage.rate_limits.upsert(limit("smtp", 1))
    await storage.rate_limits.upsert(limit("smtp", 1, tenant_id="other"))
    assert await storage.rate_limits.acquire("acme", "smtp", T0) is None
    assert await storage.rate_limits.acquire("other", "smtp", T0) is None
    assert await storage.rate_limits.acquire("acme", "sms", T0) is None  # no limit
    assert await storage.rate_limits.acquire("acme", "smtp", T0) == at(10)
    assert await storage.rate_limits.acquire("other", "smtp", T0) == at(10)


async def test_a_full_window_refuses_until_its_oldest_admission_leaves(storage: Storage) -> None:
    rl = storage.rate_limits
    await rl.upsert(limit(max_count=3, window_seconds=10))
    for t in (0, 4, 9):
        assert await rl.acquire("acme", "smtp", at(t)) is None
    assert await rl.acquire("acme", "smtp", at(9.5)) == at(10)
    assert await rl.acquire("acme", "smtp", at(10) - US) == at(10)  # refusals record nothing
    assert await rl.acquire("acme", "smtp", at(10)) is None  # (0 left: window is (0, 10])
    assert await rl.acquire("acme", "smtp", at(10)) == at(14)
    assert await rl.acquire("acme", "smtp", at(14)) is None
    assert await rl.acquire("acme", "smtp", at(14.5)) == at(19)


async def test_no_burst_across_a_window_boundary(storage: Storage) -> None:
    """A fixed window would admit 2 * max_count around its boundary; this never does."""
    rl = storage.rate_limits
    await rl.upsert(limit(max_count=5, window_seconds=1))
    admitted = [at(0.9 + i * 0.01) for i in range(5)]
    for t in admitted:
        assert await rl.acquire("acme", "smtp", t) is None
    for t in (1.0, 1.1, 1.5, 1.8999):
        assert await rl.acquire("acme", "smtp", at(t)) == at(1.9)
    assert await rl.acquire("acme", "smtp", at(1.9)) is None


async def test_equal_instants_count_separately(storage: Storage) -> None:
    await storage.rate_limits.upsert(limit(max_count=3, window_seconds=1))
    results = [await storage.rate_limits.acquire("acme", "smtp", T0) for _ in range(5)]
    assert results == [None, None, None, at(1), at(1)]


async def test_lowering_the_limit_applies_to_admissions_already_made(storage: Storage) -> None:
    rl = storage.rate_limits
    await rl.upsert(limit(max_count=5, window_seconds=10))
    for t in range(5):
        assert await rl.acquire("acme", "smtp", at(t)) is None
    await rl.upsert(limit(max_count=2, window_seconds=10))
    # Five in the window, two allowed: admitted once only one is left in it, when
    # the second-newest (t=3) leaves.
    assert await rl.acquire("acme", "smtp", at(5)) == at(13)
    assert await rl.acquire("acme", "smtp", at(13)) is None
    # Raising it again admits at once.
    await rl.upsert(limit(max_count=10, window_seconds=10))
    assert await rl.acquire("acme", "smtp", at(13)) is None


async def test_a_longer_window_counts_older_admissions(storage: Storage) -> None:
    rl = storage.rate_limits
    await rl.upsert(limit(max_count=1, window_seconds=1))
    assert await rl.acquire("acme", "smtp", at(0)) is None
    await rl.upsert(limit(max_count=1, window_seconds=1.5))
    assert await rl.acquire("acme", "smtp", at(1.2)) == at(1.5)


async def test_admissions_later_than_now_count_skew_only_tightens(storage: Storage) -> None:
    rl = storage.rate_limits
    await rl.upsert(limit(max_count=2, window_seconds=1))
    assert await rl.acquire("acme", "smtp", at(10)) is None
    # A caller whose clock lags by half a second sees that admission as in its window.
    assert await rl.acquire("acme", "smtp", at(9.5)) is None
    assert await rl.acquire("acme", "smtp", at(9.6)) == at(10.5)
    assert await rl.acquire("acme", "smtp", at(10.2)) == at(10.5)
    assert_never_over([at(10), at(9.5)], 2, timedelta(seconds=1))


async def test_deleting_a_limit_drops_its_log(storage: Storage) -> None:
    rl = storage.rate_limits
    await rl.upsert(limit(max_count=1, window_seconds=60))
    assert await rl.acquire("acme", "smtp", T0) is None
    assert await rl.delete("acme", "smtp")
    assert await rl.acquire("acme", "smtp", T0) is None  # no limit: admitted, not recorded
    assert await admission_rows(storage) == 0
    await rl.upsert(limit(max_count=1, window_seconds=60))
    assert await rl.acquire("acme", "smtp", T0) is None  # a new limit starts empty


async def test_the_log_is_pruned_as_admissions_are_recorded(storage: Storage) -> None:
    rl = storage.rate_limits
    await rl.upsert(limit(max_count=10, window_seconds=1))
    t = T0
    admitted: list[datetime] = []
    for _ in range(600):  # 20 per second offered for 30 s
        t += timedelta(milliseconds=50)
        if await rl.acquire("acme", "smtp", t) is None:
            admitted.append(t)
    assert len(admitted) == 300
    assert_never_over(admitted, 10, timedelta(seconds=1))
    # Only about two windows of admissions remain.
    assert await admission_rows(storage) <= 2 * 10


# --- the sliding-log property -----------------------------------------------------

gaps_ms = st.one_of(st.just(0), st.integers(0, 40), st.integers(0, 2_500))
scenarios = st.tuples(
    st.integers(1, 5),  # max_count
    st.sampled_from([1, 50, 333, 1000, 2500]),  # window, ms
    st.lists(st.tuples(gaps_ms, st.booleans()), min_size=1, max_size=40),
)


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios)
async def test_admissions_never_exceed_the_limit_in_any_window(
    storage: Storage, scenario: tuple[int, int, list[tuple[int, bool]]]
) -> None:
    """Uses at generated instants (non-decreasing, ties allowed), some of them retried at
    the instant their refusal named: every answer agrees with the definition, no
    window ever holds more than max_count, and a refused caller is admitted exactly
    at the instant it was given (not a microsecond earlier)."""
    max_count, window_ms, steps = scenario
    key = fresh_key()
    window = timedelta(milliseconds=window_ms)
    await storage.rate_limits.upsert(limit(key, max_count, window_ms / 1000))
    admitted: list[datetime] = []
    now = T0

    async def acquire(t: datetime) -> datetime | None:
        expected = model_admits(admitted, max_count, window, t)
        got = await storage.rate_limits.acquire("acme", key, t)
        assert (got is None) == expected, (t, got, admitted)
        if got is None:
            admitted.append(t)
        return got

    for gap, retry in steps:
        now += timedelta(milliseconds=gap)
        refused_until = await acquire(now)
        if refused_until is None:
            continue
        assert refused_until > now
        assert model_admits(admitted, max_count, window, refused_until)
        assert not model_admits(admitted, max_count, window, refused_until - US)
        assert await acquire(refused_until - US) == refused_until
        if retry:
            now = refused_until
            assert await acquire(now) is None
    assert_never_over(admitted, max_count, window)


# --- concurrency: two storage objects (as two processes) on one database ----------


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def two_stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Storage, Storage]]:
    if request.param == "memory":
        store: Storage = MemoryStorage()
        yield store, store
        return
    async with AsyncExitStack() as stack:
        if request.param == "sqlite":
            path = str(tmp_path / "shared.db")
            pair: tuple[Storage, Storage] = (SqliteStorage(path), SqliteStorage(path))
        else:
            server = request.getfixturevalue("postgres_url")
            url = await stack.enter_async_context(fresh_schema(server))
            pair = (PostgresStorage(url), PostgresStorage(url))
        for store in pair:
            stack.push_async_callback(store.close)
            await store.migrate()
        yield pair


async def test_concurrent_acquires_admit_exactly_max_count(
    two_stores: tuple[Storage, Storage],
) -> None:
    a, b = two_stores
    await a.rate_limits.upsert(limit(max_count=25, window_seconds=60))
    nows = [at(i * 0.001) for i in range(300)]
    random.Random(7).shuffle(nows)
    stores = [a, b] * 150
    results = await asyncio.gather(
        *(s.rate_limits.acquire("acme", "smtp", t) for s, t in zip(stores, nows, strict=True))
    )
    assert sum(r is None for r in results) == 25
    assert all(r is None or r > t for r, t in zip(results, nows, strict=True))


async def test_concurrent_callers_on_a_real_clock_never_exceed_the_limit(
    two_stores: tuple[Storage, Storage],
) -> None:
    """Sixteen callers over two stores read the clock, acquire, and sleep until the
    instant a refusal names, for 1.2 s, against 10 per 0.2 s."""
    a, b = two_stores
    max_count, window = 10, timedelta(milliseconds=200)
    await a.rate_limits.upsert(limit(max_count=max_count, window_seconds=0.2))
    admitted: list[datetime] = []
    deadline = time.monotonic() + 1.2

    async def caller(store: Storage) -> None:
        while time.monotonic() < deadline:
            now = datetime.now(UTC)
            retry_at = await store.rate_limits.acquire("acme", "smtp", now)
            if retry_at is None:
                admitted.append(now)
                await asyncio.sleep(0.001)
            else:
                await asyncio.sleep(max(0.0, (retry_at - datetime.now(UTC)).total_seconds()))

    await asyncio.gather(*(caller(s) for s in [a, b] * 8))
    assert_never_over(admitted, max_count, window)
    # ~6 windows' worth: the limiter is not starving anyone either.
    assert len(admitted) >= 4 * max_count, len(admitted)


async def test_concurrent_first_uses_of_many_keys_admit_exactly_max_count(
    two_stores: tuple[Storage, Storage],
) -> None:
    """Many keys reaching their limit at once: each crossing is a chance for two
    callers to both see room (what a missing lock, or a count read from a
    snapshot older than the lock, would let through)."""
    a, b = two_stores
    keys = [f"burst{n}" for n in range(300)]
    for key in keys:
        await a.rate_limits.upsert(limit(key, max_count=2, window_seconds=60))
    calls = [(key, store) for key in keys for store in (a, b) * 3]
    random.Random(11).shuffle(calls)
    results = await asyncio.gather(*(s.rate_limits.acquire("acme", k, T0) for k, s in calls))
    admitted = Counter(key for (key, _), r in zip(calls, results, strict=True) if r is None)
    assert set(admitted) == set(keys)
    assert set(admitted.values()) == {2}
