"""The SQLite connections of one storage, and the only ways the stores may use them.

aiosqlite runs each connection's statements on one worker thread, in order, but
an `await` between two statements lets another coroutine queue its own in
between. So:

* Every write transaction runs under one asyncio.Lock on the single write
  connection (`write`). SQLite allows one writer at a time anyway; the lock makes
  sure no coroutine's statement lands inside another's transaction.
* A write transaction runs in its own task, shielded from the caller: a caller
  that is cancelled stops waiting, but the transaction still ends with COMMIT or
  ROLLBACK, never half-open on the shared connection.
* Reads go to a second, query-only connection (WAL lets it read while the writer
  commits), so a lookup never queues behind a group commit's fsync. Each read
  is one statement, hence one consistent snapshot. An in-memory database cannot
  be shared by two connections, so there the reader is the writer and shares
  its lock.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar, cast

import aiosqlite

from orch8.application.errors import Conflict, UnstorableValue

T = TypeVar("T")
Row = tuple[Any, ...]
Work = Callable[[aiosqlite.Connection], Awaitable[T]]

SYNCHRONOUS_MODES = frozenset({"OFF", "NORMAL", "FULL", "EXTRA"})


async def fetch_all(conn: aiosqlite.Connection, sql: str, params: Iterable[Any] = ()) -> list[Row]:
    """Rows as plain tuples (no row factory is set on these connections)."""
    return cast(list[Row], list(await conn.execute_fetchall(sql, params)))


class Database:
    def __init__(self, path: str, *, synchronous: str, busy_timeout_ms: int) -> None:
        mode = synchronous.upper()
        if mode not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {sorted(SYNCHRONOUS_MODES)}")
        if busy_timeout_ms < 0:
            raise ValueError("busy_timeout_ms must not be negative")
        self._path = path
        self._synchronous = mode
        self._busy_timeout_ms = busy_timeout_ms
        # ":memory:" and "" give each connection its own private database.
        self._shared = path in ("", ":memory:")
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._open_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()
        # A separate reader needs no lock: every read is one statement, and
        # aiosqlite runs them in order on the reader's thread.
        self._read_lock = self._write_lock if self._shared else None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    async def _connections(self) -> tuple[aiosqlite.Connection, aiosqlite.Connection]:
        if self._closed:
            raise RuntimeError("SQLite storage is closed")
        if self._writer is None or self._reader is None:
            async with self._open_lock:
                if self._writer is None or self._reader is None:
                    await self._open()
        assert self._writer is not None and self._reader is not None
        return self._writer, self._reader

    async def _connect(self, *, query_only: bool) -> aiosqlite.Connection:
        # isolation_level=None: the sqlite3 module issues no implicit BEGIN/COMMIT;
        # every transaction boundary here is explicit.
        conn = await aiosqlite.connect(self._path, isolation_level=None)
        try:
            await conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            await conn.execute("PRAGMA foreign_keys = ON")
            if query_only:
                await conn.execute("PRAGMA query_only = ON")
            else:
                await conn.execute("PRAGMA journal_mode = WAL")
                await conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _open(self) -> None:
        writer = await self._connect(query_only=False)
        if self._shared:
            self._writer = self._reader = writer
            return
        try:
            reader = await self._connect(query_only=True)
        except BaseException:
            await writer.close()
            raise
        self._writer, self._reader = writer, reader

    def _spawn(self, coro: Awaitable[T]) -> asyncio.Future[T]:
        if self._closed:
            raise RuntimeError("SQLite storage is closed")
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def write(self, work: Work[T], *, conflict: str = "conflicting write") -> T:
        """Run `work` in one BEGIN IMMEDIATE transaction on the write connection.

        Committed when `work` returns, rolled back when it raises. A duplicate or
        a broken reference (sqlite3.IntegrityError) becomes Conflict(`conflict`);
        text the driver cannot encode (a lone surrogate) becomes UnstorableValue.
        """
        return await asyncio.shield(self._spawn(self._write(work, conflict)))

    async def _write(self, work: Work[T], conflict: str) -> T:
        writer, _ = await self._connections()
        async with self._write_lock:
            await writer.execute("BEGIN IMMEDIATE")
            try:
                result = await work(writer)
                await writer.execute("COMMIT")
            except BaseException as exc:
                # SQLite may already have rolled back (e.g. after SQLITE_FULL).
                if writer.in_transaction:
                    await writer.execute("ROLLBACK")
                if isinstance(exc, sqlite3.IntegrityError):
                    raise Conflict(f"{conflict} ({exc})") from exc
                if isinstance(exc, UnicodeEncodeError):
                    raise UnstorableValue(str(exc)) from exc
                raise
        return result

    async def read(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """One statement on the read connection (its own implicit transaction)."""
        _, reader = await self._connections()
        if self._read_lock is None:
            return await fetch_all(reader, sql, params)
        async with self._read_lock:  # shared connection: never read inside a write
            return await fetch_all(reader, sql, params)

    async def wait_idle(self) -> None:
        """Wait for every transaction already started to finish."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))  # unlike gather, never cancels them

    async def close(self) -> None:
        """Let started transactions finish, then close both connections."""
        if self._closed:
            return
        await self.wait_idle()
        self._closed = True
        writer, reader = self._writer, self._reader
        self._writer = self._reader = None
        if reader is not None and reader is not writer:
            await reader.close()
        if writer is not None:
            await writer.close()
