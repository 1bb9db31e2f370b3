"""Steps over their rate limit, in the runner: deferred to their place, started in it,
counted once, and given back when missed (memory store, simulated clock)."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orch8.application.engine.places import PlaceQueue
from orch8.application.engine.runner import RESERVATION_LEAD
from orch8.application.ports.handlers import StepCall
from orch8.domain.instance import InstanceState
from orch8.domain.rate_limits import RateLimit
from tests.unit.fakes import FakeClock
from tests.unit.test_engine import Harness, step

WINDOW = timedelta(seconds=10)
GRACE = timedelta(milliseconds=25)


class Limited(Harness):
    def __init__(self, clock: FakeClock | None = None) -> None:
        super().__init__(clock)
        self.starts: list[tuple[str, datetime]] = []
        self.registry.register("send", self._send)

    async def _send(self, call: StepCall) -> Any:
        self.starts.append((call.instance_id, self.clock.now()))
        return {}

    async def limit(self, max_count: int) -> None:
        now = self.clock.now()
        await self.storage.rate_limits.upsert(
            RateLimit(
                tenant_id="t",
                key="smtp",
                max_count=max_count,
                window_seconds=WINDOW.total_seconds(),
                created_at=now,
                updated_at=now,
            )
        )

    async def reserved(self, instance_id: str) -> datetime | None:
        loaded = await self.storage.snapshots.load(instance_id)
        assert loaded is not None
        (node,) = [n for n in loaded[1] if n.block_id == "send"]
        return node.reserved_at

    def log(self) -> list[datetime]:
        return list(self.storage.rate_limits._admitted[("t", "smtp")])  # type: ignore[attr-defined]


SEND = [step("send", "send", rate_limit_key="smtp")]


def most_in_window(times: list[datetime], window: timedelta) -> int:
    ordered = sorted(times)
    return max(
        (sum(1 for u in ordered[i:] if u - t < window) for i, t in enumerate(ordered)), default=0
    )


async def test_steps_over_the_limit_run_at_their_places_counted_once() -> None:
    h = Limited()
    await h.limit(3)
    t0 = h.clock.now()
    ids = await h.start(SEND, count=7)
    await h.settle()
    assert [at for _, at in h.starts] == [t0] * 3
    # The other four hold places, one spacing (10 s + 25 ms) apart per three, and
    # their instances are due just before them.
    spacing = WINDOW + GRACE
    places = sorted([p for p in [await h.reserved(i) for i in ids] if p is not None])
    assert places == [t0 + spacing] * 3 + [t0 + 2 * spacing]
    for iid in ids:
        place = await h.reserved(iid)
        inst = await h.storage.instances.get(iid)
        assert inst is not None
        if place is None:
            assert inst.state is InstanceState.COMPLETED
        else:
            assert inst.state is InstanceState.SCHEDULED
            assert inst.next_fire_at == place - RESERVATION_LEAD
    # Nothing runs before its place, and the log holds one entry per step.
    h.clock.advance(seconds=9)
    await h.settle()
    assert len(h.starts) == 3
    while len(h.starts) < 7:
        h.clock.advance(seconds=1)
        await h.settle()
    assert Counter(i for i, _ in h.starts) == dict.fromkeys(ids, 1)
    assert sorted(at for _, at in h.starts) == [t0] * 3 + places
    # One entry per step, never a second for a held place (the first three, more
    # than two windows old by now, were pruned).
    assert h.log() == places
    assert most_in_window([at for _, at in h.starts], WINDOW) == 3
    for iid in ids:
        assert await h.state(iid) is InstanceState.COMPLETED
        assert await h.reserved(iid) is None


async def test_a_missed_place_is_given_back_and_the_step_runs_in_a_new_one() -> None:
    h = Limited()
    await h.limit(1)
    t0 = h.clock.now()
    _first, second = await h.start(SEND, count=2)
    await h.settle()
    place = await h.reserved(second)
    assert place == t0 + WINDOW + GRACE
    # The process was away: the instance is only run a minute after its place.
    h.clock.advance(seconds=70)
    await h.settle()
    assert await h.state(second) is InstanceState.COMPLETED
    (late_start,) = [at for i, at in h.starts if i == second]
    assert late_start == t0 + timedelta(seconds=70)
    # The missed place left the log; the start's own place took its part.
    assert place not in h.log()
    assert late_start in h.log()


class CountingStore:
    """The memory store's `acquire_many`, counting calls (or failing them)."""

    def __init__(self, store: Any, *, fail: bool = False) -> None:
        self.store = store
        self.batches: list[int] = []
        self.fail = fail

    async def acquire_many(self, *args: Any) -> Any:
        self.batches.append(len(args[3]))
        if self.fail:
            raise RuntimeError("database away")
        return await self.store.acquire_many(*args)


async def test_asks_of_one_key_queued_together_take_one_storage_call() -> None:
    h = Limited()
    await h.limit(2)
    counting = CountingStore(h.storage.rate_limits)
    queue = PlaceQueue(counting, h.clock)  # type: ignore[arg-type]
    t0 = h.clock.now()
    places = await asyncio.gather(*(queue.ask("t", "smtp", None) for _ in range(5)))
    assert counting.batches == [5]
    spacing = WINDOW + GRACE
    assert [p.at for p in places if p is not None] == [t0, t0] + [t0 + spacing] * 2 + [
        t0 + 2 * spacing
    ]
    # A key without a limit: None for everyone.
    assert await asyncio.gather(queue.ask("t", "other", None), queue.ask("t", "other", t0)) == [
        None,
        None,
    ]


