"""Signals to instances and the list of steps waiting for a person."""

from __future__ import annotations

from aiohttp import web

from orch8.application.ports.storage import InstanceFilter
from orch8.application.use_cases.signals import SignalService
from orch8.codec.signals import signal_request_from_json
from orch8.codec.times import format_time
from orch8.entrypoints.http import params
from orch8.entrypoints.http.body import read_json
from orch8.entrypoints.http.deps import caller_of, deps_of


def _service(request: web.Request) -> SignalService:
    service = deps_of(request).signals
    if service is None:  # pragma: no cover - the composition root always provides it
        raise web.HTTPServiceUnavailable(
            text='{"error": "signals are not available"}', content_type="application/json"
        )
    return service


async def send(request: web.Request) -> web.Response:
    req = signal_request_from_json(await read_json(request))
    signal = await _service(request).send(
        request.match_info["id"], req.kind, req.payload, name=req.name, caller=caller_of(request)
    )
    return web.json_response({"signal_id": signal.id}, status=201)


async def approvals(request: web.Request) -> web.Response:
    q = request.query
    page = params.page(q, default_limit=100)
    flt = InstanceFilter(
        tenant_id=params.optional_str(q, "tenant_id"),
        namespace=params.optional_str(q, "namespace"),
    )
    items = await _service(request).approvals(flt, page, caller=caller_of(request))
    body = [
        {
            "instance_id": a.instance_id,
            "tenant_id": a.tenant_id,
            "namespace": a.namespace,
            "sequence_id": a.sequence_id,
            "sequence_name": a.sequence_name,
            "block_id": a.block_id,
            "prompt": a.prompt,
            "choices": a.choices,
            "store_as": a.store_as,
            "timeout_seconds": None if a.timeout_ms is None else a.timeout_ms // 1000,
            "escalation_handler": a.escalation_handler,
            "waiting_since": format_time(a.waiting_since),
            "metadata": a.metadata,
        }
        for a in items
    ]
    return web.json_response({"items": body, "has_more": len(items) >= page.limit})


ROUTES = [
    ("POST", "/instances/{id}/signals", send),
    ("GET", "/approvals", approvals),
]
