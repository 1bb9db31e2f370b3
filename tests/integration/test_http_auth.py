"""API-key authentication over HTTP: every route needs the key, the root key manages
tenant keys, and a tenant key acts for its tenant only."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web

from orch8.bootstrap.settings import Settings
from orch8.entrypoints.http.auth import PUBLIC_ROUTES, is_public_route
from tests.integration.conftest import Api, MakeApi, step

ROOT_KEY = "root-key-for-tests-0123456789"
KEY_FIELDS = {"id", "tenant_id", "name", "capabilities", "created_at", "expires_at"}


@pytest.fixture
async def secured(make_api: MakeApi) -> Api:
    return await make_api(settings=Settings(run_migrations=False, api_key=ROOT_KEY))


async def mint(api: Api, tenant: str = "acme", **fields: Any) -> dict[str, Any]:
    reply = await api.call(
        "POST", "/api/v1/api-keys", json={"tenant_id": tenant, **fields}, key=ROOT_KEY
    )
    assert reply.status == 201, reply.body
    minted: dict[str, Any] = reply.body
    return minted


def concrete(path: str) -> str:
    """A request path for a route's declared path: each `{param}` filled in."""
    return re.sub(r"\{[^}]+\}", "x", path)


def router_routes(app: web.Application) -> list[tuple[str, str]]:
    found = []
    for route in app.router.routes():
        assert route.resource is not None
        found.append((route.method, route.resource.canonical))
    return found


# --- every route needs the key ------------------------------------------------------------


async def test_every_route_but_the_public_ones_needs_a_key(secured: Api) -> None:
    """Generated from the router, so a route added later cannot be forgotten."""
    routes = router_routes(secured.client.app)
    assert len(routes) > 40
    protected = [(m, p) for m, p in routes if not is_public_route(m, p)]
    public = [(m, p) for m, p in routes if is_public_route(m, p)]
    assert {"/health/live", "/health/ready"} <= {p for _, p in public}
    for method, path in protected:
        url = concrete(path)
        for key in (None, "wrong", "sk_" + "0" * 64, ROOT_KEY[:-1]):
            reply = await secured.call(method, url, key=key, tenant="acme")
            assert reply.status == 401, (method, path, key, reply.body)
    for method, path in public:
        reply = await secured.call(method, concrete(path))
        assert reply.status != 401, (method, path, reply.body)


async def test_metrics_openapi_and_unknown_routes_need_the_key(secured: Api) -> None:
    await secured.expect_error(401, "GET", "/api-docs/openapi.json", "x-api-key")
    for path in ("/metrics", "/swagger-ui", "/api/v1/nowhere", "/nowhere"):
        await secured.expect_error(401, "GET", path)
    doc = await secured.call("GET", "/api-docs/openapi.json", key=ROOT_KEY)
    assert doc.status == 200
    assert (await secured.call("GET", "/nowhere", key=ROOT_KEY)).status == 404


def test_the_public_routes_are_orch8s() -> None:
    assert PUBLIC_ROUTES == (("GET", "/health/*"), ("GET", "/info"), ("POST", "/webhooks/{slug}"))
    assert is_public_route("POST", "/webhooks/{slug}")
    assert not is_public_route("GET", "/webhooks/{slug}")
    assert not is_public_route("POST", "/health/live")
    assert not is_public_route("GET", "/api/v1/health/live")


async def test_the_openapi_document_marks_what_needs_the_key(secured: Api) -> None:
    doc = (await secured.call("GET", "/api-docs/openapi.json", key=ROOT_KEY)).body
    assert doc["security"] == [{"ApiKey": []}]
    assert doc["components"]["securitySchemes"]["ApiKey"]["name"] == "x-api-key"
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if is_public_route(method, path):
                assert op["security"] == [], path
            else:
                assert "401" in op["responses"], (method, path)


async def test_the_root_key_reaches_everything_and_scopes_by_header(secured: Api) -> None:
    body = {"tenant_id": "acme", "name": "welcome", "blocks": [step("a")]}
    reply = await secured.call("POST", "/api/v1/sequences", json=body, key=ROOT_KEY)
    assert reply.status == 201
    seq = reply.body["id"]
    assert (await secured.call("GET", f"/api/v1/sequences/{seq}", key=ROOT_KEY)).status == 200
    await secured.expect_error(404, "GET", f"/sequences/{seq}", key=ROOT_KEY, tenant="globex")


# --- minting, listing, revoking --------------------------------------------------------------


