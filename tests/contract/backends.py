"""The storage backends the contract suite runs against, declared once.

Adding a backend is one entry in BACKENDS: a name and how to open `count`
storage objects on one fresh, empty database, as `count` processes sharing it
would (memory storage lives inside one process, so its "processes" share one
object). Every contract test reaches storage through here: the `storage` and
`two_stores` fixtures of conftest.py, or `Backend.stores` / `Backend.store`
for a test that opens storage itself. The opener gets the fixture request, for
backends that need a session fixture (PostgreSQL's server, tests/pg_server.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest
from attrs import frozen

from orch8.adapters.memory import MemoryStorage
from orch8.adapters.postgres import PostgresStorage
from orch8.adapters.sqlite import SqliteStorage
from orch8.application.ports.storage import Storage
from tests.pg_server import fresh_schema

# (request, a fresh directory, how many storage objects, pool size or None) -> the
# storage objects, unmigrated; the opener drops its database after they are closed.
Opener = Callable[
    [pytest.FixtureRequest, Path, int, int | None], AbstractAsyncContextManager[list[Storage]]
]


@asynccontextmanager
async def _memory(
    _request: pytest.FixtureRequest, _directory: Path, count: int, _pool: int | None
) -> AsyncIterator[list[Storage]]:
    store = MemoryStorage()
    yield [store] * count


@asynccontextmanager
async def _sqlite(
    _request: pytest.FixtureRequest, directory: Path, count: int, _pool: int | None
) -> AsyncIterator[list[Storage]]:
    path = str(directory / "orch8.db")
    yield [SqliteStorage(path) for _ in range(count)]


@asynccontextmanager
async def _postgres(
    request: pytest.FixtureRequest, _directory: Path, count: int, pool: int | None
) -> AsyncIterator[list[Storage]]:
    """A fresh schema on the session's server, dropped afterwards."""
    async with fresh_schema(request.getfixturevalue("postgres_url")) as url:
        if pool is None:
            yield [PostgresStorage(url) for _ in range(count)]
        else:
            yield [PostgresStorage(url, max_connections=pool) for _ in range(count)]


@frozen
class Backend:
    name: str
    opener: Opener

    @asynccontextmanager
    async def stores(
        self,
        request: pytest.FixtureRequest,
        directory: Path,
        count: int,
        *,
        pool: int | None = None,
        migrate: bool = True,
    ) -> AsyncIterator[tuple[Storage, ...]]:
        """`count` storage objects on one fresh database (migrated unless told not
        to), each closed afterwards, before the database is dropped. `pool` caps a
        pooled backend's connections per object."""
        async with AsyncExitStack() as stack:
            opened = await stack.enter_async_context(self.opener(request, directory, count, pool))
            distinct = list({id(store): store for store in opened}.values())
            for store in distinct:
                stack.push_async_callback(store.close)
            if migrate:
                for store in distinct:
                    await store.migrate()
            yield tuple(opened)

    @asynccontextmanager
    async def store(
        self,
        request: pytest.FixtureRequest,
        directory: Path,
        *,
        pool: int | None = None,
        migrate: bool = True,
    ) -> AsyncIterator[Storage]:
        """One storage object on a fresh database (see `stores`)."""
        async with self.stores(request, directory, 1, pool=pool, migrate=migrate) as (only,):
            yield only


MEMORY = Backend("memory", _memory)
SQLITE = Backend("sqlite", _sqlite)
POSTGRES = Backend("postgres", _postgres)

BACKENDS = (MEMORY, SQLITE, POSTGRES)
# The backends checked against the memory reference model.
REAL = tuple(b for b in BACKENDS if b is not MEMORY)


def backend_id(backend: Backend) -> str:
    return backend.name
