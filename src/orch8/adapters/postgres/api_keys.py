"""API keys in PostgreSQL: looked up by the hash of the presented secret (a unique
index), on every request, so a revocation committed by one process is refused by
the next request to any process sharing the database."""

from __future__ import annotations

import builtins
from datetime import datetime

from orch8.adapters.postgres.connection import Database, rows_affected
from orch8.adapters.postgres.rows import API_KEY_ROWS, aware
from orch8.adapters.sql.columns import API_KEY
from orch8.application.ports.storage import ApiKeyStore
from orch8.domain.api_keys import ApiKey

INSERT = f"""
INSERT INTO api_keys ({API_KEY})
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
"""  # noqa: S608 - constant columns
BY_HASH = f"SELECT {API_KEY} FROM api_keys WHERE key_hash = $1"  # noqa: S608 - constant columns
BY_ID = f"SELECT {API_KEY} FROM api_keys WHERE id = $1"  # noqa: S608 - constant columns
LIST = f"""
SELECT {API_KEY}
FROM api_keys WHERE ($1::text IS NULL OR tenant_id = $1) ORDER BY created_at, id
"""  # noqa: S608 - constant columns
REVOKE = "UPDATE api_keys SET revoked_at = coalesce(revoked_at, $2) WHERE id = $1"
TOUCH = """
UPDATE api_keys SET last_used_at = $2
WHERE id = $1 AND (last_used_at IS NULL OR last_used_at <= $3)
"""


class PostgresApiKeyStore(ApiKeyStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, key: ApiKey) -> None:
        await self._db.execute(
            INSERT, *API_KEY_ROWS.key_params(key), conflict=f"api key {key.id} already exists"
        )

    async def by_hash(self, key_hash: str) -> ApiKey | None:
        rows = await self._db.fetch(BY_HASH, key_hash)
        return API_KEY_ROWS.key_from_row(rows[0]) if rows else None

    async def get(self, key_id: str) -> ApiKey | None:
        rows = await self._db.fetch(BY_ID, key_id)
        return API_KEY_ROWS.key_from_row(rows[0]) if rows else None

    async def list(self, tenant_id: str | None) -> builtins.list[ApiKey]:
        rows = await self._db.fetch(LIST, tenant_id)
        return [API_KEY_ROWS.key_from_row(r) for r in rows]

    async def revoke(self, key_id: str, now: datetime) -> bool:
        return rows_affected(await self._db.execute(REVOKE, key_id, aware(now))) > 0

    async def touch(self, key_id: str, now: datetime, *, unless_after: datetime) -> None:
        await self._db.execute(TOUCH, key_id, aware(now), aware(unless_after))
