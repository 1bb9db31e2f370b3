"""Block outputs in PostgreSQL: read side only.

Outputs are written by the snapshot commit, in the same statement as the step
that produced them; this store just lists them. "Oldest first" is created_at,
then insertion order (insert_order) for outputs stamped with the same instant,
which is the order of the index on (instance_id, created_at, insert_order).

`latest` is what templates read on every step, so it must not grow with the
instance's history: for each named block a LATERAL subquery takes the first
entry of the partial index `idx_block_outputs_latest` (successful outputs by
instance, block, newest first); only those rows are read.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq

from orch8.adapters.postgres.connection import Database
from orch8.adapters.postgres.rows import ROWS
from orch8.application.ports.storage import OutputStore
from orch8.domain.outputs import BlockOutput

FOR_INSTANCE = """
SELECT id, instance_id, block_id, output, output_ref, output_size, attempt, created_at
FROM block_outputs WHERE instance_id = $1
ORDER BY created_at ASC, insert_order ASC
"""
# The literal `output_ref IS NULL` is what lets the planner use the partial index
# in a generic (prepared) plan.
LATEST = """
SELECT o.id, o.instance_id, o.block_id, o.output, o.output_ref, o.output_size, o.attempt,
       o.created_at
FROM unnest($2::text[]) AS wanted (block_id)
CROSS JOIN LATERAL (
    SELECT * FROM block_outputs
    WHERE instance_id = $1 AND block_id = wanted.block_id AND output_ref IS NULL
    ORDER BY created_at DESC, insert_order DESC
    LIMIT 1
) AS o
"""


class PostgresOutputStore(OutputStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list_for_instance(self, instance_id: str) -> list[BlockOutput]:
        return [ROWS.output_from_row(r) for r in await self._db.fetch(FOR_INSTANCE, instance_id)]

    async def latest(self, instance_id: str, block_ids: Seq[str]) -> dict[str, BlockOutput]:
        wanted = list(dict.fromkeys(block_ids))
        if not wanted:
            return {}
        rows = await self._db.fetch(LATEST, instance_id, wanted)
        return {out.block_id: out for out in map(ROWS.output_from_row, rows)}
