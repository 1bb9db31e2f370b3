"""Sequence versions in PostgreSQL.

The definition (blocks, schemas, handlers) is one JSONB document written by the
wire codec; the columns beside it are what lookups filter and sort on. The
unique (tenant_id, namespace, name, version) constraint is what makes two
concurrent creates of the same version end in one Conflict; the foreign key
from task_instances is what makes deleting a sequence in use a Conflict, even
against an instance created concurrently.
"""

from __future__ import annotations

from orch8.adapters.postgres.connection import Database, rows_affected
from orch8.adapters.postgres.rows import ROWS
from orch8.adapters.sql.columns import SEQUENCE
from orch8.application.ports.storage import Page, SequenceFilter, SequenceStore
from orch8.domain.sequence import Sequence

INSERT = f"""
INSERT INTO sequences ({SEQUENCE})
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
"""  # noqa: S608 - constant columns
BY_ID = f"""
SELECT {SEQUENCE}
FROM sequences WHERE id = $1
"""  # noqa: S608 - constant columns
VERSIONS = f"""
SELECT {SEQUENCE}
FROM sequences
WHERE tenant_id = $1 AND namespace = $2 AND name = $3
ORDER BY version DESC
"""  # noqa: S608 - constant columns
BY_VERSION = f"""
SELECT {SEQUENCE}
FROM sequences
WHERE tenant_id = $1 AND namespace = $2 AND name = $3 AND version = $4
"""  # noqa: S608 - constant columns
LATEST = f"""
SELECT {SEQUENCE}
FROM sequences
WHERE tenant_id = $1 AND namespace = $2 AND name = $3 AND NOT deprecated
ORDER BY version DESC LIMIT 1
"""  # noqa: S608 - constant columns
# Sequences are few; one statement with optional filters is enough here.
QUERY = f"""
SELECT {SEQUENCE}
FROM sequences
WHERE ($1::text IS NULL OR tenant_id = $1)
  AND ($2::text IS NULL OR namespace = $2)
  AND ($3::text IS NULL OR name = $3)
ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5
"""  # noqa: S608 - constant columns
DEPRECATE = "UPDATE sequences SET deprecated = TRUE WHERE id = $1"
DELETE = "DELETE FROM sequences WHERE id = $1"


class PostgresSequenceStore(SequenceStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, sequence: Sequence) -> None:
        await self._db.execute(
            INSERT,
            *ROWS.sequence_params(sequence),
            conflict=f"sequence {sequence.id} ('{sequence.name}' version "
            f"{sequence.version}) already exists",
        )

    async def get(self, sequence_id: str) -> Sequence | None:
        rows = await self._db.fetch(BY_ID, sequence_id)
        return ROWS.sequence_from_row(rows[0]) if rows else None

    async def get_by_name(
        self, tenant_id: str, namespace: str, name: str, version: int | None = None
    ) -> Sequence | None:
        if version is None:
            rows = await self._db.fetch(LATEST, tenant_id, namespace, name)
        else:
            rows = await self._db.fetch(BY_VERSION, tenant_id, namespace, name, version)
        return ROWS.sequence_from_row(rows[0]) if rows else None

    async def versions(self, tenant_id: str, namespace: str, name: str) -> list[Sequence]:
        rows = await self._db.fetch(VERSIONS, tenant_id, namespace, name)
        return [ROWS.sequence_from_row(r) for r in rows]

    async def query(self, flt: SequenceFilter, page: Page) -> list[Sequence]:
        rows = await self._db.fetch(
            QUERY,
            flt.tenant_id,
            flt.namespace,
            flt.name,
            max(page.limit, 0),
            max(page.offset, 0),
        )
        return [ROWS.sequence_from_row(r) for r in rows]

    async def deprecate(self, sequence_id: str) -> bool:
        return rows_affected(await self._db.execute(DEPRECATE, sequence_id)) > 0

    async def delete(self, sequence_id: str) -> bool:
        # The only violation a DELETE can meet is the instances' foreign key.
        status = await self._db.execute(
            DELETE, sequence_id, conflict=f"sequence {sequence_id} still has instances"
        )
        return rows_affected(status) > 0
