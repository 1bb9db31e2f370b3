"""REST routes for instances: parse, call one `InstanceService` use case, answer.

Shapes follow Orch8's `orch8-api/src/instances.rs`: create is 201
`{"id", "deduplicated": false}` (200 with `true` for an idempotent repeat), the
list is a `{"items", "has_more"}` page, outputs and tree are plain arrays.
"""

from __future__ import annotations

from aiohttp import web

from orch8.application.ports.storage import InstanceFilter
from orch8.codec.tree_ids import tree_to_json
from orch8.codec.wire import (
    DEFAULT_NAMESPACE,
    instance_to_json,
    new_instance_from_json,
    output_to_json,
)
from orch8.domain.instance import InstanceState, Priority
from orch8.domain.sequence import BLOCK_TYPES
from orch8.domain.tree import NodeState
from orch8.entrypoints.http import openapi_ops as doc
from orch8.entrypoints.http import params
from orch8.entrypoints.http.body import read_json
from orch8.entrypoints.http.deps import caller_of, deps_of

DEFAULT_LIMIT = 100


async def create(request: web.Request) -> web.Response:
    cmd = new_instance_from_json(await read_json(request))
    started = await deps_of(request).instances.create(cmd, caller=caller_of(request))
    return web.json_response(
        {"id": started.instance.id, "deduplicated": started.deduplicated},
        status=200 if started.deduplicated else 201,
    )


async def get(request: web.Request) -> web.Response:
    inst = await deps_of(request).instances.get(request.match_info["id"], caller=caller_of(request))
    return web.json_response(instance_to_json(inst))


async def list_(request: web.Request) -> web.Response:
    q = request.query
    flt = InstanceFilter(
        tenant_id=params.optional_str(q, "tenant_id"),
        namespace=params.optional_str(q, "namespace"),
        sequence_id=params.optional_str(q, "sequence_id"),
        states=params.states(q),
    )
    found = await deps_of(request).instances.query(
        flt, params.page_of(request, default_limit=DEFAULT_LIMIT), caller=caller_of(request)
    )
    return web.json_response(
        {"items": [instance_to_json(i) for i in found.items], "has_more": found.has_more}
    )


async def outputs(request: web.Request) -> web.Response:
    found = await deps_of(request).instances.outputs(
        request.match_info["id"], caller=caller_of(request)
    )
    return web.json_response([output_to_json(o) for o in found])


async def tree(request: web.Request) -> web.Response:
    instance_id = request.match_info["id"]
    nodes = await deps_of(request).instances.tree(instance_id, caller=caller_of(request))
    return web.json_response(tree_to_json(nodes, instance_id))


ROUTES = [
    ("POST", "/instances", create),
    ("GET", "/instances", list_),
    ("GET", "/instances/{id}", get),
    ("GET", "/instances/{id}/outputs", outputs),
    ("GET", "/instances/{id}/tree", tree),
]

_UUID = {"type": "string", "format": "uuid"}

