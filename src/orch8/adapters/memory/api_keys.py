"""API keys in memory: the reference for the SQLite and PostgreSQL adapters.

Keys by id, and an index from secret hash to id (both unique, as the SQL
schemas' constraints make them).
"""

from __future__ import annotations

import builtins
from datetime import datetime

from attrs import evolve

from orch8.application.errors import Conflict
from orch8.application.ports.storage import ApiKeyStore
from orch8.domain.api_keys import ApiKey


class MemoryApiKeyStore(ApiKeyStore):
    def __init__(self) -> None:
        self._keys: dict[str, ApiKey] = {}
        self._by_hash: dict[str, str] = {}

    async def create(self, key: ApiKey) -> None:
        if key.id in self._keys or key.key_hash in self._by_hash:
            raise Conflict(f"api key {key.id} already exists")
        self._keys[key.id] = key
        self._by_hash[key.key_hash] = key.id

    async def by_hash(self, key_hash: str) -> ApiKey | None:
        key_id = self._by_hash.get(key_hash)
        return None if key_id is None else self._keys[key_id]

    async def get(self, key_id: str) -> ApiKey | None:
        return self._keys.get(key_id)

    async def list(self, tenant_id: str | None) -> builtins.list[ApiKey]:
        found = [k for k in self._keys.values() if tenant_id is None or k.tenant_id == tenant_id]
        return sorted(found, key=lambda k: (k.created_at, k.id))

    async def revoke(self, key_id: str, now: datetime) -> bool:
        key = self._keys.get(key_id)
        if key is None:
            return False
        if key.revoked_at is None:
            self._keys[key_id] = evolve(key, revoked_at=now)
        return True

    async def touch(self, key_id: str, now: datetime, *, unless_after: datetime) -> None:
        key = self._keys.get(key_id)
        if key is not None and (key.last_used_at is None or key.last_used_at <= unless_after):
            self._keys[key_id] = evolve(key, last_used_at=now)
