"""Rate-limit places: asked for together, then waited for (or deferred to).

`PlaceQueue`: one storage call answers every step queued on a key.

Steps of one process that reach the same `rate_limit_key` at once would each
pay a transaction (and, on SQLite, a turn of the one write lock between two
group commits): with a thousand due together the asks alone fall seconds
behind, and places handed out meanwhile are missed. Here the asks of a key
queue up while one storage call is in flight; the next call takes the whole
queue, in order, in one transaction (`RateLimitStore.acquire_many`), which
reads the clock once it holds the key's lock, so a place is never stamped with
an instant from before a wait.

`PlaceWaiter`: what a step does with its place. A near one is awaited in
process, aimed early by the lateness this process's wake-ups have shown, so a
process steadily slow to wake still starts its steps within their grace; a far
one hands the instance back (`Deferred`) and keeps the place on the node.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from orch8.application.ports.clock import Clock
from orch8.application.ports.metrics import Metrics, NoMetrics
from orch8.application.ports.storage import RateLimitStore
from orch8.domain.evaluator.attempts import Deferred
from orch8.domain.instance import Instance
from orch8.domain.rate_limits import Admission
from orch8.domain.sequence import StepBlock

_log = logging.getLogger("orch8.engine")

# A step whose rate-limit place is further off than this (at least; the engine
# makes it five scheduler ticks when that is more) hands its instance back and
# is woken this much before the place, then waits in-process for the exact
# instant; nearer places are awaited in-process straight away.
RESERVATION_LEAD = timedelta(milliseconds=500)
# The most a wait for a rate-limit place starts early to make up for this
# process's lateness in waking.
MAX_WAKE_EARLY = timedelta(seconds=1)

Key = tuple[str, str]
Ask = tuple[datetime | None, "asyncio.Future[Admission | None]"]


class PlaceQueue:
    def __init__(self, store: RateLimitStore, clock: Clock, *, max_batch: int = 512) -> None:
        self._store = store
        self._clock = clock
        self._max_batch = max_batch
        self._queued: dict[Key, list[Ask]] = {}
        self._draining: dict[Key, asyncio.Task[None]] = {}

    async def ask(self, tenant_id: str, key: str, held: datetime | None) -> Admission | None:
        """The place of one use (`RateLimitStore.acquire`), decided with the others queued."""
        future: asyncio.Future[Admission | None] = asyncio.get_running_loop().create_future()
        ident = (tenant_id, key)
        entry: Ask = (held, future)
        self._queued.setdefault(ident, []).append(entry)
        if ident not in self._draining:
            self._draining[ident] = asyncio.create_task(self._drain(ident))
        try:
            # Shielded: a caller cancelled while waiting must not cancel the others' call.
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # Not asked yet: leave the queue, so no place is taken for nobody.
            queued = self._queued.get(ident, [])
            if any(e is entry for e in queued):
                self._queued[ident] = [e for e in queued if e is not entry]
            raise

    async def _drain(self, ident: Key) -> None:
        try:
            while queue := self._queued.pop(ident, None):
                batch, rest = queue[: self._max_batch], queue[self._max_batch :]
                if rest:  # (nothing can have queued since the pop: no await between)
                    self._queued[ident] = rest
                await self._answer(ident, batch)
        finally:
            del self._draining[ident]

    async def _answer(self, ident: Key, batch: Sequence[Ask]) -> None:
        tenant_id, key = ident
        helds = [held for held, _ in batch]
        try:
            places = await self._store.acquire_many(tenant_id, key, self._clock.now, helds)
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        answers: Sequence[Admission | None] = [None] * len(batch) if places is None else places
        for (_, future), place in zip(batch, answers, strict=True):
            if not future.done():
                future.set_result(place)


def _lateness(estimate: timedelta, seen: timedelta) -> timedelta:
    return min(max(estimate * 0.9, seen), MAX_WAKE_EARLY)


class PlaceWaiter:
    """One per process: the lateness it learns (`wake_early`) is the process's own."""

    def __init__(
        self,
        queue: PlaceQueue,
        clock: Clock,
        *,
        lead: timedelta = RESERVATION_LEAD,
        metrics: Metrics | None = None,
    ) -> None:
        self.queue = queue
        self.clock = clock
        self.lead = lead
        self.metrics = metrics or NoMetrics()
        self.wake_early = timedelta(0)

    async def take(
        self, instance: Instance, block: StepBlock, held: datetime | None
    ) -> Deferred | None:
        """Wait for the step's place under its rate limit (None: start now, as a step
        without a `rate_limit_key` does), or defer the step to just before a place
        that is far off.

        The place is asked for once and kept on the node (`held`) while the
        instance is handed back, so the step is counted once however long it
        waits. A place missed by more than its grace (the process was down, or
        too busy to wake in time) is lost: starting then could crowd the window,
        so the step asks for a new one.
        """
        key = block.rate_limit_key
        if key is None:
            return None
        while True:
            place = await self.queue.ask(instance.tenant_id, key, held)
            if place is None:
                return None
            now = self.clock.now()
            if place.fresh and place.at > now:
                # The window was full: this step waits for room (counted once per
                # place given, however the wait is spent).
                self.metrics.rate_limit_exceeded()
            if held is not None and place.fresh:
                _log.info(
                    "step %s of %s missed its rate-limit place at %s; its new place is at %s",
                    block.id,
                    instance.id,
                    held.isoformat(),
                    place.at.isoformat(),
                )
            if place.at - now > self.lead:
                _log.debug(
                    "step %s of %s has its rate-limit place at %s", block.id, instance.id, place.at
                )
                return Deferred(place.at - self.lead, reserved_at=place.at)
            await self.wait_for(place.at)
            if not place.lapsed(self.clock.now()):
                return None
            held = place.at  # too late to start: the next ask gives a new place

    async def wait_for(self, instant: datetime) -> None:
        """Return at `instant` or just after, never before. The wake-up is aimed early
        by the lateness recent wake-ups showed (the largest seen, fading by a tenth
        at each new one, at most MAX_WAKE_EARLY), then the rest is slept exactly."""
        clock = self.clock
        aim = instant - self.wake_early
        if aim > clock.now():
            await clock.sleep_until(aim)
            self.wake_early = _lateness(self.wake_early, clock.now() - aim)
        if clock.now() < instant:
            await clock.sleep_until(instant)
            self.wake_early = _lateness(self.wake_early, clock.now() - instant)
