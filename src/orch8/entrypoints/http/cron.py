"""REST routes for cron schedules.

Shapes follow Orch8's `orch8-api/src/cron.rs`: create is 201
`{"id", "next_fire_at"}`, get and update answer the whole schedule, the list is
a plain array (oldest first), delete is 204. `GET /cron/{id}/next-fires?n=`
(default 5, at most 50) answers `{"id", "timezone", "next_fires": [...]}`,
the instants in UTC.
"""

from __future__ import annotations

from aiohttp import web

from orch8.application.use_cases.cron import DEFAULT_PREVIEW, MAX_PREVIEW, CronService
from orch8.codec.cron import cron_changes_from_json, cron_to_json, new_cron_from_json
from orch8.codec.times import format_time
from orch8.domain.cron import OverlapPolicy
from orch8.entrypoints.http import openapi_ops as doc
from orch8.entrypoints.http import params
from orch8.entrypoints.http.body import read_json
from orch8.entrypoints.http.deps import caller_of, deps_of


def _service(request: web.Request) -> CronService:
    return deps_of(request).cron


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


_POLICY: doc.Json = {
    "type": "string",
    "enum": [p.value for p in OverlapPolicy],
    "default": "allow",
    "description": "What a due fire does while an earlier run of the schedule is active",
}
_EXPR: doc.Json = {
    "type": "string",
    "pattern": "^\\s*\\S+(\\s+\\S+){4,6}\\s*$",
    "description": "5 fields (min hour dom mon dow), 6 (sec first) or 7 (sec first, year last)",
}
_TZ: doc.Json = {"type": "string", "description": "IANA timezone the expression is read in"}

OPENAPI_SCHEMAS: dict[str, doc.Json] = {
    "CronSchedule": doc.object_schema(
        [
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
        id=doc.STR,
        tenant_id=doc.STR,
        namespace=doc.STR,
        sequence_id=doc.STR,
        cron_expr=_EXPR,
        timezone=_TZ,
        enabled=doc.BOOL,
        metadata=doc.OBJ,
        overlap_policy=_POLICY,
        skipped_fires={"type": "integer", "minimum": 0},
        last_skipped_at=doc.nullable(doc.TIME),
        last_triggered_at=doc.nullable(doc.TIME),
        next_fire_at=doc.nullable(doc.TIME),
        created_at=doc.TIME,
        updated_at=doc.TIME,
    ),
    "NewCron": doc.object_schema(
        ["tenant_id", "sequence_id", "cron_expr"],
        tenant_id={**doc.TEXT, "description": "May be left out when x-tenant-id is sent"},
        namespace={"type": "string", "default": "default"},
        sequence_id=doc.TEXT,
        cron_expr=_EXPR,
        timezone={**doc.ref("Timezone"), "default": "UTC"},
        metadata={**doc.OBJ, "default": {}},
        enabled={"type": "boolean", "default": True},
        overlap_policy=_POLICY,
    ),
    "CronChanges": {
        **doc.object_schema(
            [],
            cron_expr=_EXPR,
            timezone=doc.ref("Timezone"),
            enabled=doc.BOOL,
            metadata=doc.OBJ,
            overlap_policy=_POLICY,
        ),
        "description": "Every field optional; absent or null leaves it unchanged",
    },
}

_TAG = "cron"
_SCHEDULE = doc.ref("CronSchedule")
OPENAPI_PATHS: doc.Paths = {
    "/cron": {
        "post": doc.op(
            "createCron",
            "Create a schedule that starts an instance of a sequence at each occurrence",
            _TAG,
            {
                "201": doc.returns(
                    doc.object_schema(["id", "next_fire_at"], id=doc.STR, next_fire_at=doc.TIME),
                    "Created",
                ),
                **doc.errors("BadRequest", "Forbidden", "NotFound"),
            },
            body="NewCron",
        ),
        "get": doc.op(
            "listCron",
            "Every schedule of a tenant, oldest first",
            _TAG,
            {"200": doc.returns(doc.array_of(_SCHEDULE), "Schedules")},
            params=("TenantId",),
        ),
    },
    "/cron/{id}": {
        "get": doc.op(
            "getCron",
            "A schedule by id",
            _TAG,
            {"200": doc.returns(_SCHEDULE, "Found"), **doc.errors("NotFound")},
            params=("Id",),
        ),
        "put": doc.op(
            "updateCron",
            "Change a schedule; a new expression, timezone or re-enabling starts from now",
            _TAG,
            {"200": doc.returns(_SCHEDULE, "Updated"), **doc.errors("BadRequest", "NotFound")},
            params=("Id",),
            body="CronChanges",
        ),
        "delete": doc.op(
            "deleteCron",
            "Delete a schedule (instances it started are kept)",
            _TAG,
            {**doc.no_content(), **doc.errors("NotFound")},
            params=("Id",),
        ),
    },
    "/cron/{id}/next-fires": {
        "get": doc.op(
            "cronNextFires",
            "The schedule's next occurrences after now, in UTC (DST resolved)",
            _TAG,
            {
                "200": doc.returns(
                    doc.object_schema(
                        ["id", "timezone", "next_fires"],
                        id=doc.STR,
                        timezone=doc.STR,
                        next_fires=doc.array_of(doc.TIME),
                    ),
                    "Upcoming fire instants",
                ),
                **doc.errors("BadRequest", "NotFound"),
            },
            params=(
                "Id",
                doc.query(
                    "n",
                    {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_PREVIEW,
                        "default": DEFAULT_PREVIEW,
                    },
                    f"How many occurrences (at most {MAX_PREVIEW})",
                ),
            ),
        )
    },
}
