"""Waiting for a rate-limit place on a simulated clock: started in the place, deferred to
a far one, asked again when missed, and woken early by the lateness seen."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orch8.application.engine.places import MAX_WAKE_EARLY, RESERVATION_LEAD, PlaceWaiter
from orch8.domain.evaluator.attempts import Deferred
from orch8.domain.instance import Instance, InstanceState, Priority
from orch8.domain.rate_limits import Admission
from orch8.domain.sequence import StepBlock
from tests.unit.fakes import FakeClock, RecordingMetrics
from tests.unit.test_rate_limited_steps import LateClock

GRACE = timedelta(milliseconds=25)
SEND = StepBlock("send", "send", rate_limit_key="smtp")


class ScriptedQueue:
    """A PlaceQueue answering each ask with the next place given (offsets from the
    clock's start), and keeping what was asked."""

    def __init__(self, clock: FakeClock, *places: tuple[timedelta, bool] | None) -> None:
        self.start = clock.now()
        self.places = list(places)
        self.asks: list[tuple[str, str, datetime | None]] = []

    async def ask(self, tenant_id: str, key: str, held: datetime | None) -> Admission | None:
        self.asks.append((tenant_id, key, held))
        place = self.places.pop(0)
        if place is None:
            return None
        offset, fresh = place
        at = self.start + offset
        return Admission(at, at + GRACE, fresh)


def instance(clock: FakeClock) -> Instance:
    now = clock.now()
    return Instance(
        id="i-1",
        sequence_id="s",
        tenant_id="t",
        namespace="default",
        state=InstanceState.RUNNING,
        next_fire_at=None,
        priority=Priority.NORMAL,
        timezone="UTC",
        created_at=now,
        updated_at=now,
    )


def waiter(clock: FakeClock, queue: ScriptedQueue) -> PlaceWaiter:
    return PlaceWaiter(queue, clock)  # type: ignore[arg-type]


async def test_a_step_without_a_limit_starts_at_once_and_asks_nothing() -> None:
    clock = FakeClock()
    queue = ScriptedQueue(clock)
    assert await waiter(clock, queue).take(instance(clock), StepBlock("s", "h"), None) is None
    assert queue.asks == []


async def test_a_key_without_a_limit_starts_at_once() -> None:
    clock = FakeClock()
    queue = ScriptedQueue(clock, None)
    t0 = clock.now()
    assert await waiter(clock, queue).take(instance(clock), SEND, None) is None
    assert queue.asks == [("t", "smtp", None)]
    assert clock.now() == t0


async def test_a_near_place_is_awaited_to_the_instant() -> None:
    clock = FakeClock()
    near = RESERVATION_LEAD - timedelta(milliseconds=1)
    queue = ScriptedQueue(clock, (near, True))
    t0 = clock.now()
    assert await waiter(clock, queue).take(instance(clock), SEND, None) is None
    assert clock.now() == t0 + near


async def test_a_far_place_defers_the_step_to_a_lead_before_it() -> None:
    clock = FakeClock()
    far = timedelta(seconds=30)
    queue = ScriptedQueue(clock, (far, True))
    t0 = clock.now()
    deferred = await waiter(clock, queue).take(instance(clock), SEND, None)
    assert deferred == Deferred(t0 + far - RESERVATION_LEAD, reserved_at=t0 + far)
    assert clock.now() == t0  # nothing slept
    # The lead is the waiter's: a longer one keeps the same place in process.
    queue = ScriptedQueue(clock, (far, True))
    patient = PlaceWaiter(queue, clock, lead=timedelta(minutes=1))  # type: ignore[arg-type]
    assert await patient.take(instance(clock), SEND, None) is None
    assert clock.now() == t0 + far


async def test_a_held_place_is_asked_for_again_and_kept() -> None:
    clock = FakeClock()
    held = clock.now() + timedelta(milliseconds=100)
    queue = ScriptedQueue(clock, (timedelta(milliseconds=100), False))
    assert await waiter(clock, queue).take(instance(clock), SEND, held) is None
    assert queue.asks == [("t", "smtp", held)]
    assert clock.now() == held


async def test_a_place_missed_by_a_late_wake_up_is_given_back_for_a_new_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="orch8.engine")
    clock = LateClock([200])  # the first wait ends 200 ms late, past the grace
    first, second = timedelta(milliseconds=100), timedelta(milliseconds=400)
    queue = ScriptedQueue(clock, (first, True), (second, True))
    t0 = clock.now()
    places = waiter(clock, queue)
    assert await places.take(instance(clock), SEND, None) is None
    assert queue.asks == [("t", "smtp", None), ("t", "smtp", t0 + first)]
    assert clock.now() == t0 + second
    # 200 ms late once, then on time: the lateness learnt fades by a tenth.
    assert places.wake_early == timedelta(milliseconds=180)
    (missed,) = [r for r in caplog.records if "missed its rate-limit place" in r.getMessage()]
    assert "send of i-1" in missed.getMessage()


async def test_a_process_steadily_late_wakes_early_and_starts_on_time() -> None:
    clock = LateClock([200], forever=True)
    places = waiter(clock, ScriptedQueue(clock))
    instant = clock.now() + timedelta(seconds=1)
    await places.wait_for(instant)
    assert clock.now() == instant + timedelta(milliseconds=200)  # late: learnt from it
    assert places.wake_early == timedelta(milliseconds=200)
    for n in range(2, 6):
        instant = clock.now() + timedelta(seconds=1)
        await places.wait_for(instant)
        assert clock.now() == instant, n


@settings(max_examples=80, deadline=None, database=None)
@given(
    lateness_ms=st.lists(st.integers(0, 3000), max_size=20),
    gaps_ms=st.lists(st.integers(0, 5000), min_size=1, max_size=10),
)
async def test_a_wait_never_ends_before_its_instant_and_wakes_at_most_a_second_early(
    lateness_ms: list[int], gaps_ms: list[int]
) -> None:
    clock = LateClock(lateness_ms)
    places = waiter(clock, ScriptedQueue(clock))
    for gap in gaps_ms:
        instant = clock.now() + timedelta(milliseconds=gap)
        await places.wait_for(instant)
        assert clock.now() >= instant
        assert timedelta(0) <= places.wake_early <= MAX_WAKE_EARLY


async def test_a_place_later_than_now_counts_as_the_limit_exceeded_once() -> None:
    clock = FakeClock()
    metrics = RecordingMetrics()
    # room now; then full (a far place, deferred); its kept place when the step comes
    # back; full again after a missed place
    queue = ScriptedQueue(clock, (timedelta(0), True), (timedelta(minutes=1), True))
    places = PlaceWaiter(queue, clock, metrics=metrics)  # type: ignore[arg-type]
    assert await places.take(instance(clock), SEND, None) is None
    assert metrics.counts["rate_limit_exceeded"] == 0
    deferred = await places.take(instance(clock), SEND, None)
    assert isinstance(deferred, Deferred)
    assert metrics.counts["rate_limit_exceeded"] == 1
    clock.current = deferred.until
    queue.places.append((timedelta(minutes=1), False))  # the place it holds
    assert await places.take(instance(clock), SEND, deferred.reserved_at) is None
    assert metrics.counts["rate_limit_exceeded"] == 1  # the same wait, not counted again
