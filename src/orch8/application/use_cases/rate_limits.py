"""Configuring rate limits: per tenant and key, scoped like every other use case.

A limit belongs to one tenant; a caller acting for another tenant (its
`x-tenant-id`) sees it as absent. Validation is the domain's: `RateLimit`
refuses a bad field with a ValidationError naming it.
"""

from __future__ import annotations

import builtins

from attrs import frozen

from orch8.application.errors import NotFound
from orch8.application.ports.clock import Clock
from orch8.application.ports.storage import RateLimitStore
from orch8.application.use_cases.tenancy import effective_tenant, visible
from orch8.domain.rate_limits import RateLimit


@frozen
class LimitSpec:
    """What a client sets: the numbers of a limit (ranges are checked when the
    limit is built)."""

    max_count: int
    window_seconds: float


class RateLimitService:
    def __init__(self, rate_limits: RateLimitStore, clock: Clock) -> None:
        self._rate_limits = rate_limits
        self._clock = clock

    async def put(
        self, tenant_id: str | None, key: str, spec: LimitSpec, *, caller: str | None
    ) -> RateLimit:
        """Create the limit, or replace the numbers of an existing one."""
        tenant = effective_tenant(tenant_id, caller, default=None)
        now = self._clock.now()
        limit = RateLimit(
            tenant_id=tenant,
            key=key,
            max_count=spec.max_count,
            window_seconds=spec.window_seconds,
            created_at=now,
            updated_at=now,
        )
        return await self._rate_limits.upsert(limit)

    async def get(self, tenant_id: str, key: str, *, caller: str | None) -> RateLimit:
        found = None
        if visible(tenant_id, caller):
            found = await self._rate_limits.get(tenant_id, key)
        if found is None:
            raise NotFound("rate limit", key)
        return found

    async def update(
        self, tenant_id: str, key: str, spec: LimitSpec, *, caller: str | None
    ) -> RateLimit:
        """Replace the numbers of an existing limit (NotFound when there is none)."""
        current = await self.get(tenant_id, key, caller=caller)
        changed = RateLimit(
            tenant_id=current.tenant_id,
            key=current.key,
            max_count=spec.max_count,
            window_seconds=spec.window_seconds,
            created_at=current.created_at,
            updated_at=self._clock.now(),
        )
        return await self._rate_limits.upsert(changed)

    async def list(self, tenant_id: str | None, *, caller: str | None) -> builtins.list[RateLimit]:
        if caller is not None:
            if tenant_id not in (None, caller):
                return []
            tenant_id = caller
        return await self._rate_limits.list(tenant_id)

    async def delete(self, tenant_id: str, key: str, *, caller: str | None) -> None:
        if not visible(tenant_id, caller) or not await self._rate_limits.delete(tenant_id, key):
            raise NotFound("rate limit", key)
