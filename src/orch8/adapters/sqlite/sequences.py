"""Sequence versions in SQLite.

The definition (blocks, schemas, handlers) is one JSON document written by the
wire codec; the columns beside it are what lookups filter and sort on. The
unique (tenant_id, namespace, name, version) constraint is what makes two
concurrent creates of the same version end in one Conflict.
"""

from __future__ import annotations

import aiosqlite

from orch8.adapters.sql.columns import SEQUENCE
from orch8.adapters.sqlite.connection import Database, fetch_all
from orch8.adapters.sqlite.rows import ROWS
from orch8.application.errors import Conflict
from orch8.application.ports.storage import Page, SequenceFilter, SequenceStore
from orch8.domain.sequence import Sequence

INSERT = f"""
INSERT INTO sequences ({SEQUENCE})
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""  # noqa: S608 - constant columns
BY_ID = f"""
SELECT {SEQUENCE}
FROM sequences WHERE id = ?
"""  # noqa: S608 - constant columns
VERSIONS = f"""
SELECT {SEQUENCE}
FROM sequences WHERE tenant_id = ? AND namespace = ? AND name = ?
ORDER BY version DESC
"""  # noqa: S608 - constant columns
BY_VERSION = f"""
SELECT {SEQUENCE}
FROM sequences WHERE tenant_id = ? AND namespace = ? AND name = ? AND version = ?
"""  # noqa: S608 - constant columns
LATEST = f"""
SELECT {SEQUENCE}
FROM sequences WHERE tenant_id = ? AND namespace = ? AND name = ? AND deprecated = 0
ORDER BY version DESC LIMIT 1
"""  # noqa: S608 - constant columns
# Sequences are few; one statement with optional filters is enough here.
QUERY = f"""
SELECT {SEQUENCE}
FROM sequences
WHERE (:tenant_id IS NULL OR tenant_id = :tenant_id)
  AND (:namespace IS NULL OR namespace = :namespace)
  AND (:name IS NULL OR name = :name)
ORDER BY created_at DESC, id DESC LIMIT :limit OFFSET :offset
"""  # noqa: S608 - constant columns
DEPRECATE = "UPDATE sequences SET deprecated = 1 WHERE id = ?"
IN_USE = "SELECT 1 FROM task_instances WHERE sequence_id = ? LIMIT 1"
DELETE = "DELETE FROM sequences WHERE id = ?"


class SqliteSequenceStore(SequenceStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, sequence: Sequence) -> None:
        params = ROWS.sequence_params(sequence)

        async def insert(conn: aiosqlite.Connection) -> None:
            await conn.execute(INSERT, params)

        await self._db.write(
            insert,
            conflict=f"sequence {sequence.id} ('{sequence.name}' version "
            f"{sequence.version}) already exists",
        )

    async def get(self, sequence_id: str) -> Sequence | None:
        rows = await self._db.read(BY_ID, (sequence_id,))
        return ROWS.sequence_from_row(rows[0]) if rows else None

    async def get_by_name(
        self, tenant_id: str, namespace: str, name: str, version: int | None = None
    ) -> Sequence | None:
        if version is None:
            rows = await self._db.read(LATEST, (tenant_id, namespace, name))
        else:
            rows = await self._db.read(BY_VERSION, (tenant_id, namespace, name, version))
        return ROWS.sequence_from_row(rows[0]) if rows else None

    async def versions(self, tenant_id: str, namespace: str, name: str) -> list[Sequence]:
        rows = await self._db.read(VERSIONS, (tenant_id, namespace, name))
        return [ROWS.sequence_from_row(r) for r in rows]

    async def query(self, flt: SequenceFilter, page: Page) -> list[Sequence]:
        params = {
            "tenant_id": flt.tenant_id,
            "namespace": flt.namespace,
            "name": flt.name,
            "limit": max(page.limit, 0),
            "offset": max(page.offset, 0),
        }
        return [ROWS.sequence_from_row(r) for r in await self._db.read(QUERY, params)]

    async def deprecate(self, sequence_id: str) -> bool:
        async def update(conn: aiosqlite.Connection) -> bool:
            cursor = await conn.execute(DEPRECATE, (sequence_id,))
            return cursor.rowcount > 0

        return await self._db.write(update)

    async def delete(self, sequence_id: str) -> bool:
        async def delete(conn: aiosqlite.Connection) -> bool:
            if await fetch_all(conn, IN_USE, (sequence_id,)):
                raise Conflict(f"sequence {sequence_id} still has instances")
            cursor = await conn.execute(DELETE, (sequence_id,))
            return cursor.rowcount > 0

        return await self._db.write(delete, conflict=f"sequence {sequence_id} is in use")
