"""REST routes for sequences: parse, call one `SequenceCatalog` use case, answer.

Shapes and status codes follow Orch8's `orch8-api/src/sequences.rs`: create is
201 `{"id"}`, deprecate and delete are 204 with no body, versions is a plain
array (highest version first), the list is a `{"items", "has_more"}` page.
"""

from __future__ import annotations

from aiohttp import web

from orch8.application.ports.storage import SequenceFilter
from orch8.codec.wire import DEFAULT_NAMESPACE, new_sequence_from_json, sequence_to_json
from orch8.domain.sequence import BLOCK_TYPES
from orch8.entrypoints.http import openapi_ops as doc
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
        params.optional_int(q, "version", minimum=1, maximum=params.INT32_MAX),
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
        flt, params.page_of(request, default_limit=DEFAULT_LIMIT), caller=caller_of(request)
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

_BLOCKS = doc.array_of(doc.ref("Block"))

OPENAPI_SCHEMAS: dict[str, doc.Json] = {
    "Block": {
        "type": "object",
        "description": "A block of the sequence DSL, tagged by `type`; ids are unique.",
        "required": ["type", "id"],
        "properties": {
            "type": {"type": "string", "enum": sorted(BLOCK_TYPES.values())},
            "id": {"type": "string", "minLength": 1},
        },
        "additionalProperties": True,
    },
    "NewSequence": {
        **doc.object_schema(
            ["tenant_id", "name", "blocks"],
            id=doc.STR,
            tenant_id=doc.TEXT,
            namespace={"type": "string", "default": DEFAULT_NAMESPACE},
            name=doc.TEXT,
            version={"type": "integer", "minimum": 1},
            deprecated={"type": "boolean", "default": False},
            blocks=_BLOCKS,
            input_schema=doc.OBJ,
            on_failure=_BLOCKS,
            on_cancel=_BLOCKS,
            created_at=doc.TIME,
        ),
        "description": "tenant_id may be left out when the x-tenant-id header is sent.",
    },
    "SequenceDefinition": doc.object_schema(
        ["id", "tenant_id", "namespace", "name", "version", "deprecated", "blocks", "created_at"],
        id=doc.STR,
        tenant_id=doc.STR,
        namespace=doc.STR,
        name=doc.STR,
        version=doc.INT,
        deprecated=doc.BOOL,
        status=doc.STR,
        blocks=_BLOCKS,
        input_schema=doc.nullable(doc.OBJ),
        on_failure=doc.nullable(_BLOCKS),
        on_cancel=doc.nullable(_BLOCKS),
        created_at=doc.TIME,
    ),
    "SequencePage": doc.object_schema(
        ["items", "has_more"], items=doc.array_of(doc.ref("SequenceDefinition")), has_more=doc.BOOL
    ),
}

_TAG = "sequences"
OPENAPI_PATHS: doc.Paths = {
    "/sequences": {
        "post": doc.op(
            "createSequence",
            "Register a sequence (a new version when the name exists)",
            _TAG,
            {
                "201": doc.returns(doc.ref("Created"), "Created"),
                **doc.errors("BadRequest", "Forbidden", "Conflict", "PayloadTooLarge"),
            },
            body="NewSequence",
        ),
        "get": doc.op(
            "listSequences",
            "List sequences, newest first",
            _TAG,
            {"200": doc.returns(doc.ref("SequencePage"), "A page"), **doc.errors("BadRequest")},
            params=("TenantId", "Namespace", "Offset", "SequenceLimit"),
        ),
    },
    "/sequences/by-name": {
        "get": doc.op(
            "getSequenceByName",
            "A version by name: the given one, or the latest non-deprecated",
            _TAG,
            {
                "200": doc.returns(doc.ref("SequenceDefinition"), "Found"),
                **doc.errors("BadRequest", "NotFound"),
            },
            params=("RequiredTenantId", "Namespace", "Name", "Version"),
        )
    },
    "/sequences/versions": {
        "get": doc.op(
            "listSequenceVersions",
            "Every version of a name, highest first",
            _TAG,
            {
                "200": doc.returns(doc.array_of(doc.ref("SequenceDefinition")), "Versions"),
                **doc.errors("BadRequest"),
            },
            params=("RequiredTenantId", "Namespace", "Name"),
        )
    },
    "/sequences/{id}": {
        "get": doc.op(
            "getSequence",
            "A sequence by id",
            _TAG,
            {"200": doc.returns(doc.ref("SequenceDefinition"), "Found"), **doc.errors("NotFound")},
            params=("Id",),
        ),
        "delete": doc.op(
            "deleteSequence",
            "Delete a sequence no instance uses",
            _TAG,
            {**doc.no_content(), **doc.errors("NotFound", "Conflict")},
            params=("Id",),
        ),
    },
    "/sequences/{id}/deprecate": {
        "post": doc.op(
            "deprecateSequence",
            "Deprecate a version; new instances by name skip it",
            _TAG,
            {**doc.no_content(), **doc.errors("NotFound")},
            params=("Id",),
        )
    },
}
