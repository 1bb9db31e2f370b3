"""The group-commit queue both SQL adapters share: batching, order, per-item and
whole-batch failures, and a caller that stops waiting."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orch8.adapters.sql.group_commit import GroupCommitter


class Recorder:
    """An `apply_batch` that records each batch; items named in `refuse` fail alone."""

    def __init__(self, refuse: frozenset[int] = frozenset(), delay: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.refuse = refuse
        self.delay = delay

    async def __call__(self, items: list[int]) -> list[BaseException | None]:
        await asyncio.sleep(self.delay)
        self.batches.append(list(items))
        return [ValueError(f"refused {i}") if i in self.refuse else None for i in items]


async def test_writes_queued_while_a_batch_is_in_flight_share_the_next_one() -> None:
    rec = Recorder(delay=0.01)
    gc: GroupCommitter[int] = GroupCommitter(rec, max_batch=100)
    await asyncio.gather(*(gc.submit(i) for i in range(10)))
    # the first submit starts a drainer that takes everything queued by then
    assert [i for b in rec.batches for i in b] == list(range(10))
    assert len(rec.batches) < 10


async def test_a_batch_never_exceeds_max_batch() -> None:
    rec = Recorder(delay=0.001)
    gc: GroupCommitter[int] = GroupCommitter(rec, max_batch=3)
    await asyncio.gather(*(gc.submit(i) for i in range(10)))
    assert all(len(b) <= 3 for b in rec.batches)
    assert [i for b in rec.batches for i in b] == list(range(10))


async def test_an_item_refused_alone_fails_its_caller_only() -> None:
    rec = Recorder(refuse=frozenset({2}))
    gc: GroupCommitter[int] = GroupCommitter(rec, max_batch=10)
    results = await asyncio.gather(*(gc.submit(i) for i in range(5)), return_exceptions=True)
    assert [type(r).__name__ if r else None for r in results] == [
        None,
        None,
        "ValueError",
        None,
        None,
    ]


async def test_a_batch_that_fails_as_a_whole_fails_every_caller_in_it() -> None:
    async def broken(items: list[int]) -> list[BaseException | None]:
        raise OSError("disk gone")

    gc: GroupCommitter[int] = GroupCommitter(broken, max_batch=10)
    results = await asyncio.gather(*(gc.submit(i) for i in range(4)), return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)


async def test_a_cancelled_caller_does_not_tear_its_write_and_drain_waits_for_it() -> None:
    rec = Recorder(delay=0.05)
    gc: GroupCommitter[int] = GroupCommitter(rec, max_batch=10)
    waiter = asyncio.create_task(gc.submit(7))
    await asyncio.sleep(0.01)  # handed over: the batch is in flight
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await gc.drain()
    assert rec.batches == [[7]]  # once handed over, the write still lands


def test_max_batch_below_one_is_refused() -> None:
    async def apply(items: list[int]) -> list[BaseException | None]:
        return [None] * len(items)

    with pytest.raises(ValueError, match="at least 1"):
        GroupCommitter(apply, max_batch=0)


@given(st.lists(st.integers(min_value=0, max_value=50), max_size=40), st.integers(1, 8))
def test_every_item_is_applied_once_in_call_order(items: list[int], max_batch: int) -> None:
    async def scenario() -> list[list[int]]:
        rec = Recorder()
        gc: GroupCommitter[int] = GroupCommitter(rec, max_batch=max_batch)
        await asyncio.gather(*(gc.submit(i) for i in items))
        return rec.batches

    batches = asyncio.run(scenario())
    assert [i for b in batches for i in b] == items
    assert all(0 < len(b) <= max_batch for b in batches)
