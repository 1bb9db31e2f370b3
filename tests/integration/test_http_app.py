"""Cross-cutting behaviour of the REST app: health, OpenAPI, mounts, tenancy, errors."""

from __future__ import annotations

import pytest
from aiohttp import web

from orch8.application import errors as app_errors
from orch8.entrypoints.http.errors import STATUS_OF
from orch8.entrypoints.http.openapi import document


async def test_liveness(api):
    reply = await api.call("GET", "/health/live")
    assert (reply.status, reply.body) == (200, {"status": "ok"})


async def test_readiness(api):
    reply = await api.call("GET", "/health/ready")
    assert (reply.status, reply.body) == (200, {"status": "ready"})


async def test_readiness_fails_with_503_when_storage_is_down(make_api):
    async def broken() -> None:
        raise ConnectionError("database at /secret/path unreachable")

    api = await make_api(ready=broken)
    reply = await api.call("GET", "/health/ready")
    assert reply.status == 503
    assert "secret" not in reply.body["error"]


async def test_health_is_root_only(api):
    await api.expect_error(404, "GET", "/api/v1/health/live")


def _router_operations(app: web.Application) -> set[tuple[str, str]]:
    ops = set()
    for route in app.router.routes():
        assert route.resource is not None
        ops.add((route.method.lower(), route.resource.canonical))
    return ops


async def test_openapi_document_matches_the_router(api):
    reply = await api.call("GET", "/api-docs/openapi.json")
    assert reply.status == 200
    doc = reply.body
    assert doc["openapi"].startswith("3.1")
    assert doc == document()
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == _router_operations(api.client.app)
    op_ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(op_ids) == len(set(op_ids))


async def test_openapi_references_resolve(api):
    doc = (await api.call("GET", "/api-docs/openapi.json")).body

    def refs(node):
        if isinstance(node, dict):
            if "$ref" in node:
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for target in set(refs(doc)):
        _, section, kind, name = target.split("/")
        assert name in doc[section][kind], target


async def test_openapi_is_root_only(api):
    await api.expect_error(404, "GET", "/api/v1/api-docs/openapi.json")


def test_every_application_error_has_a_status() -> None:
    """A use-case error missing from the middleware's table would answer 500."""
    raised = [
        cls
        for cls in vars(app_errors).values()
        if isinstance(cls, type)
        and issubclass(cls, app_errors.ApplicationError)
        and cls is not app_errors.ApplicationError
    ]
    assert raised
    for cls in raised:
        assert any(issubclass(cls, kind) for kind, _ in STATUS_OF), cls


@pytest.mark.parametrize(
    "path", ["/api/v1/cron", "/api/v1/rate-limits", "/api/v1/workers", "/api/v1/approvals"]
)
async def test_the_composition_root_gives_every_resource_its_use_case(api, path):
    """The API is built from the composition root's `UseCases`: no route can lack its
    use case (there is no partially wired server to answer 503 for it)."""
    reply = await api.call("GET", path)
    assert reply.status == 200, reply.body


async def test_unknown_route_is_json_404(api):
    await api.expect_error(404, "GET", "/api/v1/nope", "/api/v1/nope")
    await api.expect_error(404, "GET", "/nope")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/api/v1/sequences"),
        ("PATCH", "/sequences/x"),
        ("POST", "/api/v1/instances/x"),
        ("DELETE", "/api/v1/instances"),
        ("POST", "/health/live"),
    ],
)
async def test_wrong_method_is_json_405(api, method, path):
    reply = await api.call(method, path)
    assert reply.status == 405
    assert method in reply.body["error"]
    assert reply.headers["Allow"]


async def test_too_large_body_is_json_413(make_api):
    api = await make_api(max_body_bytes=1024)
    padding = "x" * 4096
    body = {"name": "big", "tenant_id": "t", "blocks": [], "input_schema": {"p": padding}}
    await api.expect_error(413, "POST", "/api/v1/sequences", "1024", json=body)


async def test_bare_mount_carries_orch8_deprecation_headers(api):
    bare = await api.call("GET", "/sequences?limit=1")
    assert bare.status == 200
    assert bare.headers["Deprecation"] == "@1767225600"
    assert bare.headers["Sunset"] == "Sat, 01 Jan 2028 00:00:00 GMT"
    assert bare.headers["Link"] == '</api/v1/sequences?limit=1>; rel="successor-version"'
    canonical = await api.call("GET", "/api/v1/sequences")
    assert "Deprecation" not in canonical.headers
    health = await api.call("GET", "/health/live")
    assert "Deprecation" not in health.headers


async def test_both_mounts_serve_the_same_objects(api):
    seq_id = await api.create_sequence()
    bare = await api.call(
        "POST",
        "/sequences",
        json={
            "tenant_id": "acme",
            "name": "other",
            "blocks": [{"type": "step", "id": "a", "handler": "noop"}],
        },
    )
    assert bare.status == 201
    for prefix in ("", "/api/v1"):
        got = await api.call("GET", f"{prefix}/sequences/{seq_id}")
        assert got.status == 200
        assert got.body["id"] == seq_id
        listed = await api.call("GET", f"{prefix}/sequences")
        assert {s["id"] for s in listed.body["items"]} == {seq_id, bare.body["id"]}
    inst_bare = await api.call("POST", "/instances", json={"sequence_id": seq_id})
    assert inst_bare.status == 201
    got = await api.call("GET", f"/api/v1/instances/{inst_bare.body['id']}")
    assert got.status == 200


async def test_required_tenant_header(make_api):
    api = await make_api(require_tenant_header=True)
    await api.expect_error(400, "GET", "/api/v1/sequences", "x-tenant-id header is required")
    msg = await api.expect_error(400, "POST", "/sequences", json={"name": "x"})
    assert msg == "x-tenant-id header is required"
    await api.expect_error(400, "GET", "/api/v1/sequences", "x-tenant-id", tenant="  ")
    assert (await api.call("GET", "/api/v1/sequences", tenant="acme")).status == 200
    assert (await api.call("GET", "/health/live")).status == 200
    assert (await api.call("GET", "/health/ready")).status == 200
    # An unknown route is still a 404, not a tenant complaint.
    await api.expect_error(404, "GET", "/api/v1/nowhere")


async def test_header_tenant_is_used_when_the_body_has_none(api):
    seq_id = await api.create_sequence(tenant=None, header="acme")
    got = await api.call("GET", f"/api/v1/sequences/{seq_id}")
    assert got.body["tenant_id"] == "acme"
