"""Block outputs in PostgreSQL: read side only.

Outputs are written by the snapshot commit, in the same statement as the step
that produced them; this store just lists them. "Oldest first" is created_at,
then insertion order (insert_order) for outputs stamped with the same instant,
which is the order of the index on (instance_id, created_at, insert_order).
"""

from __future__ import annotations

from orch8.adapters.postgres.connection import Database
from orch8.adapters.postgres.rows import output_from_row
from orch8.application.ports.storage import OutputStore
from orch8.domain.outputs import BlockOutput

FOR_INSTANCE = """
SELECT id, instance_id, block_id, output, output_ref, output_size, attempt, created_at
FROM block_outputs WHERE instance_id = $1
ORDER BY created_at ASC, insert_order ASC
"""


class PostgresOutputStore(OutputStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list_for_instance(self, instance_id: str) -> list[BlockOutput]:
        return [output_from_row(r) for r in await self._db.fetch(FOR_INSTANCE, instance_id)]