async def test_optional_fields_sent_as_null_count_as_absent(secured: Api) -> None:
    nulls = await mint(secured, "initech", capabilities=None, name=None, expires_at=None)
    assert (nulls["capabilities"], nulls["name"], nulls["expires_at"]) == (["operator"], "", None)


async def test_root_key_mints_lists_and_revokes(secured: Api) -> None:
    minted = await mint(secured, name="ci", capabilities=["worker", "auditor"])
    assert set(minted) == KEY_FIELDS | {"secret"}
    assert re.fullmatch(r"ak_[0-9a-f]{32}", minted["id"])
    assert re.fullmatch(r"sk_[0-9a-f]{64}", minted["secret"])
    assert minted["tenant_id"] == "acme"
    assert minted["name"] == "ci"
    assert minted["capabilities"] == ["worker", "auditor"]
    assert minted["expires_at"] is None
    default = await mint(secured, "globex")
    assert default["capabilities"] == ["operator"]
    assert default["name"] == ""
    assert default["secret"] != minted["secret"]

    listed = await secured.call("GET", "/api/v1/api-keys", key=ROOT_KEY)
    assert listed.status == 200
    assert [k["id"] for k in listed.body] == [minted["id"], default["id"]]
    for item in listed.body:
        assert set(item) == KEY_FIELDS | {"last_used_at", "revoked"}
        assert item["revoked"] is False
    assert minted["secret"] not in str(listed.body)
    only = await secured.call("GET", "/api-keys?tenant_id=globex", key=ROOT_KEY)
    assert [k["id"] for k in only.body] == [default["id"]]

    tasks = "/api/v1/workers/tasks"
    assert (await secured.call("GET", tasks, key=minted["secret"])).status == 200
    revoked = await secured.call("DELETE", f"/api/v1/api-keys/{minted['id']}", key=ROOT_KEY)
    assert (revoked.status, revoked.body) == (204, None)
    await secured.expect_error(401, "GET", tasks, "revoked", key=minted["secret"])
    listed = await secured.call("GET", "/api/v1/api-keys?tenant_id=acme", key=ROOT_KEY)
    assert listed.body[0]["revoked"] is True
    again = await secured.call("DELETE", f"/api-keys/{minted['id']}", key=ROOT_KEY)
    assert again.status == 204
    await secured.expect_error(
        404, "DELETE", "/api/v1/api-keys/ak_nobody", "ak_nobody", key=ROOT_KEY
    )


async def test_last_used_is_recorded(secured: Api) -> None:
    minted = await mint(secured)
    [before] = (await secured.call("GET", "/api/v1/api-keys", key=ROOT_KEY)).body
    assert before["last_used_at"] is None
    assert (await secured.call("GET", "/api/v1/sequences", key=minted["secret"])).status == 200
    [after] = (await secured.call("GET", "/api/v1/api-keys", key=ROOT_KEY)).body
    assert after["last_used_at"] is not None


async def test_a_tenant_key_cannot_manage_keys(secured: Api) -> None:
    secret = (await mint(secured))["secret"]
    other = await mint(secured, "acme")
    body = {"tenant_id": "acme"}
    for method, path, kwargs in (
        ("POST", "/api/v1/api-keys", {"json": body}),
        ("GET", "/api/v1/api-keys", {}),
        ("DELETE", f"/api/v1/api-keys/{other['id']}", {}),
    ):
        await secured.expect_error(403, method, path, "root API key", key=secret, **kwargs)
    assert (await secured.call("GET", "/api/v1/sequences", key=other["secret"])).status == 200


async def test_an_expired_key_is_refused(secured: Api) -> None:
    past = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    expired = await mint(secured, expires_at=past)
    await secured.expect_error(401, "GET", "/api/v1/sequences", "expired", key=expired["secret"])
    future = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    valid = await mint(secured, expires_at=future.isoformat())
    assert valid["expires_at"] == future.isoformat().replace("+00:00", "Z")
    assert (await secured.call("GET", "/api/v1/sequences", key=valid["secret"])).status == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "tenant_id"),
        ({"tenant_id": "  "}, "tenant_id"),
        ({"tenant_id": 7}, "tenant_id"),
        ({"tenant_id": "acme", "name": 3}, "name"),
        ({"tenant_id": "acme", "name": "n" * 256}, "name"),
        ({"tenant_id": "acme", "capabilities": "operator"}, "capabilities"),
        ({"tenant_id": "acme", "capabilities": ["operator", "superuser"]}, "capabilities[1]"),
        ({"tenant_id": "acme", "capabilities": ["Operator"]}, "capabilities[0]"),
        ({"tenant_id": "acme", "capabilities": [{}]}, "capabilities[0]"),
        ({"tenant_id": "acme", "expires_at": "next tuesday"}, "expires_at"),
        ({"tenant_id": "acme", "expires_at": "2027-01-01T00:00:00"}, "expires_at"),
        ([], "body"),
    ],
)
async def test_bad_key_requests_are_400_naming_the_field(
    secured: Api, body: Any, field: str
) -> None:
    await secured.expect_error(400, "POST", "/api/v1/api-keys", field, json=body, key=ROOT_KEY)


