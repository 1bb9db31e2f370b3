"""API keys in SQLite: looked up by the hash of the presented secret (a unique index)."""

from __future__ import annotations

import builtins
from datetime import datetime

import aiosqlite

from orch8.adapters.sql.columns import API_KEY
from orch8.adapters.sqlite.connection import Database
from orch8.adapters.sqlite.rows import API_KEY_ROWS, to_us
from orch8.application.ports.storage import ApiKeyStore
from orch8.domain.api_keys import ApiKey

INSERT = f"""
INSERT INTO api_keys ({API_KEY})
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""  # noqa: S608 - constant columns
BY_HASH = f"SELECT {API_KEY} FROM api_keys WHERE key_hash = ?"  # noqa: S608 - constant columns
BY_ID = f"SELECT {API_KEY} FROM api_keys WHERE id = ?"  # noqa: S608 - constant columns
LIST_ALL = f"SELECT {API_KEY} FROM api_keys ORDER BY created_at, id"  # noqa: S608
LIST_TENANT = f"""
SELECT {API_KEY}
FROM api_keys WHERE tenant_id = ? ORDER BY created_at, id
"""  # noqa: S608 - constant columns
REVOKE = "UPDATE api_keys SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?"
TOUCH = """
UPDATE api_keys SET last_used_at = ?
WHERE id = ? AND (last_used_at IS NULL OR last_used_at <= ?)
"""


class SqliteApiKeyStore(ApiKeyStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, key: ApiKey) -> None:
        params = API_KEY_ROWS.key_params(key)

        async def insert(conn: aiosqlite.Connection) -> None:
            await conn.execute(INSERT, params)

        await self._db.write(insert, conflict=f"api key {key.id} already exists")

    async def by_hash(self, key_hash: str) -> ApiKey | None:
        rows = await self._db.read(BY_HASH, (key_hash,))
        return API_KEY_ROWS.key_from_row(rows[0]) if rows else None

    async def get(self, key_id: str) -> ApiKey | None:
        rows = await self._db.read(BY_ID, (key_id,))
        return API_KEY_ROWS.key_from_row(rows[0]) if rows else None

    async def list(self, tenant_id: str | None) -> builtins.list[ApiKey]:
        if tenant_id is None:
            rows = await self._db.read(LIST_ALL)
        else:
            rows = await self._db.read(LIST_TENANT, (tenant_id,))
        return [API_KEY_ROWS.key_from_row(r) for r in rows]

    async def revoke(self, key_id: str, now: datetime) -> bool:
        async def revoke(conn: aiosqlite.Connection) -> bool:
            cursor = await conn.execute(REVOKE, (to_us(now), key_id))
            return cursor.rowcount > 0

        return await self._db.write(revoke)

    async def touch(self, key_id: str, now: datetime, *, unless_after: datetime) -> None:
        async def touch(conn: aiosqlite.Connection) -> None:
            await conn.execute(TOUCH, (to_us(now), key_id, to_us(unless_after)))

        await self._db.write(touch)
