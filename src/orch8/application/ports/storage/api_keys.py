"""`ApiKeyStore`: tenant API keys, kept as the hashes of their secrets."""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Protocol

from orch8.domain.api_keys import ApiKey


class ApiKeyStore(Protocol):
    """Tenant keys. Authentication looks a key up by the hash of the presented
    secret on every request (an indexed read), so a revocation is seen by every
    process sharing the store at once: nothing is cached."""

    async def create(self, key: ApiKey) -> None:
        """Store a new key; Conflict when its id or its hash is already stored."""
        ...

    async def by_hash(self, key_hash: str) -> ApiKey | None:
        """The key whose secret hashes to `key_hash` (revoked and expired ones included)."""
        ...

    async def get(self, key_id: str) -> ApiKey | None: ...

    async def list(self, tenant_id: str | None) -> builtins.list[ApiKey]:
        """The keys of one tenant (None: of every tenant), oldest first (created_at, id)."""
        ...

    async def revoke(self, key_id: str, now: datetime) -> bool:
        """Mark the key revoked at `now` (an already revoked key keeps its first
        instant); False when there is no such key."""
        ...

    async def touch(self, key_id: str, now: datetime, *, unless_after: datetime) -> None:
        """Set last_used_at to `now`, unless it is already later than `unless_after`
        (so a busy key costs one write per interval, not one per request)."""
        ...
