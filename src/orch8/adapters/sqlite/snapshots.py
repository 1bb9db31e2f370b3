"""Instance snapshots in SQLite: one bounded load, and group-committed guarded writes.

How a write is applied (the guard, its savepoints, batching) is in
snapshot_writes.py; how concurrent writes share a transaction is in
group_commit.py. This module joins them behind the SnapshotStore port.
"""

from __future__ import annotations

import aiosqlite

from orch8.adapters.sqlite.connection import Database, fetch_all
from orch8.adapters.sqlite.group_commit import GroupCommitter
from orch8.adapters.sqlite.instances import BY_ID
from orch8.adapters.sqlite.rows import instance_from_row, node_from_row
from orch8.adapters.sqlite.snapshot_writes import PreparedWrite, apply_batch, prepare
from orch8.application.ports.storage import SnapshotStore, SnapshotWrite
from orch8.domain.instance import Instance
from orch8.domain.tree import Node

# rowid order is first-insertion order: an upsert keeps a node's rowid.
NODES = """
SELECT block_id, block_type, state, parent_id, branch_index, attempts,
       not_before, started_at, completed_at, error
FROM execution_tree WHERE instance_id = ? ORDER BY rowid
"""


class SqliteSnapshotStore(SnapshotStore):
    def __init__(self, db: Database, *, max_batch: int) -> None:
        self._db = db
        self._committer: GroupCommitter[PreparedWrite] = GroupCommitter(
            db, apply_batch, max_batch=max_batch
        )

    async def load(self, instance_id: str) -> tuple[Instance, list[Node]] | None:
        """Two reads (instance row, its nodes) in one read transaction."""

        async def read(conn: aiosqlite.Connection) -> tuple[Instance, list[Node]] | None:
            rows = await fetch_all(conn, BY_ID, (instance_id,))
            if not rows:
                return None
            nodes = await fetch_all(conn, NODES, (instance_id,))
            return instance_from_row(rows[0]), [node_from_row(n) for n in nodes]

        return await self._db.snapshot(read)

    async def commit(self, write: SnapshotWrite) -> None:
        """Queue `write` for the next group commit and wait for its COMMIT.

        Raises StaleWrite when the guard fails, Conflict when an output id is
        taken (in both cases nothing of this write is stored), and ValueError
        for an output that names another instance.
        """
        await self._committer.submit(prepare(write))

    async def drain(self) -> None:
        """Wait until every commit queued so far has been committed or failed."""
        await self._committer.drain()
