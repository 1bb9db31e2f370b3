"""`/rate-limits` over HTTP, on real SQLite storage: CRUD, tenancy, bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from orch8.adapters.system import SystemClock
from orch8.entrypoints.http.app import create_app
from tests.integration.conftest import Api, api_deps, make_storage

V1 = "/api/v1"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    storage = make_storage(tmp_path / "db")
    await storage.migrate()
    deps = api_deps(storage)
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(deps)))
    await client.start_server()
    try:
        yield Api(client, storage)
    finally:
        await client.close()
        await storage.close()


def new_limit(**overrides: Any) -> dict[str, Any]:
    return {"tenant_id": "acme", "key": "smtp", "max_count": 50, "window_seconds": 1, **overrides}


async def test_create_get_list_update_delete(api: Api) -> None:
    created = await api.call("POST", f"{V1}/rate-limits", json=new_limit())
    assert created.status == 201, created.body
    body = created.body
    assert {k: body[k] for k in ("tenant_id", "key", "max_count", "window_seconds")} == {
        "tenant_id": "acme",
        "key": "smtp",
        "max_count": 50,
        "window_seconds": 1.0,
    }
    assert body["created_at"] == body["updated_at"]
    assert body["created_at"].endswith("Z")

    got = await api.call("GET", f"{V1}/rate-limits/smtp?tenant_id=acme")
    assert (got.status, got.body) == (200, body)
    by_header = await api.call("GET", f"{V1}/rate-limits/smtp", tenant="acme")
    assert (by_header.status, by_header.body) == (200, body)

    await api.call("POST", f"{V1}/rate-limits", json=new_limit(key="sms", max_count=5))
    await api.call("POST", f"{V1}/rate-limits", json=new_limit(tenant_id="other"))
    listed = await api.call("GET", f"{V1}/rate-limits?tenant_id=acme")
    assert listed.status == 200
    assert [x["key"] for x in listed.body["items"]] == ["sms", "smtp"]
    assert listed.body["has_more"] is False
    everyone = await api.call("GET", f"{V1}/rate-limits")
    assert [(x["tenant_id"], x["key"]) for x in everyone.body["items"]] == [
        ("acme", "sms"),
        ("acme", "smtp"),
        ("other", "smtp"),
    ]

    put = await api.call(
        "PUT",
        f"{V1}/rate-limits/smtp?tenant_id=acme",
        json={"max_count": 100, "window_seconds": 60.5},
    )
    assert put.status == 200, put.body
    assert (put.body["max_count"], put.body["window_seconds"]) == (100, 60.5)
    assert put.body["created_at"] == body["created_at"]
    assert put.body["updated_at"] >= body["updated_at"]
    assert (await api.call("GET", f"{V1}/rate-limits/smtp", tenant="acme")).body == put.body

    deleted = await api.call("DELETE", f"{V1}/rate-limits/smtp?tenant_id=acme")
    assert (deleted.status, deleted.body) == (204, None)
    await api.expect_error(404, "GET", f"{V1}/rate-limits/smtp?tenant_id=acme", "smtp")
    await api.expect_error(404, "DELETE", f"{V1}/rate-limits/smtp?tenant_id=acme", "smtp")
    other = await api.call("GET", f"{V1}/rate-limits/smtp?tenant_id=other")
    assert other.status == 200


async def test_post_replaces_the_numbers_of_an_existing_limit(api: Api) -> None:
    first = (await api.call("POST", "/rate-limits", json=new_limit())).body
    again = await api.call("POST", "/rate-limits", json=new_limit(max_count=7))
    assert again.status == 201
    assert again.body["max_count"] == 7
    assert again.body["created_at"] == first["created_at"]


async def test_the_limit_is_applied_by_storage(api: Api) -> None:
    await api.call("POST", f"{V1}/rate-limits", json=new_limit(max_count=1, window_seconds=30))
    rl = api.storage.rate_limits
    now = SystemClock().now()
    first = await rl.acquire("acme", "smtp", now)
    assert first is not None and first.at == now
    second = await rl.acquire("acme", "smtp", now)
    assert second is not None
    assert (second.at - now).total_seconds() == 30.025  # the window plus its 25-ms grace
    await api.call("DELETE", f"{V1}/rate-limits/smtp?tenant_id=acme")
    assert await rl.acquire("acme", "smtp", now) is None


async def test_keys_with_slashes_and_the_bare_mount(api: Api) -> None:
    created = await api.call("POST", "/rate-limits", json=new_limit(key="smtp/eu-1"))
    assert created.status == 201
    assert created.headers.get("Deprecation")
    got = await api.call("GET", f"{V1}/rate-limits/smtp%2Feu-1?tenant_id=acme")
    assert got.status == 200, got.body
    assert got.body["key"] == "smtp/eu-1"
    assert (await api.call("GET", f"{V1}/rate-limits/smtp/eu-1?tenant_id=acme")).status == 200


async def test_tenant_header_scopes_every_call(api: Api) -> None:
    await api.call("POST", f"{V1}/rate-limits", json=new_limit())
    # Created for the header's tenant when the body names none.
    made = await api.call(
        "POST",
        f"{V1}/rate-limits",
        json={"key": "sms", "max_count": 1, "window_seconds": 1},
        tenant="beta",
    )
    assert (made.status, made.body["tenant_id"]) == (201, "beta")
    await api.expect_error(
        403, "POST", f"{V1}/rate-limits", "tenant_id", json=new_limit(), tenant="beta"
    )
    # Another tenant's limit is absent, never forbidden.
    await api.expect_error(404, "GET", f"{V1}/rate-limits/smtp?tenant_id=acme", tenant="beta")
    await api.expect_error(404, "DELETE", f"{V1}/rate-limits/smtp?tenant_id=acme", tenant="beta")
    await api.expect_error(
        404,
        "PUT",
        f"{V1}/rate-limits/smtp?tenant_id=acme",
        json={"max_count": 1, "window_seconds": 1},
        tenant="beta",
    )
    listed = await api.call("GET", f"{V1}/rate-limits", tenant="beta")
    assert [(x["tenant_id"], x["key"]) for x in listed.body["items"]] == [("beta", "sms")]
    assert (await api.call("GET", f"{V1}/rate-limits?tenant_id=acme", tenant="beta")).body[
        "items"
    ] == []
    assert (await api.call("GET", f"{V1}/rate-limits/smtp?tenant_id=acme")).status == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (new_limit(max_count=0), "max_count"),
        (new_limit(max_count=-5), "max_count"),
        (new_limit(max_count=2.5), "max_count"),
        (new_limit(max_count="50"), "max_count"),
        (new_limit(max_count=True), "max_count"),
        (new_limit(max_count=2**31), "max_count"),
        ({k: v for k, v in new_limit().items() if k != "max_count"}, "max_count"),
        (new_limit(window_seconds=0), "window_seconds"),
        (new_limit(window_seconds=-1), "window_seconds"),
        (new_limit(window_seconds="1s"), "window_seconds"),
        (new_limit(window_seconds=None), "window_seconds"),
        (new_limit(window_seconds=[1]), "window_seconds"),
        (new_limit(window_seconds=1e-9), "window_seconds"),
        (new_limit(window_seconds=10**12), "window_seconds"),
        ({k: v for k, v in new_limit().items() if k != "key"}, "key"),
        (new_limit(key=""), "key"),
        (new_limit(key=5), "key"),
        (new_limit(key="a\nb"), "key"),
        (new_limit(tenant_id=""), "tenant_id"),
        ({k: v for k, v in new_limit().items() if k != "tenant_id"}, "tenant_id"),
        ([new_limit()], "body"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field(api: Api, body: Any, field: str) -> None:
    await api.expect_error(400, "POST", f"{V1}/rate-limits", field, json=body)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"max_count": 0, "window_seconds": 1}, "max_count"),
        ({"max_count": -3, "window_seconds": 1}, "max_count"),
        ({"max_count": 3, "window_seconds": 0}, "window_seconds"),
        ({"max_count": 3, "window_seconds": -0.5}, "window_seconds"),
        ({"max_count": 3, "window_seconds": "x"}, "window_seconds"),
        ({"window_seconds": 1}, "max_count"),
        ({"max_count": 3}, "window_seconds"),
        ({"max_count": 3, "window_seconds": 1, "key": "sms"}, "key"),
        ({"max_count": 3, "window_seconds": 1, "tenant_id": "beta"}, "tenant_id"),
    ],
)
async def test_bad_update_is_a_400_naming_the_field(api: Api, body: Any, field: str) -> None:
    await api.call("POST", f"{V1}/rate-limits", json=new_limit())
    await api.expect_error(400, "PUT", f"{V1}/rate-limits/smtp?tenant_id=acme", field, json=body)
    unchanged = await api.call("GET", f"{V1}/rate-limits/smtp?tenant_id=acme")
    assert unchanged.body["max_count"] == 50


async def test_lookups_need_a_tenant(api: Api) -> None:
    for method in ("GET", "DELETE"):
        await api.expect_error(400, method, f"{V1}/rate-limits/smtp", "tenant_id")
    await api.expect_error(400, "PUT", f"{V1}/rate-limits/smtp", "tenant_id", json={"max_count": 1})


async def test_malformed_json_is_a_400(api: Api) -> None:
    await api.expect_error(400, "POST", f"{V1}/rate-limits", "body", data="{nope")
    await api.expect_error(400, "POST", f"{V1}/rate-limits", "body", data="")


async def test_unknown_limits_are_404(api: Api) -> None:
    await api.expect_error(404, "GET", f"{V1}/rate-limits/nope?tenant_id=acme", "nope")
    await api.expect_error(
        404,
        "PUT",
        f"{V1}/rate-limits/nope?tenant_id=acme",
        "nope",
        json={"max_count": 1, "window_seconds": 1},
    )
    await api.expect_error(404, "DELETE", f"{V1}/rate-limits/nope?tenant_id=acme", "nope")
