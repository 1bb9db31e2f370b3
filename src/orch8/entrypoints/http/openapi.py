"""The OpenAPI 3.1 document served at `/api-docs/openapi.json`.

Written by hand (not derived from the router) so that a test comparing the
two catches a route added without documentation, or documentation for a
route that does not exist. Product routes are listed under `/api/v1` and
again at the root as deprecated aliases, as Orch8 serves them.
"""

from __future__ import annotations

import copy
from typing import Any

from aiohttp import web

from orch8.entrypoints.http.cron import OPENAPI_PATHS as CRON_PATHS
from orch8.entrypoints.http.openapi_schemas import COMPONENTS, ref
from orch8.entrypoints.http.rate_limits import OPENAPI_PATHS as RATE_LIMIT_PATHS
from orch8.entrypoints.http.stream import OPENAPI_PATHS as STREAM_PATHS
from orch8.entrypoints.http.workers import OPENAPI_PATHS as WORKER_PATHS

API_PREFIX = "/api/v1"
DOC_PATH = "/api-docs/openapi.json"


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _params(*names: str) -> list[dict[str, str]]:
    return [{"$ref": f"#/components/parameters/{n}"} for n in names]


def _errs(*names: str) -> dict[str, Any]:
    codes = {
        "BadRequest": "400",
        "Forbidden": "403",
        "NotFound": "404",
        "Conflict": "409",
        "PayloadTooLarge": "413",
    }
    return {codes[n]: {"$ref": f"#/components/responses/{n}"} for n in names}


def _op(
    op_id: str,
    summary: str,
    tag: str,
    responses: dict[str, Any],
    *,
    params: tuple[str, ...] = (),
    body: str | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "tags": [tag],
        "responses": responses,
    }
    if params:
        op["parameters"] = _params(*params)
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(body)}},
        }
    return op


_NO_CONTENT = {"204": {"description": "Done; no body"}}

PRODUCT_PATHS: dict[str, dict[str, Any]] = {
    "/sequences": {
        "post": _op(
            "createSequence",
            "Register a sequence (a new version when the name exists)",
            "sequences",
            {
                "201": _json(ref("Created"), "Created"),
                **_errs("BadRequest", "Forbidden", "Conflict", "PayloadTooLarge"),
            },
            body="NewSequence",
        ),
        "get": _op(
            "listSequences",
            "List sequences, newest first",
            "sequences",
            {"200": _json(ref("SequencePage"), "A page"), **_errs("BadRequest")},
            params=("TenantId", "Namespace", "Offset", "SequenceLimit"),
        ),
    },
    "/sequences/by-name": {
        "get": _op(
            "getSequenceByName",
            "A version by name: the given one, or the latest non-deprecated",
            "sequences",
            {"200": _json(ref("SequenceDefinition"), "Found"), **_errs("BadRequest", "NotFound")},
            params=("TenantId", "Namespace", "Name", "Version"),
        )
    },
    "/sequences/versions": {
        "get": _op(
            "listSequenceVersions",
            "Every version of a name, highest first",
            "sequences",
            {
                "200": _json({"type": "array", "items": ref("SequenceDefinition")}, "Versions"),
                **_errs("BadRequest"),
            },
            params=("TenantId", "Namespace", "Name"),
        )
    },
    "/sequences/{id}": {
        "get": _op(
            "getSequence",
            "A sequence by id",
            "sequences",
            {"200": _json(ref("SequenceDefinition"), "Found"), **_errs("NotFound")},
            params=("Id",),
        ),
        "delete": _op(
            "deleteSequence",
            "Delete a sequence no instance uses",
            "sequences",
            {**_NO_CONTENT, **_errs("NotFound", "Conflict")},
            params=("Id",),
        ),
    },
    "/sequences/{id}/deprecate": {
        "post": _op(
            "deprecateSequence",
            "Deprecate a version; new instances by name skip it",
            "sequences",
            {**_NO_CONTENT, **_errs("NotFound")},
            params=("Id",),
        )
    },
    "/instances": {
        "post": _op(
            "createInstance",
            "Start an instance of a sequence",
            "instances",
            {
                "201": _json(ref("InstanceCreated"), "Created"),
                "200": _json(ref("InstanceCreated"), "Deduplicated by idempotency_key"),
                **_errs("BadRequest", "Forbidden", "NotFound", "PayloadTooLarge"),
            },
            body="NewInstance",
        ),
        "get": _op(
            "listInstances",
            "List instances, newest first",
            "instances",
            {"200": _json(ref("InstancePage"), "A page"), **_errs("BadRequest")},
            params=("TenantId", "Namespace", "SequenceId", "State", "Offset", "InstanceLimit"),
        ),
    },
    "/instances/{id}": {
        "get": _op(
            "getInstance",
            "An instance by id",
            "instances",
            {"200": _json(ref("TaskInstance"), "Found"), **_errs("NotFound")},
            params=("Id",),
        )
    },
    "/instances/{id}/outputs": {
        "get": _op(
            "getInstanceOutputs",
            "Every block output of an instance, oldest first",
            "instances",
            {
                "200": _json({"type": "array", "items": ref("BlockOutput")}, "Outputs"),
                **_errs("NotFound"),
            },
            params=("Id",),
        )
    },
    "/instances/{id}/tree": {
        "get": _op(
            "getExecutionTree",
            "The execution tree: one node per block",
            "instances",
            {
                "200": _json({"type": "array", "items": ref("ExecutionNode")}, "Nodes"),
                **_errs("NotFound"),
            },
            params=("Id",),
        )
    },
}

