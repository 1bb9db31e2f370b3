"""REST routes for instances: parse, call one `InstanceService` use case, answer.

Shapes follow Orch8's `orch8-api/src/instances.rs`: create is 201
`{"id", "deduplicated": false}` (200 with `true` for an idempotent repeat), the
list is a `{"items", "has_more"}` page, outputs and tree are plain arrays.
"""

from __future__ import annotations

from aiohttp import web

from orch8.application.ports.storage import InstanceFilter
from orch8.codec.tree_ids import tree_to_json
from orch8.codec.wire import instance_to_json, new_instance_from_json, output_to_json
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
        flt, params.page(q, default_limit=DEFAULT_LIMIT), caller=caller_of(request)
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
