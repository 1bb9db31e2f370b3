"""Rate-limit places asked for together: one storage call answers every step queued
on a key.

Steps of one process that reach the same `rate_limit_key` at once would each
pay a transaction (and, on SQLite, a turn of the one write lock between two
group commits): with a thousand due together the asks alone fall seconds
behind, and places handed out meanwhile are missed. Here the asks of a key
queue up while one storage call is in flight; the next call takes the whole
queue, in order, in one transaction (`RateLimitStore.acquire_many`), which
reads the clock once it holds the key's lock, so a place is never stamped with
an instant from before a wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from orch8.application.ports.clock import Clock
from orch8.application.ports.storage import RateLimitStore
from orch8.domain.rate_limits import Admission

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
