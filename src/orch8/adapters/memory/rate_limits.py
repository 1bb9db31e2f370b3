"""Rate limits in memory: the reference for the SQLite and PostgreSQL adapters.

One event loop and no await between reading and writing, so every method is
atomic. The admission log of each key is kept sorted by instant.
"""

from __future__ import annotations

import builtins
from bisect import bisect_right, insort
from datetime import datetime

from attrs import evolve

from orch8.application.ports.storage import RateLimitStore
from orch8.domain.rate_limits import RateLimit

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

    async def acquire(self, tenant_id: str, key: str, now: datetime) -> datetime | None:
        limit = self._limits.get((tenant_id, key))
        if limit is None:
            return None
        log = self._admitted.setdefault((tenant_id, key), [])
        recent = log[bisect_right(log, now - limit.window) :]
        retry_at = limit.admission(recent, now)
        if retry_at is not None:
            return retry_at
        insort(log, now)
        del log[: bisect_right(log, limit.prune_before(now))]
        return None
