"""PostgresStorage: the whole PostgreSQL backend behind the `Storage` port.

An asyncpg pool of at most `max_connections` connections, opened lazily on
first use, so building the object needs no event loop; `close()` waits for
queued commits first. Many orch8 processes may share one database: claims take
disjoint rows (FOR UPDATE SKIP LOCKED) and every state transition is guarded.
"""

from __future__ import annotations

from collections.abc import Callable

from orch8.adapters.postgres.api_keys import PostgresApiKeyStore
from orch8.adapters.postgres.connection import Database
from orch8.adapters.postgres.cron import PostgresCronStore
from orch8.adapters.postgres.instances import PostgresInstanceStore
from orch8.adapters.postgres.migrate import migrate
from orch8.adapters.postgres.outputs import PostgresOutputStore
from orch8.adapters.postgres.rate_limits import PostgresRateLimitStore
from orch8.adapters.postgres.sequences import PostgresSequenceStore
from orch8.adapters.postgres.signals import PostgresSignalInbox
from orch8.adapters.postgres.snapshots import PostgresSnapshotStore
from orch8.adapters.postgres.task_listener import TaskListener
from orch8.adapters.postgres.tasks import PostgresTaskQueue
from orch8.adapters.sql.storage import SqlStorage
from orch8.application.ports.storage import Storage


class PostgresStorage(SqlStorage, Storage):
    """PostgreSQL storage at `url` (`postgresql://user:pass@host:port/db?sslmode=...`,
    or `postgres://...`).

    `max_connections`: the pool's size, i.e. the most statements in flight at once.
    `max_commit_batch`: most snapshot writes group-committed in one statement;
    1 gives one statement per write.
    """

    def __init__(self, url: str, *, max_connections: int = 16, max_commit_batch: int = 512) -> None:
        self._db = Database(url, max_connections=max_connections)
        self._committed = PostgresSnapshotStore(self._db, max_batch=max_commit_batch)
        self._task_listener = TaskListener(url)
        super().__init__(
            sequences=PostgresSequenceStore(self._db),
            instances=PostgresInstanceStore(self._db),
            snapshots=self._committed,
            outputs=PostgresOutputStore(self._db),
            signals=PostgresSignalInbox(self._db),
            tasks=PostgresTaskQueue(self._db),
            cron=PostgresCronStore(self._db),
            rate_limits=PostgresRateLimitStore(self._db),
            api_keys=PostgresApiKeyStore(self._db),
        )

    async def listen(self, callback: Callable[[str], None]) -> None:
        """Call `callback(handler_name)` whenever any process sharing this database
        creates tasks for (or hands back tasks of) that handler: LISTEN orch8_tasks on
        a dedicated connection, closed by `close()`."""
        await self._task_listener.start(callback)

    async def migrate(self, *, target: int | None = None) -> None:
        """Apply pending migrations (up to `target` when given); safe to repeat,
        and safe to run from several processes at once."""
        await migrate(self._db, target=target)

    async def ping(self) -> None:
        await self._db.fetch("SELECT 1")

    async def close(self) -> None:
        await self._task_listener.close()
        await self._committed.drain()
        await self._db.close()
