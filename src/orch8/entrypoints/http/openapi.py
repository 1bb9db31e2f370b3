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
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web

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
from orch8.entrypoints.http.params import MAX_LIMIT

API_PREFIX = doc.API_PREFIX
DOC_PATH = "/api-docs/openapi.json"

_PAGE_SIZE = f"Page size (clamped to {MAX_LIMIT})"

SHARED_SCHEMAS: dict[str, doc.Json] = {
    "Error": doc.object_schema(
        ["error"], error={"type": "string", "description": "names the field"}
    ),
    "Status": doc.object_schema(["status"], status=doc.STR),
    "Created": doc.object_schema(["id"], id=doc.STR),
}

PARAMETERS: dict[str, doc.Json] = {
    "Id": {"name": "id", "in": "path", "required": True, "schema": doc.STR},
    "TenantId": doc.query("tenant_id", doc.STR, "Tenant; defaults to the x-tenant-id header"),
    "Namespace": doc.query("namespace", doc.STR, "Namespace"),
    "Name": doc.query("name", doc.STR, "Sequence name", required=True),
    "Version": doc.query(
        "version", {"type": "integer", "minimum": 1}, "Version (latest if absent)"
    ),
    "Offset": doc.query("offset", {"type": "integer", "minimum": 0, "default": 0}, "Rows to skip"),
    "SequenceLimit": doc.query(
        "limit", {"type": "integer", "minimum": 1, "default": sequences.DEFAULT_LIMIT}, _PAGE_SIZE
    ),
    "InstanceLimit": doc.query(
        "limit", {"type": "integer", "minimum": 1, "default": instances.DEFAULT_LIMIT}, _PAGE_SIZE
    ),
    "SequenceId": doc.query("sequence_id", doc.STR, "Filter by sequence"),
    "State": doc.query("state", doc.STR, "Comma-separated instance states"),
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


def document() -> dict[str, Any]:
    paths: dict[str, Any] = dict(ROOT_PATHS)
    for path, ops in PRODUCT_PATHS.items():
        paths[API_PREFIX + path] = ops
    for path, ops in PRODUCT_PATHS.items():
        paths[path] = _legacy(ops)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "orch8",
            "version": "1",
            "description": "Durable workflow engine; wire-compatible with Orch8's REST API.",
        },
        "servers": [{"url": "/"}],
        "security": [{"ApiKey": []}],
        "paths": _secured(paths),
        "components": COMPONENTS,
    }


_DOCUMENT = document()


async def serve(request: web.Request) -> web.Response:
    return web.json_response(_DOCUMENT)


ROUTES = [("GET", DOC_PATH, serve)]
