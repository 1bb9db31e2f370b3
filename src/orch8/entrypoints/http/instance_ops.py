"""REST routes for operating on instances: parse, call one `InstanceOps` use case, answer.

Shapes follow Orch8's `orch8-api/src/instances/{lifecycle,bulk}.rs`:
`POST /instances/batch {"instances": [...]}` -> 201 `{"count"}` (200 `{"count": 0}`
for an empty batch), `PATCH /instances/{id}/state {"state", "next_fire_at"?}`,
`PATCH /instances/{id}/context {"context"}` (full replacement),
`POST /instances/{id}/retry` -> `{"id", "state": "scheduled"}`, `GET
/instances/dlq` -> a plain array of failed instances, `PATCH /instances/bulk/state
{"filter", "state"}` and `PATCH /instances/bulk/reschedule {"filter",
"offset_secs"}` -> `{"count"}`. Orch8 answers the two PATCHes of one instance
with an empty 200; orch8 adds a small JSON body, which Orch8 clients ignore.

These routes must be registered before `/instances/{id}`: aiohttp matches in
registration order, and `dlq`, `bulk` and `batch` would otherwise be read as ids.
"""

from __future__ import annotations

from aiohttp import web

from orch8.application.ports.storage import InstanceFilter
from orch8.application.use_cases.instance_ops import MAX_BATCH, MAX_OFFSET_SECONDS, InstanceOps
from orch8.codec.instance_ops import (
    batch_from_json,
    bulk_reschedule_from_json,
    bulk_state_from_json,
    context_change_from_json,
    state_change_from_json,
    state_reply_to_json,
)
from orch8.codec.wire import instance_to_json
from orch8.entrypoints.http import openapi_ops as doc
from orch8.entrypoints.http import params
from orch8.entrypoints.http.body import read_json
from orch8.entrypoints.http.deps import caller_of, deps_of

DEFAULT_LIMIT = 100


def _ops(request: web.Request) -> InstanceOps:
    return deps_of(request).instance_ops


async def create_batch(request: web.Request) -> web.Response:
    ops = _ops(request)
    cmds = batch_from_json(await read_json(request), max_items=ops.max_batch)
    count = await ops.create_batch(cmds, caller=caller_of(request))
    return web.json_response({"count": count}, status=201 if cmds else 200)


async def set_state(request: web.Request) -> web.Response:
    change = state_change_from_json(await read_json(request))
    inst = await _ops(request).set_state(
        request.match_info["id"], change.state, change.next_fire_at, caller=caller_of(request)
    )
    return web.json_response(state_reply_to_json(inst))


async def replace_context(request: web.Request) -> web.Response:
    context = context_change_from_json(await read_json(request))
    instance_id = request.match_info["id"]
    await _ops(request).replace_context(instance_id, context, caller=caller_of(request))
    return web.json_response({"id": instance_id})


async def retry(request: web.Request) -> web.Response:
    inst = await _ops(request).retry(request.match_info["id"], caller=caller_of(request))
    return web.json_response(state_reply_to_json(inst))


async def dead_letters(request: web.Request) -> web.Response:
    q = request.query
    flt = InstanceFilter(
        tenant_id=params.optional_str(q, "tenant_id"),
        namespace=params.optional_str(q, "namespace"),
        sequence_id=params.optional_str(q, "sequence_id"),
    )
    found = await _ops(request).dead_letters(
        flt, params.page_of(request, default_limit=DEFAULT_LIMIT), caller=caller_of(request)
    )
    return web.json_response([instance_to_json(i) for i in found])


async def bulk_set_state(request: web.Request) -> web.Response:
    change = bulk_state_from_json(await read_json(request))
    count = await _ops(request).bulk_set_state(
        change.filter, change.state, caller=caller_of(request)
    )
    return web.json_response({"count": count})


async def bulk_reschedule(request: web.Request) -> web.Response:
    change = bulk_reschedule_from_json(await read_json(request))
    count = await _ops(request).bulk_reschedule(
        change.filter, change.offset_secs, caller=caller_of(request)
    )
    return web.json_response({"count": count})


ROUTES = [
    ("POST", "/instances/batch", create_batch),
    ("GET", "/instances/dlq", dead_letters),
    ("PATCH", "/instances/bulk/state", bulk_set_state),
    ("PATCH", "/instances/bulk/reschedule", bulk_reschedule),
    ("PATCH", "/instances/{id}/state", set_state),
    ("PATCH", "/instances/{id}/context", replace_context),
    ("POST", "/instances/{id}/retry", retry),
]

