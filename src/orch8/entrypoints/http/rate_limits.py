"""`/rate-limits`: per-tenant limits on a step's `rate_limit_key` (Orch8 has no such API).

`POST /rate-limits` creates a limit or replaces the numbers of an existing one;
`GET|PUT|DELETE /rate-limits/{key}` name the tenant with `?tenant_id=` or the
`x-tenant-id` header. A bad field is a 400 naming it; an unknown key a 404.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from orch8.application.use_cases.rate_limits import LimitSpec, RateLimitService
from orch8.codec.times import format_time
from orch8.domain.errors import ValidationError
from orch8.domain.rate_limits import RateLimit
from orch8.entrypoints.http import params
from orch8.entrypoints.http.body import read_json
from orch8.entrypoints.http.deps import caller_of, deps_of


def _service(request: web.Request) -> RateLimitService:
    service = deps_of(request).rate_limits
    if service is None:  # pragma: no cover - the composition root always provides it
        raise web.HTTPServiceUnavailable(
            text='{"error": "rate limits are not available"}', content_type="application/json"
        )
    return service


def limit_to_json(limit: RateLimit) -> dict[str, Any]:
    return {
        "tenant_id": limit.tenant_id,
        "key": limit.key,
        "max_count": limit.max_count,
        "window_seconds": limit.window_seconds,
        "created_at": format_time(limit.created_at),
        "updated_at": format_time(limit.updated_at),
    }


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError("must be a JSON object", path="body")
    return body


def _optional_text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError("must be a string", path=name)
    return value


def _spec(body: dict[str, Any]) -> LimitSpec:
    count = body.get("max_count")
    if count is None:
        raise ValidationError("is required", path="max_count")
    if isinstance(count, float) and count.is_integer():
        count = int(count)
    if isinstance(count, bool) or not isinstance(count, int):
        raise ValidationError("must be an integer", path="max_count")
    window = body.get("window_seconds")
    if window is None:
        raise ValidationError("is required", path="window_seconds")
    if isinstance(window, bool) or not isinstance(window, int | float):
        raise ValidationError("must be a number of seconds", path="window_seconds")
    return LimitSpec(max_count=count, window_seconds=float(window))


async def create(request: web.Request) -> web.Response:
    body = _object(await read_json(request))
    key = _optional_text(body, "key")
    if key is None:
        raise ValidationError("is required", path="key")
    limit = await _service(request).put(
        _optional_text(body, "tenant_id"), key, _spec(body), caller=caller_of(request)
    )
    return web.json_response(limit_to_json(limit), status=201)


async def list_limits(request: web.Request) -> web.Response:
    tenant = params.optional_str(request.query, "tenant_id")
    found = await _service(request).list(tenant, caller=caller_of(request))
    return web.json_response({"items": [limit_to_json(x) for x in found], "has_more": False})


def _address(request: web.Request) -> tuple[str, str]:
    caller = caller_of(request)
    return params.tenant(request.query, caller), request.match_info["key"]


async def get(request: web.Request) -> web.Response:
    tenant, key = _address(request)
    limit = await _service(request).get(tenant, key, caller=caller_of(request))
    return web.json_response(limit_to_json(limit))


async def update(request: web.Request) -> web.Response:
    tenant, key = _address(request)
    body = _object(await read_json(request))
    for name, expected in (("key", key), ("tenant_id", tenant)):
        given = _optional_text(body, name)
        if given is not None and given != expected:
            raise ValidationError(f"'{given}' does not match the addressed '{expected}'", path=name)
    limit = await _service(request).update(tenant, key, _spec(body), caller=caller_of(request))
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

# --- OpenAPI ------------------------------------------------------------------------

_TIME = {"type": "string", "format": "date-time"}
_LIMIT = {
    "type": "object",
    "required": ["tenant_id", "key", "max_count", "window_seconds", "created_at", "updated_at"],
    "properties": {
        "tenant_id": {"type": "string"},
        "key": {"type": "string", "description": "A step's `rate_limit_key`"},
        "max_count": {"type": "integer", "minimum": 1},
        "window_seconds": {"type": "number", "exclusiveMinimum": 0},
        "created_at": _TIME,
        "updated_at": _TIME,
    },
}
_NUMBERS = {
    "max_count": {"type": "integer", "minimum": 1, "description": "Most uses in any window"},
    "window_seconds": {
        "type": "number",
        "exclusiveMinimum": 0,
        "description": "The window's length (a sliding window)",
    },
}
_NEW = {
    "type": "object",
    "required": ["key", "max_count", "window_seconds"],
    "properties": {
        "tenant_id": {"type": "string", "description": "Defaults to the x-tenant-id header"},
        "key": {"type": "string"},
        **_NUMBERS,
    },
}
_CHANGE = {"type": "object", "required": ["max_count", "window_seconds"], "properties": _NUMBERS}
_KEY = {"name": "key", "in": "path", "required": True, "schema": {"type": "string"}}
_TENANT = {"$ref": "#/components/parameters/TenantId"}


def _err(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _op(op_id: str, summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "operationId": op_id,
        "summary": summary,
        "tags": ["rate-limits"],
        "responses": responses,
        **extra,
    }


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


OPENAPI_PATHS: dict[str, dict[str, Any]] = {
    "/rate-limits": {
        "post": _op(
            "createRateLimit",
            "Set the limit of a tenant's key (replacing the numbers of an existing one)",
            {
                "201": _json(_LIMIT, "The limit"),
                "400": _err("BadRequest"),
                "403": _err("Forbidden"),
            },
            requestBody=_body(_NEW),
        ),
        "get": _op(
            "listRateLimits",
            "A tenant's limits (every tenant's without one), by tenant and key",
            {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "items": {"type": "array", "items": _LIMIT},
                            "has_more": {"type": "boolean"},
                        },
                    },
                    "The limits",
                )
            },
            parameters=[_TENANT],
        ),
    },
    "/rate-limits/{key}": {
        "get": _op(
            "getRateLimit",
            "The limit of a key",
            {"200": _json(_LIMIT, "Found"), "400": _err("BadRequest"), "404": _err("NotFound")},
            parameters=[_KEY, _TENANT],
        ),
        "put": _op(
            "updateRateLimit",
            "Change a limit's numbers (they apply at once to the uses already admitted)",
            {"200": _json(_LIMIT, "Changed"), "400": _err("BadRequest"), "404": _err("NotFound")},
            parameters=[_KEY, _TENANT],
            requestBody=_body(_CHANGE),
        ),
        "delete": _op(
            "deleteRateLimit",
            "Remove a limit (its key is then unlimited)",
            {
                "204": {"description": "Removed"},
                "400": _err("BadRequest"),
                "404": _err("NotFound"),
            },
            parameters=[_KEY, _TENANT],
        ),
    },
}
