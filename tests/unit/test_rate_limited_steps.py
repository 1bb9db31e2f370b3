"""Steps over their rate limit, in the runner: deferred to their place, started in it,
counted once, and given back when missed (memory store, simulated clock)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from orch8.application.engine.places import PlaceQueue
from orch8.application.engine.runner import RESERVATION_LEAD
from orch8.application.ports.handlers import StepCall
from orch8.domain.instance import InstanceState
from orch8.domain.rate_limits import RateLimit
from tests.unit.test_engine import Harness, step

WINDOW = timedelta(seconds=10)
GRACE = timedelta(milliseconds=25)


class Limited(Harness):
    def __init__(self) -> None:
        super().__init__()
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