_SIGNAL_BODY = {
    "type": "object",
    "required": ["signal_type"],
    "properties": {
        "signal_type": {
            "oneOf": [
                {"type": "string", "enum": ["pause", "resume", "cancel", "update_context"]},
                {
                    "type": "object",
                    "required": ["custom"],
                    "properties": {"custom": {"type": "string"}},
                },
            ]
        },
        "payload": {},
    },
}

PRODUCT_PATHS.update(
    {
        "/instances/{id}/signals": {
            "post": {
                **_op(
                    "sendSignal",
                    "Send a signal (pause, resume, cancel, update_context, custom)",
                    "signals",
                    {
                        "201": _json(
                            {"type": "object", "properties": {"signal_id": {"type": "string"}}},
                            "Queued for delivery",
                        ),
                        **_errs("BadRequest", "NotFound"),
                    },
                    params=("Id",),
                ),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _SIGNAL_BODY}},
                },
            }
        },
        "/approvals": {
            "get": _op(
                "listApprovals",
                "Steps waiting for a person's choice",
                "signals",
                {"200": _json({"type": "object"}, "A page of approvals")},
                params=("TenantId", "Namespace", "Offset", "InstanceLimit"),
            )
        },
    }
)

PRODUCT_PATHS.update(STREAM_PATHS)
PRODUCT_PATHS.update(WORKER_PATHS)
PRODUCT_PATHS.update(CRON_PATHS)
PRODUCT_PATHS.update(RATE_LIMIT_PATHS)

_INSTANCE = ("Id",)
PRODUCT_PATHS.update(
    {
        "/instances/batch": {
            "post": _op(
                "createInstancesBatch",
                "Start up to 10,000 instances (one transaction per 1,000)",
                "instances",
                {
                    "201": _json(ref("Count"), "Created (deduplicated ones not counted)"),
                    "200": _json(ref("Count"), "Empty batch"),
                    **_errs("BadRequest", "Forbidden", "NotFound", "PayloadTooLarge"),
                },
                body="BatchCreate",
            )
        },
        "/instances/dlq": {
            "get": _op(
                "listDeadLetters",
                "Failed instances (the dead-letter queue), newest first",
                "instances",
                {
                    "200": _json({"type": "array", "items": ref("TaskInstance")}, "Failed"),
                    **_errs("BadRequest"),
                },
                params=("TenantId", "Namespace", "SequenceId", "Offset", "InstanceLimit"),
            )
        },
        "/instances/bulk/state": {
            "patch": _op(
                "bulkUpdateState",
                "Move matching instances along allowed transitions (failed ones excepted)",
                "instances",
                {"200": _json(ref("Count"), "Moved"), **_errs("BadRequest", "Forbidden")},
                body="BulkState",
            )
        },
        "/instances/bulk/reschedule": {
            "patch": _op(
                "bulkReschedule",
                "Shift next_fire_at of matching scheduled or paused instances",
                "instances",
                {"200": _json(ref("Count"), "Moved"), **_errs("BadRequest", "Forbidden")},
                body="BulkReschedule",
            )
        },
        "/instances/{id}/state": {
            "patch": _op(
                "updateInstanceState",
                "Change state along the lifecycle (400 on an invalid transition)",
                "instances",
                {
                    "200": _json(ref("StateChanged"), "Changed"),
                    **_errs("BadRequest", "NotFound", "Conflict"),
                },
                params=_INSTANCE,
                body="UpdateState",
            )
        },
        "/instances/{id}/context": {
            "patch": _op(
                "updateInstanceContext",
                "Replace the whole context (409 while the instance is running)",
                "instances",
                {
                    "200": _json(ref("ContextReplaced"), "Replaced"),
                    **_errs("BadRequest", "NotFound", "Conflict", "PayloadTooLarge"),
                },
                params=_INSTANCE,
                body="UpdateContext",
            )
        },
        "/instances/{id}/retry": {
            "post": _op(
                "retryInstance",
                "Retry a failed instance from where it failed (failed -> scheduled now)",
                "instances",
                {
                    "200": _json(ref("StateChanged"), "Scheduled"),
                    **_errs("BadRequest", "NotFound", "Conflict"),
                },
                params=_INSTANCE,
            )
        },
    }
)

ROOT_PATHS: dict[str, dict[str, Any]] = {
    "/health/live": {
        "get": _op("live", "Liveness probe", "health", {"200": _json(ref("Status"), "Alive")})
    },
    "/health/ready": {
        "get": _op(
            "ready",
            "Readiness probe: storage reachable",
            "health",
            {"200": _json(ref("Status"), "Ready"), "503": _json(ref("Error"), "Not ready")},
        )
    },
    DOC_PATH: {
        "get": _op("openapi", "This document", "meta", {"200": _json({"type": "object"}, "Doc")})
    },
}


def _legacy(ops: dict[str, Any]) -> dict[str, Any]:
    """A bare-path alias of a product path: same operation, marked deprecated."""
    out = copy.deepcopy(ops)
    for op in out.values():
        op["operationId"] += "Legacy"
        op["deprecated"] = True
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
        "paths": paths,
        "components": COMPONENTS,
    }


_DOCUMENT = document()


async def serve(request: web.Request) -> web.Response:
    return web.json_response(_DOCUMENT)


ROUTES = [("GET", DOC_PATH, serve)]
