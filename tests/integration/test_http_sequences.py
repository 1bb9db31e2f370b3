"""Sequence routes: wire shapes, versions, paging and tenant scoping."""

from __future__ import annotations

import re
from typing import Any

RFC3339_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
CLIENT_ID = "550e8400-e29b-41d4-a716-446655440000"


def step(block_id: str, **extra: Any) -> dict[str, Any]:
    return {"type": "step", "id": block_id, "handler": "noop", "params": {}, **extra}


async def test_create_with_client_id_and_created_at(api):
    body = {
        "id": CLIENT_ID,
        "tenant_id": "acme",
        "namespace": "default",
        "name": "welcome-campaign",
        "version": 1,
        "blocks": [
            step(
                "send",
                retry={"max_attempts": 3, "initial_backoff": 500, "max_backoff": 9000},
                timeout=30000,
            ),
            step("wait", delay={"duration": 1.5}),
        ],
        "input_schema": {"type": "object"},
        "created_at": "2024-01-15T12:00:00+02:00",
    }
    reply = await api.call("POST", "/api/v1/sequences", json=body)
    assert (reply.status, reply.body) == (201, {"id": CLIENT_ID})

    got = await api.call("GET", f"/api/v1/sequences/{CLIENT_ID}")
    assert got.status == 200
    seq = got.body
    assert seq["id"] == CLIENT_ID
    assert seq["tenant_id"] == "acme"
    assert seq["namespace"] == "default"
    assert seq["name"] == "welcome-campaign"
    assert seq["version"] == 1
    assert seq["deprecated"] is False
    assert seq["created_at"] == "2024-01-15T10:00:00Z"
    assert seq["input_schema"] == {"type": "object"}
    send, wait = seq["blocks"]
    assert send["type"] == "step"
    assert send["id"] == "send"
    assert send["timeout"] == 30000
    assert send["retry"]["max_attempts"] == 3
    assert send["retry"]["initial_backoff"] == 500
    assert wait["delay"]["duration"] == 1500  # a float duration is seconds


async def test_server_fills_id_version_namespace_and_time(api):
    reply = await api.call(
        "POST", "/sequences", json={"tenant_id": "acme", "name": "n", "blocks": [step("a")]}
    )
    assert reply.status == 201
    assert set(reply.body) == {"id"}
    seq = (await api.call("GET", f"/sequences/{reply.body['id']}")).body
    assert seq["namespace"] == "default"
    assert seq["version"] == 1
    assert RFC3339_Z.match(seq["created_at"]), seq["created_at"]


async def test_versions_by_name_and_deprecate(api):
    v1 = await api.create_sequence("flow")
    v2 = await api.create_sequence("flow")
    await api.create_sequence("other")
    q = "tenant_id=acme&namespace=default&name=flow"

    versions = await api.call("GET", f"/api/v1/sequences/versions?{q}")
    assert versions.status == 200
    assert isinstance(versions.body, list)
    assert [(s["id"], s["version"]) for s in versions.body] == [(v2, 2), (v1, 1)]

    latest = await api.call("GET", f"/api/v1/sequences/by-name?{q}")
    assert (latest.body["id"], latest.body["version"]) == (v2, 2)
    pinned = await api.call("GET", f"/api/v1/sequences/by-name?{q}&version=1")
    assert pinned.body["id"] == v1

    dep = await api.call("POST", f"/api/v1/sequences/{v2}/deprecate")
    assert (dep.status, dep.body) == (204, None)
    assert (await api.call("GET", f"/api/v1/sequences/{v2}")).body["deprecated"] is True
    latest = await api.call("GET", f"/api/v1/sequences/by-name?{q}")
    assert latest.body["id"] == v1
    # A deprecated version stays reachable by number.
    pinned = await api.call("GET", f"/api/v1/sequences/by-name?{q}&version=2")
    assert pinned.body["id"] == v2


async def test_by_name_defaults_namespace_and_takes_tenant_from_header(api):
    seq_id = await api.create_sequence("flow")
    got = await api.call("GET", "/api/v1/sequences/by-name?name=flow", tenant="acme")
    assert got.body["id"] == seq_id


async def test_by_name_unknown_is_404(api):
    await api.create_sequence("flow")
    await api.expect_error(404, "GET", "/api/v1/sequences/by-name?tenant_id=acme&name=nope", "nope")
    await api.expect_error(
        404, "GET", "/api/v1/sequences/by-name?tenant_id=acme&name=flow&version=9", "flow"
    )


async def test_versions_of_unknown_name_is_an_empty_array(api):
    reply = await api.call("GET", "/api/v1/sequences/versions?tenant_id=acme&name=nope")
    assert (reply.status, reply.body) == (200, [])


