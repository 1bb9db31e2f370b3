"""REST routes for sequences: parse, call one `SequenceCatalog` use case, answer.

Shapes and status codes follow Orch8's `orch8-api/src/sequences.rs`: create is
201 `{"id"}`, deprecate and delete are 204 with no body, versions is a plain
array (highest version first), the list is a `{"items", "has_more"}` page.
"""

from __future__ import annotations

from aiohttp import web

from orch8.application.ports.storage import SequenceFilter
from orch8.codec.wire import new_sequence_from_json, sequence_to_json
from orch8.entrypoints.http import params
from orch8.entrypoints.http.body import read_json
from orch8.entrypoints.http.deps import caller_of, deps_of

# Orch8's default page size for GET /sequences (instances use 100).
DEFAULT_LIMIT = 200


async def create(request: web.Request) -> web.Response:
    cmd = new_sequence_from_json(await read_json(request))
    seq = await deps_of(request).sequences.create(cmd, caller=caller_of(request))
    return web.json_response({"id": seq.id}, status=201)


async def get(request: web.Request) -> web.Response:
    seq = await deps_of(request).sequences.get(request.match_info["id"], caller=caller_of(request))
    return web.json_response(sequence_to_json(seq))


async def by_name(request: web.Request) -> web.Response:
    q = request.query
    caller = caller_of(request)
    seq = await deps_of(request).sequences.by_name(
        params.tenant(q, caller),
        params.namespace(q),
        params.required_str(q, "name"),
        params.optional_int(q, "version", minimum=1),
        caller=caller,
    )
    return web.json_response(sequence_to_json(seq))


async def versions(request: web.Request) -> web.Response:
    q = request.query
    caller = caller_of(request)
    found = await deps_of(request).sequences.versions(
        params.tenant(q, caller),
        params.namespace(q),
        params.required_str(q, "name"),
        caller=caller,
    )
    return web.json_response([sequence_to_json(s) for s in found])


async def list_(request: web.Request) -> web.Response:
    q = request.query
    flt = SequenceFilter(
        tenant_id=params.optional_str(q, "tenant_id"),
        namespace=params.optional_str(q, "namespace"),
    )
    found = await deps_of(request).sequences.query(
        flt, params.page(q, default_limit=DEFAULT_LIMIT), caller=caller_of(request)
    )
    return web.json_response(
        {"items": [sequence_to_json(s) for s in found.items], "has_more": found.has_more}
    )


async def deprecate(request: web.Request) -> web.Response:
    await deps_of(request).sequences.deprecate(request.match_info["id"], caller=caller_of(request))
    return web.Response(status=204)


async def delete(request: web.Request) -> web.Response:
    await deps_of(request).sequences.delete(request.match_info["id"], caller=caller_of(request))
    return web.Response(status=204)


# Literal paths come before `/sequences/{id}` so "by-name" is never taken for an id.
ROUTES = [
    ("POST", "/sequences", create),
    ("GET", "/sequences", list_),
    ("GET", "/sequences/by-name", by_name),
    ("GET", "/sequences/versions", versions),
    ("GET", "/sequences/{id}", get),
    ("DELETE", "/sequences/{id}", delete),
    ("POST", "/sequences/{id}/deprecate", deprecate),
]
