"""The connection pool of one PostgreSQL storage, and the only ways the stores use it.

* The asyncpg pool opens lazily on first use (building the storage needs no
  event loop) and holds at most `max_connections` connections.
* Every statement the stores run goes through `fetch`/`execute` (one statement,
  its own implicit transaction) or `transaction` (several statements, one
  transaction). Both run in a task of their own, shielded from the caller: a
  caller that is cancelled stops waiting, but a claim or a commit already sent
  still finishes, and its connection goes back to the pool clean.
* Driver errors become the application's: a unique, foreign-key or other
  integrity violation is `Conflict`; a value PostgreSQL cannot store (a NUL
  character in text, U+0000 in JSON) or asyncpg cannot encode (a lone
  surrogate, an integer out of range) is `UnstorableValue`. A naive datetime
  stays a `ValueError`: it is the caller's mistake, not the store's limit.
* A statement or transaction that PostgreSQL rolled back to break a deadlock
  (or a serialization failure) had no effect, so it is simply run again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import asyncpg
import asyncpg.pool

# asyncpg raises this ValueError for an argument it cannot encode (a lone
# surrogate, an integer out of range) and exports it under no public name.
from asyncpg.exceptions._base import DataError as EncodingError

from orch8.application.errors import Conflict, UnstorableValue

T = TypeVar("T")
Record = asyncpg.Record
if TYPE_CHECKING:
    Connection: TypeAlias = asyncpg.pool.PoolConnectionProxy[Record]
else:
    Connection = asyncpg.pool.PoolConnectionProxy
Work = Callable[[Connection], Awaitable[T]]

# Errors caused by one write's data rather than by the database.
DATA_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.DataError,
    ValueError,
    OverflowError,
)


def translate(exc: BaseException, conflict: str) -> BaseException:
    """The application error for a driver error (or `exc` itself)."""
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return Conflict(f"{conflict} ({exc})")
    if isinstance(exc, asyncpg.DataError):  # refused by the server
        return UnstorableValue(f"PostgreSQL cannot store this value: {exc}")
    if isinstance(exc, EncodingError):
        return UnstorableValue(str(exc))
    return exc


ROLLBACK_RETRIES = 5


async def retry_rollbacks(call: Callable[[], Awaitable[T]]) -> T:
    """Run `call` (one statement, or one whole transaction) again when PostgreSQL
    rolled it back to break a deadlock: it had no effect, so repeating is safe."""
    for attempt in range(ROLLBACK_RETRIES):
        try:
            return await call()
        except asyncpg.TransactionRollbackError:
            if attempt == ROLLBACK_RETRIES - 1:
                raise
            await asyncio.sleep(0.005 * 2**attempt)
    raise AssertionError("unreachable")


def rows_affected(status: str) -> int:
    """The row count of a command status such as 'UPDATE 3' or 'INSERT 0 3'."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


class Database:
    def __init__(self, url: str, *, max_connections: int, min_connections: int = 1) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self._url = url
        self._max = max_connections
        self._min = max(0, min(min_connections, max_connections))
        self._pool: asyncpg.Pool | None = None
        self._open_lock = asyncio.Lock()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._closed = False

    async def pool(self) -> asyncpg.Pool:
        if self._closed:
            raise RuntimeError("PostgreSQL storage is closed")
        if self._pool is None:
            async with self._open_lock:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._url, min_size=self._min, max_size=self._max
                    )
        return self._pool

    async def _shielded(self, work: Work[T], conflict: str, *, atomic: bool) -> T:
        if self._closed:
            raise RuntimeError("PostgreSQL storage is closed")
        task = asyncio.ensure_future(self._run(work, conflict, atomic=atomic))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(task)

    async def _run(self, work: Work[T], conflict: str, *, atomic: bool) -> T:
        pool = await self.pool()
        try:
            async with pool.acquire() as conn:
                if not atomic:
                    return await work(conn)

                async def in_transaction() -> T:
                    async with conn.transaction():
                        return await work(conn)

                return await retry_rollbacks(in_transaction)
        except DATA_ERRORS as exc:
            raise translate(exc, conflict) from exc

    async def transaction(self, work: Work[T], *, conflict: str = "conflicting write") -> T:
        """Run `work` in one transaction: committed when it returns, rolled back
        when it raises."""
        return await self._shielded(work, conflict, atomic=True)

    async def with_connection(self, work: Work[T], *, conflict: str = "conflicting write") -> T:
        """Run `work` on one pooled connection, outside any explicit transaction
        (each statement commits on its own; `work` retries its own statements)."""
        return await self._shielded(work, conflict, atomic=False)

    async def fetch(self, sql: str, *args: Any) -> list[Record]:
        """One statement's rows."""

        async def run(conn: Connection) -> list[Record]:
            return list(await retry_rollbacks(lambda: conn.fetch(sql, *args)))

        return await self._shielded(run, "conflicting write", atomic=False)

    async def execute(self, sql: str, *args: Any, conflict: str = "conflicting write") -> str:
        """One statement; its command status ('UPDATE 3')."""

        async def run(conn: Connection) -> str:
            return str(await retry_rollbacks(lambda: conn.execute(sql, *args)))

        return await self._shielded(run, conflict, atomic=False)

    async def wait_idle(self) -> None:
        """Wait for every statement already started to finish."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Let started statements finish, then close the pool."""
        if self._closed:
            return
        await self.wait_idle()
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
