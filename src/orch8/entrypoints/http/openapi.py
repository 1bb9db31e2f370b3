"""The OpenAPI 3.1 document served at `/api-docs/openapi.json`.

Assembled from the resource modules: each describes its own paths
(`OPENAPI_PATHS`) and the shapes only it uses (`OPENAPI_SCHEMAS`); this module
adds what they share (the error shape, query parameters, error responses).
Written by hand (not derived from the router) so that a test comparing the
two catches a route added without documentation, or documentation for a
route that does not exist. Product routes are listed under `/api/v1` and
again at the root as deprecated aliases, as Orch8 serves them.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from zoneinfo import available_timezones

from aiohttp import web

from orch8.domain.instance import InstanceState
from orch8.entrypoints.http import (
    api_keys,
    cron,
    health,
    instance_ops,
    instances,
    meta,
    rate_limits,
    sequences,
    signals,
    stream,
    workers,
)
from orch8.entrypoints.http import openapi_ops as doc
from orch8.entrypoints.http.auth import is_public_route
from orch8.entrypoints.http.deps import deps_of
from orch8.entrypoints.http.params import INT32_MAX, INT64_MAX, INT64_MIN, MAX_LIMIT, OFFSET_MAX

API_PREFIX = doc.API_PREFIX
DOC_PATH = "/api-docs/openapi.json"

_PAGE_SIZE = f"Page size, clamped to the server's max_page_size ({MAX_LIMIT} by default)"
_TENANT_REQUIRED = "Tenant (required unless the x-tenant-id header is sent)"

SHARED_SCHEMAS: dict[str, doc.Json] = {
    "Error": doc.object_schema(
        ["error"], error={"type": "string", "description": "names the field"}
    ),
    "Status": doc.object_schema(["status"], status=doc.STR),
    "Created": doc.object_schema(["id"], id=doc.STR),
    "Timezone": {
        "type": "string",
        "enum": sorted(available_timezones()),
        "description": "An IANA timezone name this server knows",
    },
}

_STATE = "|".join(s.value for s in InstanceState)
# `state=a,b`: comma-separated states; blanks around them and empty items are ignored.
_STATES = {
    "type": "string",
    "pattern": f"^\\s*(?:(?:{_STATE})\\s*)?(?:,\\s*(?:(?:{_STATE})\\s*)?)*$",
}

PARAMETERS: dict[str, doc.Json] = {
    "Id": {"name": "id", "in": "path", "required": True, "schema": doc.STR},
    "TenantId": doc.query("tenant_id", doc.STR, "Tenant; defaults to the x-tenant-id header"),
    "RequiredTenantId": doc.query(
        "tenant_id", {"type": "string", "minLength": 1}, _TENANT_REQUIRED, required=True
    ),
    "Namespace": doc.query("namespace", doc.STR, "Namespace"),
    "Name": doc.query("name", {"type": "string", "minLength": 1}, "Sequence name", required=True),
    "Version": doc.query(
        "version",
        {"type": "integer", "minimum": 1, "maximum": INT32_MAX},
        "Version (latest if absent)",
    ),
    "Offset": doc.query(
        "offset",
        {"type": "integer", "minimum": 0, "maximum": OFFSET_MAX, "default": 0},
        "Rows to skip",
    ),
    "SequenceLimit": doc.query("limit", doc.page_size(sequences.DEFAULT_LIMIT), _PAGE_SIZE),
    "InstanceLimit": doc.query("limit", doc.page_size(instances.DEFAULT_LIMIT), _PAGE_SIZE),
    "SequenceId": doc.query("sequence_id", doc.STR, "Filter by sequence"),
    "State": doc.query("state", _STATES, "Comma-separated instance states"),
}

_ERROR_DESCRIPTIONS = {
    "BadRequest": "Malformed request; `error` names the field",
    "Unauthorized": "No valid x-api-key (the server has a root key)",
    "Forbidden": "Not the caller's tenant, or not allowed to its API key",
    "NotFound": "No such object (or another tenant's)",
    "Conflict": "Clashes with stored state",
    "PayloadTooLarge": "Request body too large",
}
RESPONSES: dict[str, doc.Json] = {
    name: doc.returns_error(_ERROR_DESCRIPTIONS[name]) for name in doc.ERROR_STATUS
}

DOC_PATHS: doc.Paths = {
    DOC_PATH: {
        "get": doc.op(
            "openapi", "This document", "meta", {"200": doc.returns({"type": "object"}, "Doc")}
        )
    }
}


def _merged(what: str, parts: Iterable[Mapping[str, doc.Json]]) -> dict[str, doc.Json]:
    """One table from several; a name declared twice is a mistake, refused at import."""
    out: dict[str, doc.Json] = {}
    for part in parts:
        for name, value in part.items():
            if name in out:
                raise ValueError(f"OpenAPI {what} {name!r} is declared twice")
            out[name] = value
    return out


# Served under API_PREFIX, and at the root as deprecated aliases.
PRODUCT_PATHS = _merged(
    "path",
    [
        sequences.OPENAPI_PATHS,
        instances.OPENAPI_PATHS,
        signals.OPENAPI_PATHS,
        stream.OPENAPI_PATHS,
        workers.OPENAPI_PATHS,
        cron.OPENAPI_PATHS,
        rate_limits.OPENAPI_PATHS,
        instance_ops.OPENAPI_PATHS,
        api_keys.OPENAPI_PATHS,
    ],
)
ROOT_PATHS = _merged("path", [health.OPENAPI_PATHS, DOC_PATHS, meta.OPENAPI_PATHS])
SCHEMAS = _merged(
    "schema",
    [
        SHARED_SCHEMAS,
        sequences.OPENAPI_SCHEMAS,
        instances.OPENAPI_SCHEMAS,
        signals.OPENAPI_SCHEMAS,
        instance_ops.OPENAPI_SCHEMAS,
        workers.OPENAPI_SCHEMAS,
        cron.OPENAPI_SCHEMAS,
        rate_limits.OPENAPI_SCHEMAS,
        api_keys.OPENAPI_SCHEMAS,
        meta.OPENAPI_SCHEMAS,
    ],
)
COMPONENTS: dict[str, Any] = {
    "schemas": SCHEMAS,
    "parameters": PARAMETERS,
    "responses": RESPONSES,
    "securitySchemes": {"ApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
}


def _legacy(ops: dict[str, Any]) -> dict[str, Any]:
    """A bare-path alias of a product path: same operation, marked deprecated."""
    out = copy.deepcopy(ops)
    for operation in out.values():
        operation["operationId"] += "Legacy"
        operation["deprecated"] = True
    return out


def _secured(paths: dict[str, Any]) -> dict[str, Any]:
    """Every operation but the public ones needs the API key (when one is configured)."""
    out = copy.deepcopy(paths)
    for path, ops in out.items():
        for method, operation in ops.items():
            if is_public_route(method, path):
                operation["security"] = []
            else:
                operation["responses"].setdefault("401", doc.errors("Unauthorized")["401"])
    return out


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object inside `node`, `node` included."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _bound_integers(node: Any) -> None:
    """Every integer the server reads is a signed 64-bit one (what storage holds):
    say so wherever a schema has no tighter bound."""
    for schema in _walk(node):
        if schema.get("type") == "integer":
            schema.setdefault("minimum", INT64_MIN)
            schema.setdefault("maximum", INT64_MAX)


def _allows_null(schema: Mapping[str, Any]) -> bool:
    if not schema or schema.get("type") == "null":
        return True
    return any(_allows_null(s) for s in schema.get("anyOf", ()) if isinstance(s, dict))


def _nullable_optionals(components: dict[str, Any], paths: dict[str, Any]) -> None:
    """In request bodies an optional field may be null: it means absent, as with
    Orch8's `Option` fields. Marked on every object schema a request body reaches."""
    schemas = components["schemas"]
    seen: set[int] = set()
    todo = [
        media["schema"]
        for ops in paths.values()
        for operation in ops.values()
        for media in operation.get("requestBody", {}).get("content", {}).values()
    ]
    while todo:
        schema = todo.pop()
        if id(schema) in seen:
            continue
        seen.add(id(schema))
        ref = schema.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            todo.append(schemas[ref.rsplit("/", 1)[1]])
        required = set(schema.get("required", ()))
        for name, prop in list(schema.get("properties", {}).items()):
            if name not in required and not _allows_null(prop):
                schema["properties"][name] = doc.nullable(prop)
            todo.append(prop)
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                todo.append(schema[key])
        todo.extend([*schema.get("anyOf", ()), *schema.get("oneOf", ())])


