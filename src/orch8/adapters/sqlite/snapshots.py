"""Instance snapshots in SQLite: one bounded load, and group-committed guarded writes.

How a write is applied (the guard, its savepoints, batching) is in
snapshot_writes.py; how concurrent writes share a transaction is in
adapters/sql (group_commit.py, snapshot_commits.py). This module joins them
behind the SnapshotStore port.
"""

from __future__ import annotations

import json

import aiosqlite

from orch8.adapters.sql.columns import INSTANCE, NODE
from orch8.adapters.sql.prepared_writes import PreparedWrite
from orch8.adapters.sql.snapshot_commits import SnapshotCommits
from orch8.adapters.sqlite.connection import Database
from orch8.adapters.sqlite.rows import ROWS, TASK_ROWS
from orch8.adapters.sqlite.snapshot_writes import Outcome, apply_batch
from orch8.domain.instance import Instance
from orch8.domain.tree import Node

# One statement, so one consistent read and one hop to the driver thread: the
# instance row plus its nodes as a JSON array of rows, in rowid order (first
# insertion; an upsert keeps a node's rowid).
LOAD = f"""
SELECT {INSTANCE},
       (SELECT json_group_array(json_array({NODE}))
        FROM (SELECT * FROM execution_tree WHERE instance_id = t.id ORDER BY rowid))
FROM task_instances AS t WHERE id = ?
"""  # noqa: S608 - constant columns


class SqliteSnapshotStore(SnapshotCommits):
    def __init__(self, db: Database, *, max_batch: int) -> None:
        self._db = db

        async def in_one_transaction(items: list[PreparedWrite]) -> list[Outcome]:
            async def apply_all(conn: aiosqlite.Connection) -> list[Outcome]:
                return await apply_batch(conn, items)

            return await db.write(apply_all)

        super().__init__(in_one_transaction, max_batch=max_batch, rows=ROWS, task_rows=TASK_ROWS)

    async def load(self, instance_id: str) -> tuple[Instance, list[Node]] | None:
        rows = await self._db.read(LOAD, (instance_id,))
        if not rows:
            return None
        *instance, nodes = rows[0]
        return ROWS.instance_from_row(instance), [ROWS.node_from_row(n) for n in json.loads(nodes)]
