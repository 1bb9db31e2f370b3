"""Fixtures for the REST API tests: a real aiohttp server on a loopback socket,
backed by real storage (SQLite in a temporary directory).

Every request goes through `Api.call`, which enforces the two rules that hold
for every route: no answer is ever a 500, and every error answer is JSON with
an `error` string.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from attrs import evolve, frozen
from multidict import CIMultiDictProxy

from orch8.adapters.sqlite import SqliteStorage
from orch8.application.ports.storage import Storage
from orch8.bootstrap.process import build
from orch8.bootstrap.settings import Settings
from orch8.entrypoints.http.app import create_app
from orch8.entrypoints.http.deps import ApiDeps


def api_deps(storage: Storage, *, settings: Settings | None = None, **fields: Any) -> ApiDeps:
    """The REST API's collaborators as the composition root builds them around
    `storage` (no engine started) from `settings` (defaults: no API key);
    `fields` replace some, e.g. a use case built with test-only options."""
    process = build(settings or Settings(run_migrations=False), storage=storage)
    return evolve(ApiDeps.of(process.use_cases, ready=storage.ping), **fields)


def make_storage(directory: Path) -> Storage:
    """A fresh SQLite database in `directory`: the tests run on real storage."""
    directory.mkdir(parents=True, exist_ok=True)
    return SqliteStorage(str(directory / "orch8.db"))


@frozen
class Reply:
    status: int
    body: Any
    headers: CIMultiDictProxy[str]


_UNSET: Any = object()


class Api:
    """A test client with the helpers every HTTP test needs."""

    def __init__(self, client: TestClient[Any, Any], storage: Storage) -> None:
        self.client = client
        self.storage = storage

    async def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = _UNSET,
        data: str | bytes | None = None,
        tenant: str | None = None,
        key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        hdrs = dict(headers or {})
        if tenant is not None:
            hdrs["x-tenant-id"] = tenant
        if key is not None:
            hdrs["x-api-key"] = key
        kwargs: dict[str, Any] = {"headers": hdrs}
        if json is not _UNSET:
            kwargs["json"] = json
        if data is not None:
            kwargs["data"] = data
            hdrs.setdefault("content-type", "application/json")
        async with self.client.request(method, path, **kwargs) as resp:
            raw = await resp.read()
            body: Any = None
            if raw:
                assert resp.content_type == "application/json", (resp.status, raw[:200])
                body = await resp.json()
            reply = Reply(resp.status, body, resp.headers)
        assert reply.status != 500, (method, path, reply.body)
        if reply.status >= 400:
            assert isinstance(reply.body, dict), reply.body
            assert isinstance(reply.body.get("error"), str), reply.body
            assert reply.body["error"], reply.body
        return reply

    async def expect_error(
        self, status: int, method: str, path: str, *fragments: str, **kwargs: Any
    ) -> str:
        """Make a request that must fail with `status`; the message must name each fragment."""
        reply = await self.call(method, path, **kwargs)
        assert reply.status == status, (reply.status, reply.body)
        message: str = reply.body["error"]
        for fragment in fragments:
            assert fragment in message, (fragment, message)
        return message

    async def create_sequence(
        self,
        name: str = "welcome",
        *,
        tenant: str = "acme",
        blocks: list[dict[str, Any]] | None = None,
        header: str | None = None,
        **extra: Any,
    ) -> str:
        body = {"tenant_id": tenant, "namespace": "default", "name": name, **extra}
        body["blocks"] = blocks if blocks is not None else [step("a")]
        reply = await self.call("POST", "/api/v1/sequences", json=body, tenant=header)
        assert reply.status == 201, reply.body
        seq_id: str = reply.body["id"]
        return seq_id

    async def create_instance(
        self, sequence_id: str, *, header: str | None = None, **extra: Any
    ) -> str:
        body = {"sequence_id": sequence_id, **extra}
        reply = await self.call("POST", "/api/v1/instances", json=body, tenant=header)
        assert reply.status == 201, reply.body
        assert reply.body["deduplicated"] is False
        inst_id: str = reply.body["id"]
        return inst_id


def step(block_id: str, **extra: Any) -> dict[str, Any]:
    return {"type": "step", "id": block_id, "handler": "noop", "params": {}, **extra}


MakeApi = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_api(tmp_path: Path) -> AsyncIterator[MakeApi]:
    """Start a server with the given `ApiDeps` options (and `settings=`: the
    composition root's, e.g. with an `api_key`), on its own fresh database."""
    opened: list[tuple[TestClient[Any, Any], Storage]] = []

    async def make(**options: Any) -> Api:
        storage = make_storage(tmp_path / f"db{len(opened)}")
        await storage.migrate()
        deps = api_deps(storage, **options)
        client: TestClient[Any, Any] = TestClient(TestServer(create_app(deps)))
        opened.append((client, storage))
        await client.start_server()
        return Api(client, storage)

    yield make
    for client, storage in opened:
        await client.close()
        await storage.close()


@pytest.fixture
async def api(make_api: MakeApi) -> Api:
    return await make_api()
