"""REST routes for cron schedules.

Shapes follow Orch8's `orch8-api/src/cron.rs`: create is 201
`{"id", "next_fire_at"}`, get and update answer the whole schedule, the list is
a plain array (oldest first), delete is 204. `GET /cron/{id}/next-fires?n=`
(default 5, at most 50) answers `{"id", "timezone", "next_fires": [...]}`,
the instants in UTC.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from orch8.application.use_cases.cron import DEFAULT_PREVIEW, MAX_PREVIEW, CronService
from orch8.codec.cron import cron_changes_from_json, cron_to_json, new_cron_from_json
from orch8.codec.times import format_time
from orch8.domain.cron import OverlapPolicy
from orch8.entrypoints.http import params
from orch8.entrypoints.http.body import read_json
from orch8.entrypoints.http.deps import caller_of, deps_of


def _service(request: web.Request) -> CronService:
    service = deps_of(request).cron
    if service is None:  # pragma: no cover - the composition root always provides it
        raise web.HTTPServiceUnavailable(
            text='{"error": "cron is not available"}', content_type="application/json"
        )
    return service


async def create(request: web.Request) -> web.Response:
    cmd = new_cron_from_json(await read_json(request))
    schedule = await _service(request).create(cmd, caller=caller_of(request))
    return web.json_response(
        {"id": schedule.id, "next_fire_at": format_time(schedule.next_fire_at)}, status=201
    )


async def list_(request: web.Request) -> web.Response:
    tenant = params.optional_str(request.query, "tenant_id")
    found = await _service(request).query(tenant, caller=caller_of(request))
    return web.json_response([cron_to_json(s) for s in found])


async def get(request: web.Request) -> web.Response:
    schedule = await _service(request).get(request.match_info["id"], caller=caller_of(request))
    return web.json_response(cron_to_json(schedule))


async def update(request: web.Request) -> web.Response:
    changes = cron_changes_from_json(await read_json(request))
    schedule = await _service(request).update(
        request.match_info["id"], changes, caller=caller_of(request)
    )
    return web.json_response(cron_to_json(schedule))


async def delete(request: web.Request) -> web.Response:
    await _service(request).delete(request.match_info["id"], caller=caller_of(request))
    return web.Response(status=204)


async def next_fires(request: web.Request) -> web.Response:
    n = params.optional_int(request.query, "n", minimum=1)
    schedule_id = request.match_info["id"]
    service = _service(request)
    caller = caller_of(request)
    schedule = await service.get(schedule_id, caller=caller)
    fires = await service.next_fires(
        schedule_id, DEFAULT_PREVIEW if n is None else n, caller=caller
    )
    return web.json_response(
        {
            "id": schedule.id,
            "timezone": schedule.timezone,
            "next_fires": [format_time(t) for t in fires],
        }
    )


ROUTES = [
    ("POST", "/cron", create),
    ("GET", "/cron", list_),
    ("GET", "/cron/{id}", get),
    ("PUT", "/cron/{id}", update),
    ("DELETE", "/cron/{id}", delete),
    ("GET", "/cron/{id}/next-fires", next_fires),
]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{name}"}


_TIME = {"type": "string", "format": "date-time", "description": "RFC 3339, UTC ('Z')"}
_NULLABLE_TIME = {"anyOf": [_TIME, {"type": "null"}]}
_POLICY = {
    "type": "string",
    "enum": [p.value for p in OverlapPolicy],
    "default": "allow",
    "description": "What a due fire does while an earlier run of the schedule is active",
}
_EXPR = {
    "type": "string",
    "description": "5 fields (min hour dom mon dow), 6 (sec first) or 7 (sec first, year last)",
}
_TZ = {"type": "string", "description": "IANA timezone the expression is read in"}
_SCHEDULE: dict[str, Any] = {
    "type": "object",
    "required": [
        "id",
        "tenant_id",
        "namespace",
        "sequence_id",
        "cron_expr",
        "timezone",
        "enabled",
        "metadata",
        "overlap_policy",
        "skipped_fires",
        "next_fire_at",
        "created_at",
        "updated_at",
    ],
    "properties": {
        "id": {"type": "string"},
        "tenant_id": {"type": "string"},
        "namespace": {"type": "string"},
        "sequence_id": {"type": "string"},
        "cron_expr": _EXPR,
        "timezone": _TZ,
        "enabled": {"type": "boolean"},
        "metadata": {"type": "object", "additionalProperties": True},
        "overlap_policy": _POLICY,
        "skipped_fires": {"type": "integer", "minimum": 0},
        "last_skipped_at": _NULLABLE_TIME,
        "last_triggered_at": _NULLABLE_TIME,
        "next_fire_at": _NULLABLE_TIME,
        "created_at": _TIME,
        "updated_at": _TIME,
    },
}
_NEW: dict[str, Any] = {
    "type": "object",
    "required": ["sequence_id", "cron_expr"],
    "properties": {
        "tenant_id": {"type": "string", "description": "defaults to the x-tenant-id header"},
        "namespace": {"type": "string", "default": "default"},
        "sequence_id": {"type": "string"},
        "cron_expr": _EXPR,
        "timezone": {**_TZ, "default": "UTC"},
        "metadata": {"type": "object", "additionalProperties": True, "default": {}},
        "enabled": {"type": "boolean", "default": True},
        "overlap_policy": _POLICY,
    },
}
_CHANGES: dict[str, Any] = {
    "type": "object",
    "description": "Every field optional; absent or null leaves it unchanged",
    "properties": {
        "cron_expr": _EXPR,
        "timezone": _TZ,
        "enabled": {"type": "boolean"},
        "metadata": {"type": "object", "additionalProperties": True},
        "overlap_policy": _POLICY,
    },
}
_ID = _ref("parameters/Id")


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: str) -> dict[str, Any]:
    names = {"400": "BadRequest", "403": "Forbidden", "404": "NotFound"}
    return {code: _ref(f"responses/{names[code]}") for code in codes}


def _op(op_id: str, summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "operationId": op_id,
        "summary": summary,
        "tags": ["cron"],
        "responses": responses,
        **extra,
    }


OPENAPI_PATHS: dict[str, dict[str, Any]] = {
    "/cron": {
        "post": _op(
            "createCron",
            "Create a schedule that starts an instance of a sequence at each occurrence",
            {
                "201": _json(
                    {
                        "type": "object",
                        "required": ["id", "next_fire_at"],
                        "properties": {"id": {"type": "string"}, "next_fire_at": _TIME},
                    },
                    "Created",
                ),
                **_errors("400", "403", "404"),
            },
            requestBody=_body(_NEW),
        ),
        "get": _op(
            "listCron",
            "Every schedule of a tenant, oldest first",
            {"200": _json({"type": "array", "items": _SCHEDULE}, "Schedules")},
            parameters=[_ref("parameters/TenantId")],
        ),
    },
    "/cron/{id}": {
        "get": _op(
            "getCron",
            "A schedule by id",
            {"200": _json(_SCHEDULE, "Found"), **_errors("404")},
            parameters=[_ID],
        ),
        "put": _op(
            "updateCron",
            "Change a schedule; a new expression, timezone or re-enabling starts from now",
            {"200": _json(_SCHEDULE, "Updated"), **_errors("400", "404")},
            parameters=[_ID],
            requestBody=_body(_CHANGES),
        ),
        "delete": _op(
            "deleteCron",
            "Delete a schedule (instances it started are kept)",
            {"204": {"description": "Done; no body"}, **_errors("404")},
            parameters=[_ID],
        ),
    },
    "/cron/{id}/next-fires": {
        "get": _op(
            "cronNextFires",
            "The schedule's next occurrences after now, in UTC (DST resolved)",
            {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["id", "timezone", "next_fires"],
                        "properties": {
                            "id": {"type": "string"},
                            "timezone": {"type": "string"},
                            "next_fires": {"type": "array", "items": _TIME},
                        },
                    },
                    "Upcoming fire instants",
                ),
                **_errors("400", "404"),
            },
            parameters=[
                _ID,
                {
                    "name": "n",
                    "in": "query",
                    "required": False,
                    "schema": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_PREVIEW,
                        "default": DEFAULT_PREVIEW,
                    },
                },
            ],
        )
    },
}
