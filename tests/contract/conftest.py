"""The storage fixtures, one run per backend of `backends.BACKENDS`.

`storage`: one migrated, empty Storage. `two_stores`: two storage objects on
one database, as two processes sharing it have (memory: one object twice).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orch8.application.ports.storage import Storage
from tests.contract.backends import BACKENDS, Backend, backend_id


@pytest.fixture(params=BACKENDS, ids=backend_id)
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    backend: Backend = request.param
    async with backend.store(request, tmp_path) as store:
        yield store


@pytest.fixture(params=BACKENDS, ids=backend_id)
async def two_stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[Storage, Storage]]:
    backend: Backend = request.param
    async with backend.stores(request, tmp_path, 2) as (first, second):
        yield first, second
