"""Instance snapshots in PostgreSQL: one bounded load, and group-committed guarded writes.

How a write is applied (the guard, batching, failure isolation) is in
snapshot_writes.py; how concurrent writes share a statement is in
group_commit.py. This module joins them behind the SnapshotStore port.
"""

from __future__ import annotations

from functools import partial

from orch8.adapters.postgres.connection import Database
from orch8.adapters.postgres.rows import instance_from_row, node_from_row
from orch8.adapters.postgres.snapshot_writes import PreparedWrite, apply_batch, prepare
from orch8.application.group_commit import GroupCommitter
from orch8.application.ports.storage import SnapshotStore, SnapshotWrite
from orch8.domain.instance import Instance
from orch8.domain.tree import Node

# One statement, so one snapshot of the database: the instance row with its
# nodes (first-insertion order; an upsert keeps a node's insert_order) as an
# array of records, read through the execution_tree primary key.
LOAD = """
SELECT id, sequence_id, tenant_id, namespace, state, next_fire_at, priority, timezone,
       metadata, context, concurrency_key, max_concurrency, idempotency_key,
       parent_instance_id, created_at, updated_at,
       ARRAY(
           SELECT ROW(block_id, block_type, state, parent_id, branch_index, attempts,
                      not_before, started_at, completed_at, error, iteration, branch, ref,
                      reserved_at)
           FROM execution_tree WHERE instance_id = $1 ORDER BY insert_order
       ) AS nodes
FROM task_instances WHERE id = $1
"""


class PostgresSnapshotStore(SnapshotStore):
    def __init__(self, db: Database, *, max_batch: int) -> None:
        self._db = db
        self._committer: GroupCommitter[PreparedWrite] = GroupCommitter(
            partial(apply_batch, db), max_batch=max_batch
        )

    async def load(self, instance_id: str) -> tuple[Instance, list[Node]] | None:
        rows = await self._db.fetch(LOAD, instance_id)
        if not rows:
            return None
        row = rows[0]
        return instance_from_row(row), [node_from_row(n) for n in row["nodes"]]

    async def commit(self, write: SnapshotWrite) -> None:
        """Queue `write` for the next group commit and wait for its COMMIT.

        Raises StaleWrite when the guard fails, Conflict when an output id or
        a child's id or idempotency key is taken, or a child names an unknown
        sequence (in both cases nothing of this write is stored), and
        ValueError for an output that names another instance or a value
        PostgreSQL cannot store.
        """
        await self._committer.submit(prepare(write))

    async def drain(self) -> None:
        """Wait until every commit queued so far has been committed or failed."""
        await self._committer.drain()