async def test_explicit_duplicate_version_is_409(api):
    await api.create_sequence("flow", version=3)
    await api.expect_error(
        409,
        "POST",
        "/api/v1/sequences",
        json={"tenant_id": "acme", "name": "flow", "version": 3, "blocks": [step("a")]},
    )


async def test_list_pages_with_has_more(api):
    ids = [await api.create_sequence(f"s{i}") for i in range(3)]
    await api.create_sequence("elsewhere", tenant="other")

    page = await api.call("GET", "/api/v1/sequences?tenant_id=acme&limit=2")
    assert page.status == 200
    assert set(page.body) == {"items", "has_more"}
    assert len(page.body["items"]) == 2
    assert page.body["has_more"] is True
    rest = await api.call("GET", "/api/v1/sequences?tenant_id=acme&limit=2&offset=2")
    assert len(rest.body["items"]) == 1
    assert rest.body["has_more"] is False
    seen = {s["id"] for s in page.body["items"] + rest.body["items"]}
    assert seen == set(ids)

    exact = await api.call("GET", "/api/v1/sequences?tenant_id=acme&limit=3")
    assert (len(exact.body["items"]), exact.body["has_more"]) == (3, False)
    everyone = await api.call("GET", "/api/v1/sequences")
    assert len(everyone.body["items"]) == 4
    ns = await api.call("GET", "/api/v1/sequences?namespace=elsewhere")
    assert ns.body == {"items": [], "has_more": False}


async def test_limit_above_1000_is_clamped(api):
    await api.create_sequence()
    reply = await api.call("GET", "/api/v1/sequences?limit=5000")
    assert reply.status == 200
    assert len(reply.body["items"]) == 1


async def test_delete(api):
    seq_id = await api.create_sequence()
    reply = await api.call("DELETE", f"/api/v1/sequences/{seq_id}")
    assert (reply.status, reply.body) == (204, None)
    await api.expect_error(404, "GET", f"/api/v1/sequences/{seq_id}", seq_id)
    await api.expect_error(404, "DELETE", f"/api/v1/sequences/{seq_id}")


async def test_delete_of_a_sequence_in_use_is_409(api):
    seq_id = await api.create_sequence()
    await api.create_instance(seq_id)
    await api.expect_error(409, "DELETE", f"/api/v1/sequences/{seq_id}")
    assert (await api.call("GET", f"/api/v1/sequences/{seq_id}")).status == 200


async def test_unknown_sequence_is_404(api):
    for method, path in [
        ("GET", "/api/v1/sequences/missing"),
        ("POST", "/api/v1/sequences/missing/deprecate"),
        ("DELETE", "/api/v1/sequences/missing"),
    ]:
        await api.expect_error(404, method, path, "missing")


async def test_another_tenants_sequence_is_invisible(api):
    seq_id = await api.create_sequence("flow", tenant="acme")
    other = await api.create_sequence("flow", tenant="globex")
    for method, path in [
        ("GET", f"/api/v1/sequences/{seq_id}"),
        ("POST", f"/api/v1/sequences/{seq_id}/deprecate"),
        ("DELETE", f"/api/v1/sequences/{seq_id}"),
        ("GET", "/api/v1/sequences/by-name?tenant_id=acme&name=flow"),
    ]:
        await api.expect_error(404, method, path, tenant="globex")
    versions = await api.call(
        "GET", "/api/v1/sequences/versions?tenant_id=acme&name=flow", tenant="globex"
    )
    assert versions.body == []
    listed = await api.call("GET", "/api/v1/sequences", tenant="globex")
    assert [s["id"] for s in listed.body["items"]] == [other]
    asked = await api.call("GET", "/api/v1/sequences?tenant_id=acme", tenant="globex")
    assert asked.body == {"items": [], "has_more": False}
    # The owner still sees it, undeprecated.
    mine = await api.call("GET", f"/api/v1/sequences/{seq_id}", tenant="acme")
    assert mine.body["deprecated"] is False


async def test_body_tenant_contradicting_header_is_403(api):
    await api.expect_error(
        403,
        "POST",
        "/api/v1/sequences",
        "tenant_id",
        json={"tenant_id": "acme", "name": "x", "blocks": [step("a")]},
        tenant="globex",
    )


async def test_nesting_depth_64_is_accepted(api):
    reply = await api.call("POST", "/api/v1/sequences", json=_chain_body(64))
    assert reply.status == 201, reply.body
    got = await api.call("GET", f"/api/v1/sequences/{reply.body['id']}")
    assert got.status == 200


def _chain_body(depth: int) -> dict[str, object]:
    """A sequence whose blocks nest `depth` levels: cancellation scopes around a step."""
    block: dict[str, object] = step(f"b{depth}")
    for level in range(depth - 1, 0, -1):
        block = {"type": "cancellation_scope", "id": f"b{level}", "blocks": [block]}
    return {"tenant_id": "acme", "name": f"deep{depth}", "blocks": [block]}
