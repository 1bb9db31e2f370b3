"""Block outputs in SQLite: read side only.

Outputs are written by the snapshot commit, in the same transaction as the step
that produced them; this store just lists them. "Oldest first" is created_at,
then insertion order (rowid) for outputs stamped with the same instant; the
index on (instance_id, created_at) carries rowid, so no sort step is needed.
"""

from __future__ import annotations

from orch8.adapters.sqlite.connection import Database
from orch8.adapters.sqlite.rows import output_from_row
from orch8.application.ports.storage import OutputStore
from orch8.domain.outputs import BlockOutput

FOR_INSTANCE = """
SELECT id, instance_id, block_id, output, output_ref, output_size, attempt, created_at
FROM block_outputs WHERE instance_id = ?
ORDER BY created_at ASC, rowid ASC
"""


class SqliteOutputStore(OutputStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list_for_instance(self, instance_id: str) -> list[BlockOutput]:
        return [output_from_row(r) for r in await self._db.read(FOR_INSTANCE, (instance_id,))]
