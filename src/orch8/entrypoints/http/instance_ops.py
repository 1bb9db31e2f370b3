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

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from orch8.application.ports.storage import InstanceFilter
from orch8.application.use_cases.instance_ops import MAX_BATCH, InstanceOps
from orch8.codec.fields import array, integer, obj, req, string
from orch8.codec.times import format_time, parse_time
from orch8.codec.wire import (
    context_from_json,
    instance_to_json,
    new_instance_from_json,
    state_from_json,
)
from orch8.domain.errors import ValidationError
from orch8.entrypoints.http import params
from orch8.entrypoints.http.body import read_json
from orch8.entrypoints.http.deps import caller_of, deps_of

DEFAULT_LIMIT = 100


def _ops(request: web.Request) -> InstanceOps:
    ops = deps_of(request).instance_ops
    if ops is None:
        raise web.HTTPServiceUnavailable(reason="instance operations are not configured")
    return ops


def _state_reply(instance_id: str, state: str, next_fire_at: Any) -> web.Response:
    return web.json_response(
        {"id": instance_id, "state": state, "next_fire_at": format_time(next_fire_at)}
    )


async def create_batch(request: web.Request) -> web.Response:
    body = obj(await read_json(request), "body")
    items = array(body, "instances", "", required=True)
    if len(items) > MAX_BATCH:
        raise ValidationError(f"batch size must not exceed {MAX_BATCH:,}", path="instances")
    cmds = [new_instance_from_json(item, f"instances[{i}]") for i, item in enumerate(items)]
    count = await _ops(request).create_batch(cmds, caller=caller_of(request))
    return web.json_response({"count": count}, status=201 if cmds else 200)


async def set_state(request: web.Request) -> web.Response:
    body = obj(await read_json(request), "body")
    target = state_from_json(req(body, "state", ""), "state")
    fire = body.get("next_fire_at")
    next_fire_at = None if fire is None else parse_time(fire, "next_fire_at")
    inst = await _ops(request).set_state(
        request.match_info["id"], target, next_fire_at, caller=caller_of(request)
    )
    return _state_reply(inst.id, inst.state.value, inst.next_fire_at)


async def replace_context(request: web.Request) -> web.Response:
    body = obj(await read_json(request), "body")
    context = context_from_json(req(body, "context", ""), "context")
    instance_id = request.match_info["id"]
    await _ops(request).replace_context(instance_id, context, caller=caller_of(request))
    return web.json_response({"id": instance_id})


async def retry(request: web.Request) -> web.Response:
    inst = await _ops(request).retry(request.match_info["id"], caller=caller_of(request))
    return _state_reply(inst.id, inst.state.value, inst.next_fire_at)


async def dead_letters(request: web.Request) -> web.Response:
    q = request.query
    flt = InstanceFilter(
        tenant_id=params.optional_str(q, "tenant_id"),
        namespace=params.optional_str(q, "namespace"),
        sequence_id=params.optional_str(q, "sequence_id"),
    )
    found = await _ops(request).dead_letters(
        flt, params.page(q, default_limit=DEFAULT_LIMIT), caller=caller_of(request)
    )
    return web.json_response([instance_to_json(i) for i in found])


def _bulk_filter(body: Mapping[str, Any]) -> InstanceFilter:
    data = obj(req(body, "filter", ""), "filter")
    states = array(data, "states", "filter")
    return InstanceFilter(
        tenant_id=string(data, "tenant_id", "filter"),
        namespace=string(data, "namespace", "filter"),
        sequence_id=string(data, "sequence_id", "filter"),
        states=tuple(
            dict.fromkeys(state_from_json(s, f"filter.states[{i}]") for i, s in enumerate(states))
        ),
    )


async def bulk_set_state(request: web.Request) -> web.Response:
    body = obj(await read_json(request), "body")
    flt = _bulk_filter(body)
    target = state_from_json(req(body, "state", ""), "state")
    count = await _ops(request).bulk_set_state(flt, target, caller=caller_of(request))
    return web.json_response({"count": count})


async def bulk_reschedule(request: web.Request) -> web.Response:
    body = obj(await read_json(request), "body")
    flt = _bulk_filter(body)
    offset = integer(body, "offset_secs", "", required=True)
    assert offset is not None
    count = await _ops(request).bulk_reschedule(flt, offset, caller=caller_of(request))
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
