"""Signals to instances and the list of steps waiting for a person.

A signal is answered 201 `{"signal_id"}` once queued (400 when the instance
has ended); approvals are a `{"items", "has_more"}` page.
"""

from __future__ import annotations

from aiohttp import web

from orch8.application.ports.storage import InstanceFilter
from orch8.application.use_cases.signals import SignalService
from orch8.codec.signals import approval_to_json, signal_request_from_json
from orch8.entrypoints.http import openapi_ops as doc
from orch8.entrypoints.http import params
from orch8.entrypoints.http.body import read_json
from orch8.entrypoints.http.deps import caller_of, deps_of

DEFAULT_LIMIT = 100


def _service(request: web.Request) -> SignalService:
    return deps_of(request).signals


async def send(request: web.Request) -> web.Response:
    req = signal_request_from_json(await read_json(request))
    signal = await _service(request).send(
        request.match_info["id"], req.kind, req.payload, name=req.name, caller=caller_of(request)
    )
    return web.json_response({"signal_id": signal.id}, status=201)


async def approvals(request: web.Request) -> web.Response:
    q = request.query
    page = params.page_of(request, default_limit=DEFAULT_LIMIT)
    flt = InstanceFilter(
        tenant_id=params.optional_str(q, "tenant_id"),
        namespace=params.optional_str(q, "namespace"),
    )
    items = await _service(request).approvals(flt, page, caller=caller_of(request))
    return web.json_response(
        {"items": [approval_to_json(a) for a in items], "has_more": len(items) >= page.limit}
    )


ROUTES = [
    ("POST", "/instances/{id}/signals", send),
    ("GET", "/approvals", approvals),
]

_SIGNAL: doc.Json = {
    "type": "object",
    "required": ["signal_type"],
    "properties": {
        "signal_type": {
            "oneOf": [
                {"type": "string", "enum": ["pause", "resume", "cancel", "update_context"]},
                {
                    "type": "object",
                    "required": ["custom"],
                    "properties": {"custom": doc.TEXT},
                    "additionalProperties": False,
                },
            ]
        },
        "payload": {},
    },
}

OPENAPI_SCHEMAS: dict[str, doc.Json] = {
    "Approval": doc.object_schema(
        [
            "instance_id",
            "tenant_id",
            "namespace",
            "sequence_id",
            "sequence_name",
            "block_id",
            "prompt",
            "choices",
        ],
        instance_id=doc.STR,
        tenant_id=doc.STR,
        namespace=doc.STR,
        sequence_id=doc.STR,
        sequence_name=doc.STR,
        block_id=doc.STR,
        prompt=doc.STR,
        choices=doc.array_of(doc.object_schema(["label", "value"], label=doc.STR, value=doc.STR)),
        store_as=doc.nullable(doc.STR),
        timeout_seconds=doc.nullable(doc.INT),
        escalation_handler=doc.nullable(doc.STR),
        waiting_since=doc.nullable(doc.TIME),
        metadata=doc.OBJ,
    ),
    "ApprovalPage": doc.object_schema(
        ["items", "has_more"], items=doc.array_of(doc.ref("Approval")), has_more=doc.BOOL
    ),
}

_TAG = "signals"
OPENAPI_PATHS: doc.Paths = {
    "/instances/{id}/signals": {
        "post": doc.op(
            "sendSignal",
            "Send a signal (pause, resume, cancel, update_context, custom)",
            _TAG,
            {
                "201": doc.returns(
                    {"type": "object", "properties": {"signal_id": doc.STR}}, "Queued for delivery"
                ),
                **doc.errors("BadRequest", "NotFound"),
            },
            params=("Id",),
            body=_SIGNAL,
        )
    },
    "/approvals": {
        "get": doc.op(
            "listApprovals",
            "Steps waiting for a person's choice",
            _TAG,
            {
                "200": doc.returns(doc.ref("ApprovalPage"), "A page of approvals"),
                **doc.errors("BadRequest"),
            },
            params=("TenantId", "Namespace", "Offset", "InstanceLimit"),
        )
    },
}
