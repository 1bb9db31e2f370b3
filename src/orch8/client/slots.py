"""A worker's concurrency budget, shared by its poll loops and its task runs."""

from __future__ import annotations

import asyncio


class Slots:
    """The concurrency budget: running tasks plus slots reserved by an in-flight poll.

    A poll asks for exactly as many tasks as it reserved, so a worker never holds a
    claim it has no capacity to run: a claimed-but-queued task would only age towards
    the reaper while other workers sit idle."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.in_use = 0
        self._freed = asyncio.Event()

    async def reserve(self, most: int) -> int:
        """Wait for at least one free slot, then take up to `most`; how many were taken."""
        while self.in_use >= self.capacity:
            self._freed.clear()
            await self._freed.wait()
        taken = min(most, self.capacity - self.in_use)
        self.in_use += taken
        return taken

    def take(self, count: int) -> None:
        """Take slots without waiting (a server that returned more tasks than asked)."""
        self.in_use += count

    def release(self, count: int = 1) -> None:
        if count > 0:
            self.in_use -= count
            self._freed.set()
