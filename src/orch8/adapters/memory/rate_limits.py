"""Rate limits in memory: the reference for the SQLite and PostgreSQL adapters.

One event loop and no await between reading and writing, so every method is
atomic. The admission log of each key is kept sorted by instant.
"""

from __future__ import annotations

import builtins
from bisect import bisect_right, insort
from collections.abc import Callable, Sequence
from datetime import datetime

from attrs import evolve

from orch8.application.ports.storage import RateLimitStore
from orch8.domain.rate_limits import Admission, RateLimit

Key = tuple[str, str]


class MemoryRateLimitStore(RateLimitStore):
    def __init__(self) -> None:
        self._limits: dict[Key, RateLimit] = {}
        self._admitted: dict[Key, list[datetime]] = {}

    async def upsert(self, limit: RateLimit) -> RateLimit:
        key = (limit.tenant_id, limit.key)
        old = self._limits.get(key)
        stored = limit if old is None else evolve(limit, created_at=old.created_at)
        self._limits[key] = stored
        return stored

    async def get(self, tenant_id: str, key: str) -> RateLimit | None:
        return self._limits.get((tenant_id, key))

    async def list(self, tenant_id: str | None) -> builtins.list[RateLimit]:
        return [
            limit
            for ident, limit in sorted(self._limits.items())
            if tenant_id is None or ident[0] == tenant_id
        ]

    async def delete(self, tenant_id: str, key: str) -> bool:
        self._admitted.pop((tenant_id, key), None)
        return self._limits.pop((tenant_id, key), None) is not None

    async def acquire(
        self, tenant_id: str, key: str, now: datetime, held: datetime | None = None
    ) -> Admission | None:
        places = await self.acquire_many(tenant_id, key, lambda: now, [held])
        return None if places is None else places[0]

    async def acquire_many(
        self,
        tenant_id: str,
        key: str,
        now: Callable[[], datetime],
        helds: Sequence[datetime | None],
    ) -> builtins.list[Admission] | None:
        return self._decide(tenant_id, key, now(), helds)

    def _decide(
        self, tenant_id: str, key: str, now: datetime, helds: Sequence[datetime | None]
    ) -> builtins.list[Admission] | None:
        limit = self._limits.get((tenant_id, key))
        if limit is None:
            return None
        log = self._admitted.setdefault((tenant_id, key), [])
        places = []
        for held in helds:
            place = limit.keep(held, now)
            if place is None:
                if held is not None and held in log:  # lapsed, never used: given back
                    log.remove(held)
                place = limit.reserve(
                    now,
                    newest=log[-1] if log else None,
                    full_from=log[-limit.max_count] if len(log) >= limit.max_count else None,
                )
                insort(log, place.at)
            places.append(place)
        del log[: bisect_right(log, limit.prune_before(now))]
        return places
