"""The `storage` fixture: one migrated, empty Storage per backend.

Adding a backend is one line in BACKENDS: a name and an async context manager
that yields an unmigrated Storage (and cleans up after it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import pytest
from attrs import frozen

from orch8.adapters.memory import MemoryStorage
from orch8.adapters.sqlite import SqliteStorage
from orch8.application.ports.storage import Storage


@asynccontextmanager
async def memory_backend(_tmp: Path) -> AsyncIterator[Storage]:
    yield MemoryStorage()


@asynccontextmanager
async def sqlite_backend(tmp: Path) -> AsyncIterator[Storage]:
    yield SqliteStorage(str(tmp / "orch8.db"))


@frozen
class Backend:
    name: str
    open: Callable[[Path], AbstractAsyncContextManager[Storage]]


BACKENDS = [
    Backend("memory", memory_backend),
    Backend("sqlite", sqlite_backend),
]


@pytest.fixture(params=BACKENDS, ids=lambda b: b.name)
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    backend: Backend = request.param
    async with backend.open(tmp_path) as store:
        await store.migrate()
        try:
            yield store
        finally:
            await store.close()