def document() -> dict[str, Any]:
    paths: dict[str, Any] = copy.deepcopy(ROOT_PATHS)
    for path, ops in PRODUCT_PATHS.items():
        paths[API_PREFIX + path] = copy.deepcopy(ops)
    components = copy.deepcopy(COMPONENTS)
    _nullable_optionals(components, paths)
    _bound_integers(components)
    _bound_integers(paths)
    for path in PRODUCT_PATHS:
        paths[path] = _legacy(paths[API_PREFIX + path])
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "orch8",
            "version": "1",
            "description": "Durable workflow engine; wire-compatible with Orch8's REST API."
            " Rules for every request body, at any depth (free-form JSON included):"
            " integers are signed 64-bit, strings are valid Unicode (no unpaired"
            " surrogate), and an optional field sent as null counts as absent."
            " Limits (body size, context size, batch size, page size, open streams)"
            " are server settings; see docs/configuration.md.",
        },
        "servers": [{"url": "/"}],
        "security": [{"ApiKey": []}],
        "paths": _secured(paths),
        "components": components,
    }


_DOCUMENT = document()
# The document as served with a configured batch limit (max_batch_instances).
_WITH_BATCH_LIMIT: dict[int, dict[str, Any]] = {}


def served_document(max_batch: int) -> dict[str, Any]:
    if max_batch not in _WITH_BATCH_LIMIT:
        doc_ = copy.deepcopy(_DOCUMENT)
        doc_["components"]["schemas"]["BatchCreate"]["properties"]["instances"]["maxItems"] = (
            max_batch
        )
        _WITH_BATCH_LIMIT[max_batch] = doc_
    return _WITH_BATCH_LIMIT[max_batch]


async def serve(request: web.Request) -> web.Response:
    return web.json_response(served_document(deps_of(request).instance_ops.max_batch))


ROUTES = [("GET", DOC_PATH, serve)]
