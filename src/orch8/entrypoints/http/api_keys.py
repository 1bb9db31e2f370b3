"""`/api-keys`: minting, listing and revoking tenant API keys (root key only).

Orch8's routes and shapes (`orch8-api/src/api_keys.rs`): `POST /api-keys`
answers 201 with the key and its one-time `secret`; `GET /api-keys` lists
keys (of `?tenant_id=` when given) without secrets; `DELETE /api-keys/{id}`
revokes at once (204; 404 for an unknown id). A tenant key gets 403.
"""

from __future__ import annotations

from aiohttp import web

from orch8.application.use_cases.api_keys import ApiKeyService
from orch8.codec.api_keys import api_key_to_json, minted_to_json, new_api_key_from_json
from orch8.domain.api_keys import Capability
from orch8.entrypoints.http import openapi_ops as doc
from orch8.entrypoints.http import params
from orch8.entrypoints.http.body import read_json
from orch8.entrypoints.http.deps import deps_of, principal_of


def _service(request: web.Request) -> ApiKeyService:
    return deps_of(request).api_keys


async def create(request: web.Request) -> web.Response:
    cmd = new_api_key_from_json(await read_json(request))
    minted = await _service(request).mint(cmd, principal=principal_of(request))
    return web.json_response(minted_to_json(minted), status=201)


async def list_keys(request: web.Request) -> web.Response:
    tenant = params.optional_str(request.query, "tenant_id")
    found = await _service(request).list(tenant, principal=principal_of(request))
    return web.json_response([api_key_to_json(k) for k in found])


async def revoke(request: web.Request) -> web.Response:
    await _service(request).revoke(request.match_info["id"], principal=principal_of(request))
    return web.Response(status=204)


ROUTES = [
    ("POST", "/api-keys", create),
    ("GET", "/api-keys", list_keys),
    ("DELETE", "/api-keys/{id}", revoke),
]

_CAPABILITIES = doc.array_of({"type": "string", "enum": [c.value for c in Capability]})
_COMMON = {
    "id": {"type": "string", "description": "`ak_` and 32 hex digits"},
    "tenant_id": {**doc.TEXT, "description": "The tenant the key acts for"},
    "name": doc.STR,
    "capabilities": _CAPABILITIES,
    "created_at": doc.TIME,
    "expires_at": doc.nullable(doc.TIME),
}
OPENAPI_SCHEMAS: dict[str, doc.Json] = {
    "NewApiKey": doc.object_schema(
        ["tenant_id"],
        tenant_id={**doc.TEXT, "description": "The tenant the key acts for"},
        name={"type": "string", "description": "A label (default empty)"},
        capabilities={**_CAPABILITIES, "description": "Default (also when empty): operator"},
        expires_at={**doc.nullable(doc.TIME), "description": "None: the key never expires"},
    ),
    "CreatedApiKey": doc.object_schema(
        [*_COMMON, "secret"],
        **_COMMON,
        secret={"type": "string", "description": "`sk_...`: shown this once, never again"},
    ),
    "ApiKey": doc.object_schema(
        [*_COMMON, "last_used_at", "revoked"],
        **_COMMON,
        last_used_at={
            **doc.nullable(doc.TIME),
            "description": "Last authenticated request (refreshed at most once a minute)",
        },
        revoked=doc.BOOL,
    ),
}

_TAG = "api-keys"
OPENAPI_PATHS: doc.Paths = {
    "/api-keys": {
        "post": doc.op(
            "createApiKey",
            "Mint a tenant key (root key only); its secret is in this answer only",
            _TAG,
            {
                "201": doc.returns(doc.ref("CreatedApiKey"), "Minted"),
                **doc.errors("BadRequest", "Unauthorized", "Forbidden"),
            },
            body="NewApiKey",
        ),
        "get": doc.op(
            "listApiKeys",
            "Tenant keys, oldest first, without secrets (root key only)",
            _TAG,
            {
                "200": doc.returns(doc.array_of(doc.ref("ApiKey")), "The keys"),
                **doc.errors("Unauthorized", "Forbidden"),
            },
            params=(doc.query("tenant_id", doc.STR, "Only this tenant's keys"),),
        ),
    },
    "/api-keys/{id}": {
        "delete": doc.op(
            "revokeApiKey",
            "Revoke a key at once, in every process (root key only)",
            _TAG,
            {**doc.no_content("Revoked"), **doc.errors("Unauthorized", "Forbidden", "NotFound")},
            params=("Id",),
        ),
    },
}