OPENAPI_SCHEMAS: dict[str, doc.Json] = {
    "InstanceCreated": doc.object_schema(["id", "deduplicated"], id=doc.STR, deduplicated=doc.BOOL),
    "Priority": {
        "description": "PascalCase on output; case-insensitive names or 0-3 accepted on input",
        "anyOf": [
            {"type": "string", "enum": [p.wire_name for p in Priority]},
            {"type": "integer", "minimum": 0, "maximum": 3},
        ],
    },
    "InstanceState": {"type": "string", "enum": [s.value for s in InstanceState]},
    "ExecutionContext": doc.object_schema(
        [], data=doc.OBJ, config=doc.OBJ, audit=doc.array_of(doc.OBJ), runtime=doc.OBJ
    ),
    "NewInstance": doc.object_schema(
        ["sequence_id"],
        sequence_id=doc.TEXT,
        tenant_id={**doc.TEXT, "description": "defaults to the x-tenant-id header"},
        namespace={"type": "string", "default": DEFAULT_NAMESPACE},
        priority=doc.ref("Priority"),
        timezone={**doc.ref("Timezone"), "default": "UTC"},
        metadata=doc.OBJ,
        context=doc.ref("ExecutionContext"),
        next_fire_at=doc.TIME,
        concurrency_key=doc.STR,
        max_concurrency={"type": "integer", "minimum": 1},
        idempotency_key=doc.TEXT,
    ),
    "TaskInstance": doc.object_schema(
        ["id", "sequence_id", "tenant_id", "namespace", "state", "priority", "timezone"],
        id=doc.STR,
        sequence_id=doc.STR,
        tenant_id=doc.STR,
        namespace=doc.STR,
        state=doc.ref("InstanceState"),
        next_fire_at=doc.nullable(doc.TIME),
        priority={"type": "string", "enum": [p.wire_name for p in Priority]},
        timezone=doc.STR,
        metadata=doc.OBJ,
        context=doc.ref("ExecutionContext"),
        concurrency_key=doc.nullable(doc.STR),
        max_concurrency=doc.nullable(doc.INT),
        idempotency_key=doc.nullable(doc.STR),
        parent_instance_id=doc.nullable(doc.STR),
        created_at=doc.TIME,
        updated_at=doc.TIME,
    ),
    "BlockOutput": doc.object_schema(
        ["id", "instance_id", "block_id", "output", "attempt", "created_at"],
        id=doc.STR,
        instance_id=doc.STR,
        block_id=doc.STR,
        output={},
        output_ref=doc.nullable(doc.STR),
        output_size=doc.INT,
        attempt=doc.INT,
        created_at=doc.TIME,
    ),
    "ExecutionNode": doc.object_schema(
        ["id", "instance_id", "block_id", "block_type", "state"],
        id={**_UUID, "description": "uuid5 of (instance, block)"},
        instance_id=doc.STR,
        block_id=doc.STR,
        parent_id=doc.nullable(_UUID),
        block_type={"type": "string", "enum": sorted(BLOCK_TYPES.values())},
        branch_index=doc.nullable(doc.INT),
        state={"type": "string", "enum": [s.value for s in NodeState]},
        started_at=doc.nullable(doc.TIME),
        completed_at=doc.nullable(doc.TIME),
    ),
    "InstancePage": doc.object_schema(
        ["items", "has_more"], items=doc.array_of(doc.ref("TaskInstance")), has_more=doc.BOOL
    ),
}

_TAG = "instances"
OPENAPI_PATHS: doc.Paths = {
    "/instances": {
        "post": doc.op(
            "createInstance",
            "Start an instance of a sequence",
            _TAG,
            {
                "201": doc.returns(doc.ref("InstanceCreated"), "Created"),
                "200": doc.returns(doc.ref("InstanceCreated"), "Deduplicated by idempotency_key"),
                **doc.errors("BadRequest", "Forbidden", "NotFound", "PayloadTooLarge"),
            },
            body="NewInstance",
        ),
        "get": doc.op(
            "listInstances",
            "List instances, newest first",
            _TAG,
            {"200": doc.returns(doc.ref("InstancePage"), "A page"), **doc.errors("BadRequest")},
            params=("TenantId", "Namespace", "SequenceId", "State", "Offset", "InstanceLimit"),
        ),
    },
    "/instances/{id}": {
        "get": doc.op(
            "getInstance",
            "An instance by id",
            _TAG,
            {"200": doc.returns(doc.ref("TaskInstance"), "Found"), **doc.errors("NotFound")},
            params=("Id",),
        )
    },
    "/instances/{id}/outputs": {
        "get": doc.op(
            "getInstanceOutputs",
            "Every block output of an instance, oldest first",
            _TAG,
            {
                "200": doc.returns(doc.array_of(doc.ref("BlockOutput")), "Outputs"),
                **doc.errors("NotFound"),
            },
            params=("Id",),
        )
    },
    "/instances/{id}/tree": {
        "get": doc.op(
            "getExecutionTree",
            "The execution tree: one node per block",
            _TAG,
            {
                "200": doc.returns(doc.array_of(doc.ref("ExecutionNode")), "Nodes"),
                **doc.errors("NotFound"),
            },
            params=("Id",),
        )
    },
}