# --- a tenant key acts for its tenant ---------------------------------------------------------


async def test_a_tenant_key_writes_and_reads_as_its_tenant(secured: Api) -> None:
    secret = (await mint(secured))["secret"]
    body = {"name": "welcome", "blocks": [step("a")]}
    created = await secured.call("POST", "/api/v1/sequences", json=body, key=secret)
    assert created.status == 201, created.body
    seq = await secured.call("GET", f"/api/v1/sequences/{created.body['id']}", key=ROOT_KEY)
    assert seq.body["tenant_id"] == "acme"
    # The body, the header or the query naming another tenant does not widen the key.
    await secured.expect_error(
        403, "POST", "/api/v1/sequences", "acme", json={**body, "tenant_id": "globex"}, key=secret
    )
    await secured.expect_error(
        403, "GET", "/api/v1/sequences", "x-tenant-id", key=secret, tenant="globex"
    )
    same = await secured.call("GET", "/api/v1/sequences", key=secret, tenant="acme")
    assert [s["id"] for s in same.body["items"]] == [created.body["id"]]
    listed = await secured.call("GET", "/api/v1/sequences?tenant_id=globex", key=secret)
    assert listed.body["items"] == []


async def test_a_tenant_key_satisfies_the_required_tenant_header(make_api: MakeApi) -> None:
    settings = Settings(run_migrations=False, api_key=ROOT_KEY)
    api = await make_api(settings=settings, require_tenant_header=True)
    secret = (await mint(api))["secret"]
    assert (await api.call("GET", "/api/v1/sequences", key=secret)).status == 200
    await api.expect_error(400, "GET", "/api/v1/sequences", "x-tenant-id", key=ROOT_KEY)
    assert (await api.call("GET", "/api/v1/sequences", key=ROOT_KEY, tenant="a")).status == 200


async def test_capabilities_narrow_a_key_to_its_routes(secured: Api) -> None:
    worker = (await mint(secured, capabilities=["worker"]))["secret"]
    poll = {"handler_name": "email", "worker_id": "w1"}
    reply = await secured.call("POST", "/api/v1/workers/tasks/poll", json=poll, key=worker)
    assert (reply.status, reply.body) == (200, [])
    await secured.expect_error(403, "GET", "/api/v1/sequences", "capabilities", key=worker)
    auditor = (await mint(secured, capabilities=["auditor"]))["secret"]
    assert (await secured.call("GET", "/api/v1/instances", key=auditor)).status == 200
    body = {"name": "w", "blocks": [step("a")]}
    await secured.expect_error(403, "POST", "/api/v1/sequences", json=body, key=auditor)
    approver = (await mint(secured, capabilities=["approver"]))["secret"]
    signal = {"signal_type": "pause"}
    await secured.expect_error(
        404, "POST", "/api/v1/instances/x/signals", json=signal, key=approver
    )
    # Judged by the route, not the path as sent: an encoded '/' does not make it a signal.
    await secured.expect_error(
        403, "PATCH", "/api/v1/instances/x%2Fsignals/state", json={"state": "paused"}, key=approver
    )
    publisher = (await mint(secured, capabilities=["publisher"]))["secret"]
    reply = await secured.call("POST", "/sequences", json=body, key=publisher)
    assert reply.status == 201


# --- authentication off ---------------------------------------------------------------------


async def test_without_a_root_key_nothing_needs_a_key(api: Api) -> None:
    assert (await api.call("GET", "/api/v1/sequences")).status == 200
    assert (await api.call("GET", "/api/v1/sequences", key="anything")).status == 200
    minted = await api.call("POST", "/api/v1/api-keys", json={"tenant_id": "acme"})
    assert minted.status == 201
    assert (await api.call("GET", "/api/v1/api-keys")).status == 200
