"""SqliteStorage: the whole SQLite backend behind the `Storage` port.

One file, two connections (one writer, one query-only reader; see
connection.py), WAL journal, `synchronous=FULL` by default so that a committed
step survives a power cut. Connections open lazily on first use, so building
the object needs no event loop; `close()` waits for queued commits first, and
must be called: aiosqlite's connection threads keep the process alive until then.
"""

from __future__ import annotations

from orch8.adapters.sql.storage import SqlStorage
from orch8.adapters.sqlite.api_keys import SqliteApiKeyStore
from orch8.adapters.sqlite.connection import Database
from orch8.adapters.sqlite.cron import SqliteCronStore
from orch8.adapters.sqlite.instances import SqliteInstanceStore
from orch8.adapters.sqlite.migrate import migrate
from orch8.adapters.sqlite.outputs import SqliteOutputStore
from orch8.adapters.sqlite.rate_limits import SqliteRateLimitStore
from orch8.adapters.sqlite.sequences import SqliteSequenceStore
from orch8.adapters.sqlite.signals import SqliteSignalInbox
from orch8.adapters.sqlite.snapshots import SqliteSnapshotStore
from orch8.adapters.sqlite.tasks import SqliteTaskQueue
from orch8.application.ports.storage import Storage


class SqliteStorage(SqlStorage, Storage):
    """SQLite storage at `path` (a file path, or ":memory:" for a private,
    single-connection database).

    `synchronous`: SQLite's durability level, OFF, NORMAL, FULL (default) or EXTRA.
    `busy_timeout_ms`: how long a statement waits for another process's lock.
    `max_commit_batch`: most snapshot writes group-committed in one transaction;
    1 gives one transaction per write.
    """

    def __init__(
        self,
        path: str,
        *,
        synchronous: str = "FULL",
        busy_timeout_ms: int = 5000,
        max_commit_batch: int = 512,
    ) -> None:
        self._db = Database(path, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms)
        self._committed = SqliteSnapshotStore(self._db, max_batch=max_commit_batch)
        super().__init__(
            sequences=SqliteSequenceStore(self._db),
            instances=SqliteInstanceStore(self._db),
            snapshots=self._committed,
            outputs=SqliteOutputStore(self._db),
            signals=SqliteSignalInbox(self._db),
            tasks=SqliteTaskQueue(self._db),
            cron=SqliteCronStore(self._db),
            rate_limits=SqliteRateLimitStore(self._db),
            api_keys=SqliteApiKeyStore(self._db),
        )

    async def migrate(self, *, target: int | None = None) -> None:
        """Apply pending migrations (up to `target` when given); safe to repeat."""
        await migrate(self._db, target=target)

    async def ping(self) -> None:
        await self._db.read("SELECT 1")

    async def close(self) -> None:
        await self._committed.drain()
        await self._db.close()