OPENAPI_SCHEMAS: dict[str, doc.Json] = {
    "BatchCreate": doc.object_schema(
        ["instances"],
        instances={"type": "array", "items": doc.ref("NewInstance"), "maxItems": MAX_BATCH},
    ),
    "Count": doc.object_schema(["count"], count={"type": "integer", "minimum": 0}),
    "UpdateState": doc.object_schema(
        ["state"], state=doc.ref("InstanceState"), next_fire_at=doc.TIME
    ),
    "UpdateContext": doc.object_schema(["context"], context=doc.ref("ExecutionContext")),
    "StateChanged": doc.object_schema(
        ["id", "state"],
        id=doc.STR,
        state=doc.ref("InstanceState"),
        next_fire_at=doc.nullable(doc.TIME),
    ),
    "ContextReplaced": doc.object_schema(["id"], id=doc.STR),
    "BulkFilter": {
        **doc.object_schema(
            ["tenant_id"],
            tenant_id=doc.NONEMPTY,
            namespace=doc.STR,
            sequence_id=doc.STR,
            states=doc.array_of(doc.ref("InstanceState")),
        ),
        "description": "tenant_id is required unless the x-tenant-id header is sent.",
    },
    "BulkState": doc.object_schema(
        ["filter", "state"], filter=doc.ref("BulkFilter"), state=doc.ref("InstanceState")
    ),
    "BulkReschedule": doc.object_schema(
        ["filter", "offset_secs"],
        filter=doc.ref("BulkFilter"),
        offset_secs={
            "type": "integer",
            "minimum": -MAX_OFFSET_SECONDS,
            "maximum": MAX_OFFSET_SECONDS,
            "description": "seconds; negative = earlier",
        },
    ),
}

_TAG = "instances"
OPENAPI_PATHS: doc.Paths = {
    "/instances/batch": {
        "post": doc.op(
            "createInstancesBatch",
            "Start up to 10,000 instances (one transaction per 1,000)",
            _TAG,
            {
                "201": doc.returns(doc.ref("Count"), "Created (deduplicated ones not counted)"),
                "200": doc.returns(doc.ref("Count"), "Empty batch"),
                **doc.errors("BadRequest", "Forbidden", "NotFound", "PayloadTooLarge"),
            },
            body="BatchCreate",
        )
    },
    "/instances/dlq": {
        "get": doc.op(
            "listDeadLetters",
            "Failed instances (the dead-letter queue), newest first",
            _TAG,
            {
                "200": doc.returns(doc.array_of(doc.ref("TaskInstance")), "Failed"),
                **doc.errors("BadRequest"),
            },
            params=("TenantId", "Namespace", "SequenceId", "Offset", "InstanceLimit"),
        )
    },
    "/instances/bulk/state": {
        "patch": doc.op(
            "bulkUpdateState",
            "Move matching instances along allowed transitions (failed ones excepted)",
            _TAG,
            {
                "200": doc.returns(doc.ref("Count"), "Moved"),
                **doc.errors("BadRequest", "Forbidden"),
            },
            body="BulkState",
        )
    },
    "/instances/bulk/reschedule": {
        "patch": doc.op(
            "bulkReschedule",
            "Shift next_fire_at of matching scheduled or paused instances",
            _TAG,
            {
                "200": doc.returns(doc.ref("Count"), "Moved"),
                **doc.errors("BadRequest", "Forbidden"),
            },
            body="BulkReschedule",
        )
    },
    "/instances/{id}/state": {
        "patch": doc.op(
            "updateInstanceState",
            "Change state along the lifecycle (400 on an invalid transition)",
            _TAG,
            {
                "200": doc.returns(doc.ref("StateChanged"), "Changed"),
                **doc.errors("BadRequest", "NotFound", "Conflict"),
            },
            params=("Id",),
            body="UpdateState",
        )
    },
    "/instances/{id}/context": {
        "patch": doc.op(
            "updateInstanceContext",
            "Replace the whole context (409 while the instance is running)",
            _TAG,
            {
                "200": doc.returns(doc.ref("ContextReplaced"), "Replaced"),
                **doc.errors("BadRequest", "NotFound", "Conflict", "PayloadTooLarge"),
            },
            params=("Id",),
            body="UpdateContext",
        )
    },
    "/instances/{id}/retry": {
        "post": doc.op(
            "retryInstance",
            "Retry a failed instance from where it failed (failed -> scheduled now)",
            _TAG,
            {
                "200": doc.returns(doc.ref("StateChanged"), "Scheduled"),
                **doc.errors("BadRequest", "NotFound", "Conflict"),
            },
            params=("Id",),
        )
    },
}
