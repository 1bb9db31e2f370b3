"""Block outputs in SQLite: read side only.

Outputs are written by the snapshot commit, in the same transaction as the step
that produced them; this store just lists them. "Oldest first" is created_at,
then insertion order (rowid) for outputs stamped with the same instant; the
index on (instance_id, created_at) carries rowid, so no sort step is needed.

`latest` is what templates read on every step, so it must not grow with the
instance's history: for each named block one backwards seek into the partial
index `idx_block_outputs_latest` (successful outputs by instance, block,
created_at, then rowid) finds the newest row; only those rows are read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence as Seq

from orch8.adapters.sqlite.connection import Database
from orch8.adapters.sqlite.rows import ROWS
from orch8.application.ports.storage import OutputStore
from orch8.domain.outputs import BlockOutput

FOR_INSTANCE = """
SELECT id, instance_id, block_id, output, output_ref, output_size, attempt, created_at
FROM block_outputs WHERE instance_id = ?
ORDER BY created_at ASC, rowid ASC
"""
# The literal `output_ref IS NULL` is what lets SQLite match the partial index.
LATEST = """
SELECT id, instance_id, block_id, output, output_ref, output_size, attempt, created_at
FROM block_outputs
WHERE rowid IN (
    SELECT (SELECT rowid FROM block_outputs
            WHERE instance_id = ?1 AND block_id = wanted.value AND output_ref IS NULL
            ORDER BY created_at DESC, rowid DESC
            LIMIT 1)
    FROM json_each(?2) AS wanted
)
"""


class SqliteOutputStore(OutputStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list_for_instance(self, instance_id: str) -> list[BlockOutput]:
        return [ROWS.output_from_row(r) for r in await self._db.read(FOR_INSTANCE, (instance_id,))]

    async def latest(self, instance_id: str, block_ids: Seq[str]) -> dict[str, BlockOutput]:
        wanted = list(dict.fromkeys(block_ids))
        if not wanted:
            return {}
        rows = await self._db.read(LATEST, (instance_id, json.dumps(wanted)))
        return {out.block_id: out for out in map(ROWS.output_from_row, rows)}
