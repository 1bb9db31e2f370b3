"""Instance snapshots in PostgreSQL: one bounded load, and group-committed guarded writes.

How a write is applied (the guard, batching, failure isolation) is in
snapshot_writes.py; how concurrent writes share a statement is in
adapters/sql (group_commit.py, snapshot_commits.py). This module joins them
behind the SnapshotStore port.
"""

from __future__ import annotations

from functools import partial

from orch8.adapters.postgres.connection import Database
from orch8.adapters.postgres.rows import ROWS, TASK_ROWS
from orch8.adapters.postgres.snapshot_writes import apply_batch, wake_within
from orch8.adapters.sql.columns import INSTANCE, NODE
from orch8.adapters.sql.prepared_writes import PreparedWrite
from orch8.adapters.sql.snapshot_commits import SnapshotCommits
from orch8.application.ports.storage import SnapshotWrite
from orch8.domain.instance import Instance
from orch8.domain.tree import Node

# One statement, so one snapshot of the database: the instance row with its
# nodes (first-insertion order; an upsert keeps a node's insert_order) as an
# array of records, read through the execution_tree primary key.
LOAD = f"""
SELECT {INSTANCE},
       ARRAY(
           SELECT ROW({NODE})
           FROM execution_tree WHERE instance_id = $1 ORDER BY insert_order
       ) AS nodes
FROM task_instances WHERE id = $1
"""  # noqa: S608 - constant columns


class PostgresSnapshotStore(SnapshotCommits):
    def __init__(self, db: Database, *, max_batch: int) -> None:
        self._db = db
        super().__init__(
            partial(apply_batch, db), max_batch=max_batch, rows=ROWS, task_rows=TASK_ROWS
        )

    def prepare(self, write: SnapshotWrite) -> PreparedWrite:
        # One statement cannot update a row it also writes: a wake-up of the
        # write's own instance or child is folded into the write first.
        return super().prepare(wake_within(write))

    async def load(self, instance_id: str) -> tuple[Instance, list[Node]] | None:
        rows = await self._db.fetch(LOAD, instance_id)
        if not rows:
            return None
        row = rows[0]
        return ROWS.instance_from_row(row), [ROWS.node_from_row(n) for n in row["nodes"]]
