"""`/rate-limits`: per-tenant limits on a step's `rate_limit_key` (Orch8 has no such API).

`POST /rate-limits` creates a limit or replaces the numbers of an existing one;
`GET|PUT|DELETE /rate-limits/{key}` name the tenant with `?tenant_id=` or the
`x-tenant-id` header. A bad field is a 400 naming it; an unknown key a 404.
"""

from __future__ import annotations

from aiohttp import web

from orch8.application.use_cases.rate_limits import RateLimitService
from orch8.codec.rate_limits import limit_change_from_json, limit_to_json, new_limit_from_json
from orch8.domain.rate_limits import (
    MAX_COUNT,
    MAX_KEY_LENGTH,
    MAX_WINDOW_SECONDS,
    MIN_WINDOW_SECONDS,
)
from orch8.entrypoints.http import openapi_ops as doc
from orch8.entrypoints.http import params
from orch8.entrypoints.http.body import read_json
from orch8.entrypoints.http.deps import caller_of, deps_of


def _service(request: web.Request) -> RateLimitService:
    return deps_of(request).rate_limits


def _address(request: web.Request) -> tuple[str, str]:
    """The tenant (`?tenant_id=`, else the caller) and key a `/rate-limits/{key}` names."""
    return params.tenant(request.query, caller_of(request)), request.match_info["key"]


async def create(request: web.Request) -> web.Response:
    new = new_limit_from_json(await read_json(request))
    limit = await _service(request).put(new.tenant_id, new.key, new.spec, caller=caller_of(request))
    return web.json_response(limit_to_json(limit), status=201)


async def list_limits(request: web.Request) -> web.Response:
    tenant = params.optional_str(request.query, "tenant_id")
    found = await _service(request).list(tenant, caller=caller_of(request))
    return web.json_response({"items": [limit_to_json(x) for x in found], "has_more": False})


async def get(request: web.Request) -> web.Response:
    tenant, key = _address(request)
    limit = await _service(request).get(tenant, key, caller=caller_of(request))
    return web.json_response(limit_to_json(limit))


async def update(request: web.Request) -> web.Response:
    tenant, key = _address(request)
    spec = limit_change_from_json(await read_json(request), tenant_id=tenant, key=key)
    limit = await _service(request).update(tenant, key, spec, caller=caller_of(request))
    return web.json_response(limit_to_json(limit))


async def delete(request: web.Request) -> web.Response:
    tenant, key = _address(request)
    await _service(request).delete(tenant, key, caller=caller_of(request))
    return web.Response(status=204)


# `{key:.+}`: a key may contain '/', like any other string a sequence names.
ROUTES = [
    ("POST", "/rate-limits", create),
    ("GET", "/rate-limits", list_limits),
    ("GET", "/rate-limits/{key:.+}", get),
    ("PUT", "/rate-limits/{key:.+}", update),
    ("DELETE", "/rate-limits/{key:.+}", delete),
]

_CONTROL = "\\u0000-\\u001f\\u007f"
# A key or tenant: not blank, no control characters, at most MAX_KEY_LENGTH long.
_NAME: doc.Json = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_KEY_LENGTH,
    "pattern": f"^[^{_CONTROL}]*[^\\s{_CONTROL}][^{_CONTROL}]*$",
}

_NUMBERS: dict[str, doc.Json] = {
    "max_count": {
        "type": "integer",
        "minimum": 1,
        "maximum": MAX_COUNT,
        "description": "Most uses in any window",
    },
    "window_seconds": {
        "type": "number",
        "minimum": MIN_WINDOW_SECONDS,
        "maximum": MAX_WINDOW_SECONDS,
        "description": "The window's length (a sliding window), a microsecond to a year",
    },
}

OPENAPI_SCHEMAS: dict[str, doc.Json] = {
    "RateLimit": doc.object_schema(
        ["tenant_id", "key", "max_count", "window_seconds", "created_at", "updated_at"],
        tenant_id=doc.STR,
        key={"type": "string", "description": "A step's `rate_limit_key`"},
        max_count={"type": "integer", "minimum": 1},
        window_seconds={"type": "number", "exclusiveMinimum": 0},
        created_at=doc.TIME,
        updated_at=doc.TIME,
    ),
    "NewRateLimit": doc.object_schema(
        ["tenant_id", "key", "max_count", "window_seconds"],
        tenant_id={**_NAME, "description": "May be left out when x-tenant-id is sent"},
        key=_NAME,
        **_NUMBERS,
    ),
    "RateLimitChange": doc.object_schema(["max_count", "window_seconds"], **_NUMBERS),
    "RateLimitPage": doc.object_schema(
        ["items", "has_more"], items=doc.array_of(doc.ref("RateLimit")), has_more=doc.BOOL
    ),
}

_TAG = "rate-limits"
_LIMIT = doc.ref("RateLimit")
_KEY_PARAMS = (
    {**doc.path_param("key", "A step's `rate_limit_key` (may contain '/')"), "schema": _NAME},
    "RequiredTenantId",
)
OPENAPI_PATHS: doc.Paths = {
    "/rate-limits": {
        "post": doc.op(
            "createRateLimit",
            "Set the limit of a tenant's key (replacing the numbers of an existing one)",
            _TAG,
            {"201": doc.returns(_LIMIT, "The limit"), **doc.errors("BadRequest", "Forbidden")},
            body="NewRateLimit",
        ),
        "get": doc.op(
            "listRateLimits",
            "A tenant's limits (every tenant's without one), by tenant and key",
            _TAG,
            {"200": doc.returns(doc.ref("RateLimitPage"), "The limits")},
            params=("TenantId",),
        ),
    },
    "/rate-limits/{key}": {
        "get": doc.op(
            "getRateLimit",
            "The limit of a key",
            _TAG,
            {"200": doc.returns(_LIMIT, "Found"), **doc.errors("BadRequest", "NotFound")},
            params=_KEY_PARAMS,
        ),
        "put": doc.op(
            "updateRateLimit",
            "Change a limit's numbers (they apply at once to the uses already admitted)",
            _TAG,
            {"200": doc.returns(_LIMIT, "Changed"), **doc.errors("BadRequest", "NotFound")},
            params=_KEY_PARAMS,
            body="RateLimitChange",
        ),
        "delete": doc.op(
            "deleteRateLimit",
            "Remove a limit (its key is then unlimited)",
            _TAG,
            {**doc.no_content("Removed"), **doc.errors("BadRequest", "NotFound")},
            params=_KEY_PARAMS,
        ),
    },
}
