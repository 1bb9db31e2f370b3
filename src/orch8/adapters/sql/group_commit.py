"""Group commit: many concurrent writes, one transaction, one flush.

Each step of each running instance ends in a snapshot write. Committed one by
one, every write costs a round trip and a disk flush (PostgreSQL's WAL flush,
SQLite's fsync under synchronous=FULL); committed together, the writes that
queued up while the previous batch was in flight share both. Both SQL adapters
use this one queue; each supplies `apply_batch`, its own transaction.

Callers enqueue an item and await a future. One drainer task takes up to
`max_batch` queued items and hands them, in order, to `apply_batch`, which
keeps each item all-or-nothing and returns, per item, None or that item's own
failure; futures are resolved only after `apply_batch` returns, i.e. after the
commit. If applying fails as a whole, every item of the batch gets that error.
The drainer exists only while there is work, and because there is one, writes
to the same instance land in call order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
ApplyBatch = Callable[[list[Item]], Awaitable[list[BaseException | None]]]


class GroupCommitter(Generic[Item]):
    def __init__(self, apply_batch: ApplyBatch[Item], *, max_batch: int) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._apply_batch = apply_batch
        self._max_batch = max_batch
        self._queue: deque[tuple[Item, asyncio.Future[None]]] = deque()
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> None:
        """Return once `item` is committed; raise what applying it raised."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain())
        await future

    async def drain(self) -> None:
        """Wait until everything queued so far is committed (or failed)."""
        while self._drainer is not None:
            await asyncio.wait({self._drainer})

    async def _drain(self) -> None:
        try:
            while self._queue:
                take = min(len(self._queue), self._max_batch)
                batch = [self._queue.popleft() for _ in range(take)]
                await self._commit(batch)
        finally:
            self._drainer = None

    async def _commit(self, batch: list[tuple[Item, asyncio.Future[None]]]) -> None:
        try:
            outcomes = await self._apply_batch([item for item, _ in batch])
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():  # its caller stopped waiting; the write stands
                continue
            if outcome is None:
                future.set_result(None)
            else:
                future.set_exception(outcome)
