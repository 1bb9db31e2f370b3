"""The commit side of a group-committed SnapshotStore, the same in both dialects.

A write is encoded by its caller (`prepare`), queued, and answered once the
batch it joined is committed. The dialect supplies how a batch is applied
(`apply_batch`) and how a snapshot is loaded.
"""

from __future__ import annotations

from orch8.adapters.sql.group_commit import ApplyBatch, GroupCommitter
from orch8.adapters.sql.prepared_writes import PreparedWrite, prepare
from orch8.adapters.sql.rows import Rows
from orch8.adapters.sql.task_rows import TaskRows
from orch8.application.ports.storage import SnapshotStore, SnapshotWrite


class SnapshotCommits(SnapshotStore):
    """Snapshot writes through one group-commit queue; `load` is the dialect's."""

    def __init__(
        self,
        apply_batch: ApplyBatch[PreparedWrite],
        *,
        max_batch: int,
        rows: Rows,
        task_rows: TaskRows,
    ) -> None:
        self._rows = rows
        self._task_rows = task_rows
        self._committer: GroupCommitter[PreparedWrite] = GroupCommitter(
            apply_batch, max_batch=max_batch
        )

    def prepare(self, write: SnapshotWrite) -> PreparedWrite:
        return prepare(write, self._rows, self._task_rows)

    async def commit(self, write: SnapshotWrite) -> None:
        """Queue `write` for the next group commit and wait for its COMMIT.

        Raises StaleWrite when the guard fails, Conflict when an output id or
        a child's id or idempotency key is taken, or a child names an unknown
        sequence (in both cases nothing of this write is stored), ValueError
        for an output that names another instance, and UnstorableValue for a
        value this store cannot hold.
        """
        await self._committer.submit(self.prepare(write))

    async def drain(self) -> None:
        """Wait until every commit queued so far has been committed or failed."""
        await self._committer.drain()
