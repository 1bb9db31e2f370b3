"""The configurable limits, over HTTP, through the same composition `orch8 serve` uses:
settings -> `build` -> `serve.api_deps` -> the app. Every refusal is a 4xx JSON error
naming the field or parameter; none is a 500."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from orch8.bootstrap.process import build
from orch8.bootstrap.settings import Settings, load_settings
from orch8.entrypoints.http.app import create_app
from orch8.entrypoints.serve import api_deps
from tests.integration.conftest import Api, make_storage, step

LimitedApi = Callable[..., Awaitable[Api]]


@pytest.fixture
async def limited_api(tmp_path: Path) -> AsyncIterator[LimitedApi]:
    """An API built from settings read from these `ORCH8_*` variables (no engine)."""
    opened: list[TestClient[Any, Any]] = []
    processes = []

    async def make(**env: str) -> Api:
        settings = load_settings(env={"ORCH8_RUN_MIGRATIONS": "false", **env})
        storage = make_storage(tmp_path / f"db{len(opened)}")
        await storage.migrate()
        process = build(settings, storage=storage)
        processes.append(process)
        client: TestClient[Any, Any] = TestClient(TestServer(create_app(api_deps(process))))
        opened.append(client)
        await client.start_server()
        return Api(client, storage)

    yield make
    for client in opened:
        await client.close()
    for process in processes:
        await process.close()


def test_the_defaults_are_orch8s() -> None:
    s = Settings()
    assert s.max_request_body_bytes == 10 * 1024 * 1024
    assert s.max_context_bytes == 256 * 1024
    assert s.max_batch_instances == 10_000
    assert s.max_page_size == 1000
    assert s.max_sse_streams == 256


# -- request body ------------------------------------------------------------------


async def test_a_body_over_the_limit_is_413(limited_api: LimitedApi) -> None:
    api = await limited_api(ORCH8_MAX_REQUEST_BODY_BYTES="2048")
    body = {"name": "big", "tenant_id": "t", "blocks": [step("a")], "input_schema": {}}
    body["input_schema"] = {"description": "x" * 4096}
    await api.expect_error(413, "POST", "/api/v1/sequences", "2048", json=body)
    body["input_schema"] = {"description": "x" * 100}
    assert (await api.call("POST", "/api/v1/sequences", json=body)).status == 201


async def test_the_default_body_limit_is_ten_mebibytes(limited_api: LimitedApi) -> None:
    api = await limited_api(ORCH8_MAX_CONTEXT_BYTES="0")
    seq = await api.create_sequence()
    big = {"sequence_id": seq, "context": {"data": {"blob": "x" * (10 * 1024 * 1024)}}}
    raw = io.BytesIO(json.dumps(big).encode())
    headers = {"content-type": "application/json"}
    async with api.client.post("/api/v1/instances", data=raw, headers=headers) as resp:
        assert resp.status == 413
        assert str(10 * 1024 * 1024) in (await resp.json())["error"]


# -- context size ------------------------------------------------------------------


def _context(size: int) -> dict[str, Any]:
    return {"data": {"blob": "x" * size}}


async def test_a_context_over_max_context_bytes_is_413(limited_api: LimitedApi) -> None:
    api = await limited_api()  # Orch8's default: 256 KiB
    seq = await api.create_sequence()
    over = {"sequence_id": seq, "context": _context(300 * 1024)}
    await api.expect_error(413, "POST", "/api/v1/instances", "context", "262144", json=over)
    under = {"sequence_id": seq, "context": _context(200 * 1024)}
    assert (await api.call("POST", "/api/v1/instances", json=under)).status == 201


async def test_batch_and_context_replacement_check_the_context_too(
    limited_api: LimitedApi,
) -> None:
    api = await limited_api(ORCH8_MAX_CONTEXT_BYTES="1000")
    seq = await api.create_sequence()
    batch = {"instances": [{"sequence_id": seq}, {"sequence_id": seq, "context": _context(2000)}]}
    await api.expect_error(
        413, "POST", "/api/v1/instances/batch", "instances[1].context", json=batch
    )
    iid = await api.create_instance(seq, context=_context(10))
    path = f"/api/v1/instances/{iid}/context"
    await api.expect_error(413, "PATCH", path, "context", "1000", json={"context": _context(2000)})
    assert (await api.call("PATCH", path, json={"context": _context(100)})).status == 200


async def test_zero_disables_the_context_limit(limited_api: LimitedApi) -> None:
    api = await limited_api(ORCH8_MAX_CONTEXT_BYTES="0")
    seq = await api.create_sequence()
    await api.create_instance(seq, context=_context(400 * 1024))


# -- batch size --------------------------------------------------------------------


async def test_a_batch_over_the_limit_is_400_naming_instances(limited_api: LimitedApi) -> None:
    api = await limited_api(ORCH8_MAX_BATCH_INSTANCES="3")
    seq = await api.create_sequence()
    batch = {"instances": [{"sequence_id": seq}] * 4}
    await api.expect_error(400, "POST", "/api/v1/instances/batch", "instances", "3", json=batch)
    batch = {"instances": [{"sequence_id": seq}] * 3}
    reply = await api.call("POST", "/api/v1/instances/batch", json=batch)
    assert (reply.status, reply.body) == (201, {"count": 3})


async def test_the_served_document_states_the_configured_batch_limit(
    limited_api: LimitedApi,
) -> None:
    api = await limited_api(ORCH8_MAX_BATCH_INSTANCES="3")
    doc = (await api.call("GET", "/api-docs/openapi.json")).body
    batch = doc["components"]["schemas"]["BatchCreate"]["properties"]["instances"]
    assert batch["maxItems"] == 3


async def test_the_default_batch_limit_is_ten_thousand(limited_api: LimitedApi) -> None:
    api = await limited_api()
    batch = {"instances": [{"sequence_id": "s"}] * 10_001}
    await api.expect_error(
        400, "POST", "/api/v1/instances/batch", "instances", "10,000", json=batch
    )


# -- page size and query integers --------------------------------------------------


async def test_limit_is_clamped_to_max_page_size(limited_api: LimitedApi) -> None:
    api = await limited_api(ORCH8_MAX_PAGE_SIZE="2")
    seq = await api.create_sequence()
    for _ in range(3):
        await api.create_instance(seq)
    page = await api.call("GET", "/api/v1/instances?tenant_id=acme&limit=1000")
    assert (len(page.body["items"]), page.body["has_more"]) == (2, True)
    page = await api.call("GET", "/api/v1/instances?tenant_id=acme")  # default 100, clamped
    assert len(page.body["items"]) == 2
    sequences = await api.call("GET", "/api/v1/sequences?limit=4294967295")
    assert sequences.status == 200


LIST_ROUTES = [
    "/api/v1/instances",
    "/api/v1/instances/dlq",
    "/api/v1/sequences",
    "/api/v1/approvals",
    "/api/v1/workers/tasks",
]


@pytest.mark.parametrize("route", LIST_ROUTES)
@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("offset=99999999999999999999", "offset"),
        ("offset=9223372036854775808", "offset"),
        ("offset=-1", "offset"),
        ("limit=4294967296", "limit"),
        ("limit=0", "limit"),
        ("limit=1e3", "limit"),
        ("offset=" + "9" * 5000, "offset"),
    ],
)
async def test_out_of_range_paging_is_400_naming_the_parameter(
    limited_api: LimitedApi, route: str, query: str, name: str
) -> None:
    api = await limited_api()
    message = await api.expect_error(400, "GET", f"{route}?{query}", name)
    assert message.startswith(f"{name}:"), message


async def test_the_largest_offset_is_answered(limited_api: LimitedApi) -> None:
    api = await limited_api()
    for route in LIST_ROUTES:
        reply = await api.call("GET", f"{route}?offset=9223372036854775807&limit=4294967295")
        assert reply.status == 200, (route, reply.body)


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/v1/workers?alive_within_secs=499262875326", "alive_within_secs"),
        ("/api/v1/workers?alive_within_secs=0", "alive_within_secs"),
        ("/api/v1/sequences/by-name?tenant_id=t&name=n&version=99999999999", "version"),
    ],
)
async def test_other_out_of_range_integers_are_400(
    limited_api: LimitedApi, path: str, name: str
) -> None:
    api = await limited_api()
    await api.expect_error(400, "GET", path, name)


# -- live streams ------------------------------------------------------------------


async def test_streams_past_max_sse_streams_are_503(limited_api: LimitedApi) -> None:
    api = await limited_api(ORCH8_MAX_SSE_STREAMS="1")
    seq = await api.create_sequence()
    iid = await api.create_instance(seq)
    path = f"/api/v1/instances/{iid}/stream"
    first = await api.client.get(path)
    try:
        assert first.status == 200
        assert (await first.content.readline()).startswith(b"event: ")
        reply = await api.call("GET", path)
        assert reply.status == 503
        assert "1" in reply.body["error"]
        assert reply.headers["Retry-After"]
    finally:
        first.close()
