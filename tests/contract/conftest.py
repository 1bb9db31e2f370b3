"""The `storage` fixture: one migrated, empty Storage per backend.

Adding a backend is one line in BACKENDS: a name and an async context manager
that yields an unmigrated Storage (and cleans up after it). The factory gets the
fixture request, for backends that need a session fixture (PostgreSQL's server).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest
from attrs import frozen

from orch8.adapters.memory import MemoryStorage
from orch8.adapters.postgres import PostgresStorage
from orch8.adapters.sqlite import SqliteStorage
from orch8.application.ports.storage import Storage
from tests.pg_server import fresh_schema


@asynccontextmanager
async def memory_backend(_request: pytest.FixtureRequest, _tmp: Path) -> AsyncIterator[Storage]:
    yield MemoryStorage()


@asynccontextmanager
async def sqlite_backend(_request: pytest.FixtureRequest, tmp: Path) -> AsyncIterator[Storage]:
    yield SqliteStorage(str(tmp / "orch8.db"))


@asynccontextmanager
async def postgres_backend(request: pytest.FixtureRequest, _tmp: Path) -> AsyncIterator[Storage]:
    """A fresh schema on the session's server (tests/pg_server.py), dropped afterwards."""
    async with fresh_schema(request.getfixturevalue("postgres_url")) as url:
        yield PostgresStorage(url)


@frozen
class Backend:
    name: str
    open: Callable[[pytest.FixtureRequest, Path], AbstractAsyncContextManager[Storage]]


BACKENDS = [
    Backend("memory", memory_backend),
    Backend("sqlite", sqlite_backend),
    Backend("postgres", postgres_backend),
]


@pytest.fixture(params=BACKENDS, ids=lambda b: b.name)
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    backend: Backend = request.param
    async with backend.open(request, tmp_path) as store:
        await store.migrate()
        try:
            yield store
        finally:
            await store.close()
