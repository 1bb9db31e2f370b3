"""In-process fan-out of instance changes: the engine publishes, live streams subscribe.

One `LocalChangeFeed` per process. The engine's runner calls `publish` after every
committed write; each live stream holds a `Subscription` to the one instance it
watches. Delivery is synchronous and never waits: a subscriber that falls
`capacity` changes behind loses its queue and is marked `overflowed`, and must
resync from storage. So a slow HTTP client can cost itself a storage read, but
can never slow the engine down or grow memory without bound.

Every change is numbered with the feed's `position` (a process-wide counter). A
reader that notes the position before and after a storage read can tell which of
its queued changes the read already reflects (published before the read began)
and which may be newer than it (published while it ran). `SharedReads` makes
those reads, once for all the streams watching an instance.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from attrs import frozen

from orch8.application.ports.events import ChangeFeed, InstanceChanged
from orch8.application.ports.storage import InstanceStore, OutputStore
from orch8.domain.instance import Instance
from orch8.domain.outputs import BlockOutput

_log = logging.getLogger("orch8.streams")

DEFAULT_CAPACITY = 256

Numbered = tuple[int, InstanceChanged]


class Subscription:
    """One reader's bounded FIFO of one instance's changes, with their feed positions.

    Use from the event loop's thread only (as the feed is).
    """

    def __init__(self, feed: LocalChangeFeed, instance_id: str, capacity: int) -> None:
        self.instance_id = instance_id
        self.start = feed.position
        """The feed position when the subscription began: later changes all arrive."""
        self._feed = feed
        self._capacity = capacity
        self._items: deque[Numbered] = deque()
        self._ready = asyncio.Event()
        self.overflowed = False
        self.closed = False
        self.dropped = 0

    def offer(self, position: int, change: InstanceChanged) -> None:
        """Queue a change, or drop the whole queue if the reader is `capacity` behind."""
        if self.closed:
            return
        if len(self._items) >= self._capacity:
            self.dropped += len(self._items) + 1
            self._items.clear()
            self.overflowed = True
        else:
            self._items.append((position, change))
        self._ready.set()

    def positions(self) -> list[int]:
        """Positions of the queued changes, without taking them."""
        return [position for position, _ in self._items]

    def take(self) -> list[Numbered]:
        """Every queued change, oldest first; the queue is left empty."""
        items = list(self._items)
        self._items.clear()
        return items

    def clear_overflow(self) -> None:
        self.overflowed = False

    async def wait(self, seconds: float, *, for_changes: bool = True) -> None:
        """Until a change is queued (unless not `for_changes`), the subscription
        closes, or `seconds` pass."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not self.closed and not (for_changes and (self._items or self.overflowed)):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._ready.clear()
            try:
                async with asyncio.timeout(remaining):
                    await self._ready.wait()
            except TimeoutError:
                return

    def close(self) -> None:
        """Stop receiving; a reader blocked in `wait` returns at once. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self._items.clear()
        self._feed.unsubscribe(self)
        self._ready.set()


class LocalChangeFeed(ChangeFeed):
    """Fans each published change out to the subscribers of its instance."""

    def __init__(self, *, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._subscribers: dict[str, set[Subscription]] = {}
        self._position = 0

    @property
    def position(self) -> int:
        """How many changes have been published so far (the last change's number)."""
        return self._position

    def publish(self, change: InstanceChanged) -> None:
        self._position += 1
        subscribers = self._subscribers.get(change.instance_id)
        if not subscribers:
            return
        for sub in tuple(subscribers):
            try:
                sub.offer(self._position, change)
            except Exception:  # never let a reader's trouble reach the engine
                _log.exception("change feed subscriber failed; closing it")
                sub.close()

    def subscribe(self, instance_id: str, *, capacity: int | None = None) -> Subscription:
        sub = Subscription(self, instance_id, capacity or self._capacity)
        self._subscribers.setdefault(instance_id, set()).add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        subscribers = self._subscribers.get(sub.instance_id)
        if subscribers is None:
            return
        subscribers.discard(sub)
        if not subscribers:
            del self._subscribers[sub.instance_id]

    def subscriber_count(self, instance_id: str | None = None) -> int:
        if instance_id is not None:
            return len(self._subscribers.get(instance_id, ()))
        return sum(len(s) for s in self._subscribers.values())


@frozen
class Snapshot:
    """One storage read of an instance, with the feed positions around it.

    Changes published at or before `begun` are reflected in it; those published
    in (`begun`, `ended`] may or may not be.
    """

    begun: int
    ended: int
    started_at: float
    instance: Instance | None
    outputs: tuple[BlockOutput, ...]


class SharedReads:
    """Storage reads of watched instances, shared by the streams that watch them."""

    def __init__(
        self,
        instances: InstanceStore,
        outputs: OutputStore,
        feed: LocalChangeFeed,
        *,
        max_age_s: float,
    ) -> None:
        self._instances = instances
        self._outputs = outputs
        self._feed = feed
        self._max_age_s = max_age_s
        self._last: dict[str, Snapshot] = {}
        self._inflight: dict[str, tuple[int, asyncio.Future[Snapshot]]] = {}
        self.reads = 0

    async def read(self, instance_id: str, *, not_before: int) -> Snapshot:
        """A snapshot that began at feed position `not_before` or later: a recent or
        in-flight one when there is one, else a new read."""
        loop = asyncio.get_running_loop()
        while True:
            flight = self._inflight.get(instance_id)
            if flight is not None and flight[0] >= not_before:
                try:
                    return await asyncio.shield(flight[1])
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if flight[1].cancelled() and (task is None or not task.cancelling()):
                        continue  # the leading reader went away (or failed): read ourselves
                    raise
            last = self._last.get(instance_id)
            if (
                last is not None
                and last.begun >= not_before
                and loop.time() - last.started_at <= self._max_age_s
            ):
                return last
            return await self._lead(instance_id)

    async def _lead(self, instance_id: str) -> Snapshot:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Snapshot] = loop.create_future()
        begun = self._feed.position
        self._inflight[instance_id] = (begun, future)
        try:
            snap = await self._fetch(instance_id, begun, loop.time())
        except BaseException:
            future.cancel()  # joiners retry on their own; nobody is left with an error
            raise
        finally:
            if self._inflight.get(instance_id, (0, None))[1] is future:
                del self._inflight[instance_id]
        future.set_result(snap)
        last = self._last.get(instance_id)
        if last is None or last.begun <= snap.begun:
            self._last[instance_id] = snap
        return snap

    async def _fetch(self, instance_id: str, begun: int, started_at: float) -> Snapshot:
        self.reads += 1
        inst = await self._instances.get(instance_id)
        outputs: tuple[BlockOutput, ...] = ()
        last = self._last.get(instance_id)
        if inst is None:
            pass
        elif (
            last is not None
            and last.instance is not None
            and (last.instance.state, last.instance.updated_at) == (inst.state, inst.updated_at)
        ):
            outputs = last.outputs  # every commit moves updated_at: nothing was written since
        else:
            outputs = tuple(await self._outputs.list_for_instance(instance_id))
        return Snapshot(begun, self._feed.position, started_at, inst, outputs)

    def forget(self, instance_id: str) -> None:
        self._last.pop(instance_id, None)
