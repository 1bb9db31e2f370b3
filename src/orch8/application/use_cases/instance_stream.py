"""Watching one instance live: the events behind `GET /instances/{id}/stream`.

A stream starts with what storage holds (the current state, then every output
already stored) and then follows two sources, merged into one ordered sequence:

* the process's `LocalChangeFeed`: what this process's engine commits arrives at
  once, outputs included, without touching the database;
* a storage poll every `poll_ms`, for what other processes sharing the database
  do (and for changes this process makes without publishing, such as a claim).
  Reads are shared: streams of one instance polling within `SHARED_READ_AGE_S`
  of each other use one read, poll ticks are aligned to a common grid so that
  they coincide, and outputs are re-read only when the instance row changed.

Each output is emitted exactly once (by id) and in storage order; a `state`
event only when the state differs from the last one sent; the stream ends with
`Finished` right after a terminal state. A feed change and a storage read can
race (the engine publishes just after its commit): a read's state is used only
when no change of the instance was published while the read ran, and changes
published before the read began are applied before it, so states never go
backwards. At the end, and when a slow reader overflowed its queue, the stream
resyncs from storage, so outputs written by another process earlier are not lost.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from types import TracebackType

from attrs import frozen

from orch8.application.errors import StreamUnavailable
from orch8.application.ports.storage import InstanceStore, OutputStore
from orch8.application.streams import LocalChangeFeed, Numbered, SharedReads, Snapshot, Subscription
from orch8.application.use_cases.tenancy import visible
from orch8.domain.instance import InstanceState
from orch8.domain.outputs import BlockOutput

_log = logging.getLogger("orch8.streams")

MIN_POLL_MS = 100
MAX_POLL_MS = 5_000
DEFAULT_POLL_MS = 500
DEFAULT_MAX_STREAMS = 256
MAX_BACKOFF_S = 30.0
SHARED_READ_AGE_S = 0.1
FIRST_READ_ATTEMPTS = 3
NOT_FOUND = "instance not found"


@frozen
class StateChanged:
    instance_id: str
    state: InstanceState


@frozen
class OutputAdded:
    output: BlockOutput


@frozen
class Finished:
    """The last event: the instance reached a terminal state."""

    state: InstanceState


@frozen
class StreamFailed:
    """The last event: the instance does not exist (or belongs to another tenant)."""

    message: str


@frozen
class Idle:
    """Nothing new at this wake-up: a consumer may send a keep-alive or check its client."""


StreamEvent = StateChanged | OutputAdded | Finished | StreamFailed | Idle


def clamp_poll_ms(value: int) -> int:
    return max(MIN_POLL_MS, min(MAX_POLL_MS, value))


class _View:
    """What one stream has sent so far, and how new information extends it."""

    def __init__(self, instance_id: str) -> None:
        self.instance_id = instance_id
        self.state: InstanceState | None = None
        self.seen: set[str] = set()
        self.applied = 0  # feed position of the last change applied
        self.read_begun = 0  # `begun` of the newest snapshot applied

    def _outputs(self, outputs: tuple[BlockOutput, ...]) -> list[StreamEvent]:
        events: list[StreamEvent] = []
        for out in outputs:
            if out.id not in self.seen:
                self.seen.add(out.id)
                events.append(OutputAdded(out))
        return events

    def _state(self, state: InstanceState) -> list[StreamEvent]:
        if state is self.state:
            return []
        self.state = state
        return [StateChanged(self.instance_id, state)]

    def change(self, item: Numbered) -> list[StreamEvent]:
        position, change = item
        self.applied = max(self.applied, position)
        return self._outputs(change.outputs) + self._state(change.state)

    def merge(self, snap: Snapshot, items: list[Numbered], *, fresh: bool) -> list[StreamEvent]:
        """Apply a read and the changes queued meanwhile. `fresh` (first read, resync):
        drop queued changes the read covers instead of replaying them."""
        assert snap.instance is not None
        events: list[StreamEvent] = []
        after = [item for item in items if item[0] > snap.begun]
        if not fresh:
            for item in items:
                if item[0] <= snap.begun:
                    events += self.change(item)
        quiet = self.applied <= snap.begun and all(p > snap.ended for p, _ in after)
        if self.state is None:  # the first event of a stream is its current state
            events += self._state(snap.instance.state) + self._outputs(snap.outputs)
        else:
            events += self._outputs(snap.outputs)
            if quiet:
                events += self._state(snap.instance.state)
        self.read_begun = max(self.read_begun, snap.begun)
        for item in after:
            events += self.change(item)
        return events


class EventStream(AsyncIterator[StreamEvent]):
    """The events of one open stream; `aclose` it (or use `async with`) to free its slot."""

    def __init__(
        self, events: AsyncGenerator[StreamEvent, None], release: Callable[[], None]
    ) -> None:
        self._events = events
        self._release = release
        self._closed = False

    async def __anext__(self) -> StreamEvent:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._events.aclose()
        finally:
            self._release()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def _next_tick(now: float, period: float) -> float:
    """The next multiple of `period`: streams with one poll interval poll together."""
    return (math.floor(now / period) + 1) * period


class InstanceStream:
    """Opens live event streams of instances, at most `max_streams` at a time."""

    def __init__(
        self,
        instances: InstanceStore,
        outputs: OutputStore,
        feed: LocalChangeFeed,
        *,
        max_streams: int = DEFAULT_MAX_STREAMS,
        shared_read_age_s: float = SHARED_READ_AGE_S,
    ) -> None:
        self._feed = feed
        self.reads = SharedReads(instances, outputs, feed, max_age_s=shared_read_age_s)
        self._max_streams = max_streams
        self._open: set[Subscription] = set()
        self._closed = False

    @property
    def open_streams(self) -> int:
        return len(self._open)

    def open(
        self, instance_id: str, *, caller: str | None, poll_ms: int = DEFAULT_POLL_MS
    ) -> EventStream:
        """Reserve a slot and subscribe; the events start with the first iteration.

        Raises StreamUnavailable at the limit or once `close` was called. An
        unknown instance (or another tenant's) yields one `StreamFailed` event.
        """
        if self._closed:
            raise StreamUnavailable("the server is shutting down")
        if len(self._open) >= self._max_streams:
            raise StreamUnavailable(f"too many open streams (limit {self._max_streams})")
        sub = self._feed.subscribe(instance_id)
        self._open.add(sub)
        poll_s = clamp_poll_ms(poll_ms) / 1000
        return EventStream(self._events(sub, caller, poll_s), lambda: self._release(sub))

    def close(self) -> None:
        """End every open stream (at shutdown) and refuse new ones."""
        self._closed = True
        for sub in tuple(self._open):
            sub.close()

    def _release(self, sub: Subscription) -> None:
        sub.close()
        self._open.discard(sub)
        if self._feed.subscriber_count(sub.instance_id) == 0:
            self.reads.forget(sub.instance_id)

    async def _first_read(self, sub: Subscription) -> Snapshot:
        snap = await self.reads.read(sub.instance_id, not_before=sub.start)
        for _ in range(FIRST_READ_ATTEMPTS - 1):
            if all(p <= snap.begun or p > snap.ended for p in sub.positions()):
                break  # no change raced the read: its state is the newest
            snap = await self.reads.read(sub.instance_id, not_before=self._feed.position)
        return snap

    async def _events(
        self, sub: Subscription, caller: str | None, poll_s: float
    ) -> AsyncGenerator[StreamEvent, None]:
        snap = await self._first_read(sub)
        if snap.instance is None or not visible(snap.instance.tenant_id, caller):
            yield StreamFailed(NOT_FOUND)
            return
        view = _View(sub.instance_id)
        events = view.merge(snap, sub.take(), fresh=True)
        loop = asyncio.get_running_loop()
        next_poll = _next_tick(loop.time(), poll_s)
        resync, failures = False, 0
        while True:
            for event in events:
                yield event
                if isinstance(event, StreamFailed):
                    return
            if view.state is not None and view.state.is_terminal:
                yield Finished(view.state)
                return
            if not events and not sub.closed:
                yield Idle()
            if sub.closed:
                return
            events = []
            await sub.wait(max(0.0, min(next_poll - loop.time(), poll_s)), for_changes=not resync)
            if sub.closed:
                return
            if not resync:
                items = sub.take()
                if sub.overflowed or any(change.state.is_terminal for _, change in items):
                    # Catch up from storage (changes were dropped), or end on what it
                    # holds (outputs another process wrote must not be missed).
                    sub.clear_overflow()
                    resync, next_poll = True, loop.time()
                else:
                    for item in items:
                        events += view.change(item)
            if loop.time() < next_poll:
                continue
            not_before = self._feed.position if resync else max(sub.start, view.read_begun)
            try:
                snap = await self.reads.read(sub.instance_id, not_before=not_before)
            except Exception:
                failures += 1
                delay = min(poll_s * 2**failures, MAX_BACKOFF_S)
                if failures == 1:
                    _log.warning("stream poll of %s failed", sub.instance_id, exc_info=True)
                next_poll = loop.time() + delay
                continue
            failures = 0
            if snap.instance is None:  # deleted meanwhile
                events.append(StreamFailed(NOT_FOUND))
                continue
            events += view.merge(snap, sub.take(), fresh=resync)
            resync = False
            next_poll = _next_tick(loop.time(), poll_s)