async def test_a_failed_call_fails_every_ask_it_answered_and_a_cancelled_ask_no_other() -> None:
    h = Limited()
    await h.limit(2)
    failing = PlaceQueue(CountingStore(h.storage.rate_limits, fail=True), h.clock)  # type: ignore[arg-type]
    results = await asyncio.gather(
        *(failing.ask("t", "smtp", None) for _ in range(3)), return_exceptions=True
    )
    assert [type(r) for r in results] == [RuntimeError] * 3
    # The next call waits while the first is held up: an ask cancelled meanwhile
    # leaves the queue and takes no place.
    blocking = CountingStore(h.storage.rate_limits)
    release = asyncio.Event()
    original = blocking.acquire_many

    async def held_up(*args: Any) -> Any:
        await release.wait()
        return await original(*args)

    blocking.acquire_many = held_up  # type: ignore[method-assign]
    queue = PlaceQueue(blocking, h.clock)  # type: ignore[arg-type]
    first = asyncio.create_task(queue.ask("t", "smtp", None))
    await asyncio.sleep(0.01)  # its call is in flight
    later = [asyncio.create_task(queue.ask("t", "smtp", None)) for _ in range(3)]
    await asyncio.sleep(0.01)
    later[0].cancel()
    await asyncio.sleep(0.01)
    release.set()
    done = await asyncio.gather(first, *later, return_exceptions=True)
    assert isinstance(done[1], asyncio.CancelledError)
    t0 = h.clock.now()
    assert [p.at for p in (done[0], done[2], done[3])] == [t0, t0, t0 + WINDOW + GRACE]  # type: ignore[union-attr]
    assert len(h.log()) == 3


class LateClock(FakeClock):
    """A simulated clock whose waits end late by the given amounts, then on time (a
    busy process)."""

    def __init__(self, lateness_ms: list[int], *, forever: bool = False) -> None:
        super().__init__()
        self.lateness = itertools.cycle(lateness_ms) if forever else iter(lateness_ms)

    async def sleep_until(self, instant: datetime) -> None:
        late = timedelta(milliseconds=next(self.lateness, 0))
        self.current = max(self.current, instant + late)
        await asyncio.sleep(0)


PAST_GRACE = 25  # ms: later than this, a place is missed


@settings(max_examples=60)
@given(
    max_count=st.integers(1, 4),
    window_s=st.sampled_from([1, 2, 10]),
    arrivals=st.lists(st.integers(1, 6), min_size=1, max_size=6),
    advances_ms=st.lists(st.integers(1, 30_000), min_size=1, max_size=60),
    lateness_ms=st.lists(st.sampled_from([0, 1, 10, 24, 25, 26, 200, 2000]), max_size=12).filter(
        lambda late: sum(1 for x in late if x > PAST_GRACE) <= 2
    ),
)
async def test_any_arrivals_and_any_clock_never_start_over_the_limit(
    max_count: int,
    window_s: int,
    arrivals: list[int],
    advances_ms: list[int],
    lateness_ms: list[int],
) -> None:
    """Instances arriving in generated groups, the simulated clock moving by generated
    steps (small ones, and jumps far past any place, as after downtime), waits
    for a place ending late by generated amounts (within the grace, or past it
    now and then): every step runs exactly once, and no window of the limit's
    length holds more than max_count starts."""
    h = Limited(LateClock(lateness_ms))
    now = h.clock.now()
    await h.storage.rate_limits.upsert(
        RateLimit(
            tenant_id="t",
            key="smtp",
            max_count=max_count,
            window_seconds=float(window_s),
            created_at=now,
            updated_at=now,
        )
    )
    ids: list[str] = []
    for i, advance in enumerate(advances_ms):
        if i < len(arrivals):
            ids += await h.start(SEND, count=arrivals[i])
        h.clock.advance(milliseconds=advance)
        await h.settle()
    while len(h.starts) < len(ids):
        h.clock.advance(seconds=window_s)
        await h.settle()
    assert Counter(i for i, _ in h.starts) == dict.fromkeys(ids, 1)
    assert most_in_window([at for _, at in h.starts], timedelta(seconds=window_s)) <= max_count


async def test_a_process_always_late_to_wake_learns_to_wake_early(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every wait ends 200 ms late, far past the grace: the first place is missed,
    then waits are aimed 200 ms early and every step starts within its grace."""
    caplog.set_level(logging.INFO, logger="orch8.engine")
    h = Limited(LateClock([200], forever=True))
    await h.limit(1)
    ids = await h.start(SEND, count=4)
    for _ in range(700):
        await h.settle()
        h.clock.advance(milliseconds=100)
    assert Counter(i for i, _ in h.starts) == dict.fromkeys(ids, 1)
    assert h.runner.places.wake_early == timedelta(milliseconds=200)
    missed = [r for r in caplog.records if "missed its rate-limit place" in r.getMessage()]
    assert len(missed) == 1  # the first wait only
    starts = sorted(at for _, at in h.starts)
    assert all(b - a >= WINDOW for a, b in itertools.pairwise(starts))
