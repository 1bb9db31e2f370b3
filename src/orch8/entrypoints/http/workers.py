"""The external-worker REST protocol, wire-compatible with Orch8.

`POST /workers/tasks/poll` claims tasks (optionally long-polling with
`wait_ms`), `POST /workers/tasks/{id}/heartbeat|complete|fail` report on one,
and `GET /workers/tasks`, `/workers/tasks/stats`, `/workers` read the queue
and the fleet. Lost claims are 409, unknown tasks 404, malformed bodies 400,
an output over the configured limit 413.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from orch8.application.ports.storage import TaskFilter
from orch8.application.use_cases.workers import (
    MAX_POLL_LIMIT,
    MAX_WAIT_MS,
    OutputTooLarge,
    WorkerService,
)
from orch8.codec.tasks import (
    PollRequest,
    complete_from_json,
    fail_from_json,
    poll_request_from_json,
    report_from_json,
    stats_to_json,
    task_state_from_json,
    task_to_json,
    worker_to_json,
)
from orch8.domain.errors import ValidationError
from orch8.entrypoints.http import params
from orch8.entrypoints.http.body import read_json
from orch8.entrypoints.http.deps import DEPS, caller_of, deps_of
from orch8.entrypoints.http.errors import error_response

DEFAULT_LIST_LIMIT = 50


def _service(request: web.Request) -> WorkerService:
    service = deps_of(request).workers
    if service is None:  # pragma: no cover - the composition root always provides it
        raise web.HTTPServiceUnavailable(
            text='{"error": "workers are not available"}', content_type="application/json"
        )
    return service


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


async def poll(request: web.Request) -> web.Response:
    return await _poll(request, poll_request_from_json(await read_json(request)))


async def _poll(request: web.Request, req: PollRequest) -> web.Response:
    tasks = await _service(request).poll(
        req.handler_name,
        req.worker_id,
        req.limit,
        wait_ms=req.wait_ms,
        queue_name=req.queue_name,
        caller=caller_of(request),
        gone=lambda: _gone(request),
    )
    return web.json_response([task_to_json(t) for t in tasks])


async def poll_queue(request: web.Request) -> web.Response:
    """Orch8's queue poll: the same as `poll`, with `queue_name` required."""
    req = poll_request_from_json(await read_json(request))
    if req.queue_name is None:
        raise ValidationError("is required", path="queue_name")
    return await _poll(request, req)


async def heartbeat(request: web.Request) -> web.Response:
    report = report_from_json(await read_json(request))
    task = await _service(request).heartbeat(
        request.match_info["id"], report.worker_id, report.claim_epoch, caller=caller_of(request)
    )
    return web.json_response(task_to_json(task))


async def complete(request: web.Request) -> web.Response:
    report, output = complete_from_json(await read_json(request))
    try:
        task = await _service(request).complete(
            request.match_info["id"],
            report.worker_id,
            report.claim_epoch,
            output,
            caller=caller_of(request),
        )
    except OutputTooLarge as exc:
        return error_response(413, str(exc))
    return web.json_response(task_to_json(task))


async def fail(request: web.Request) -> web.Response:
    req = fail_from_json(await read_json(request))
    task = await _service(request).fail(
        request.match_info["id"],
        req.report.worker_id,
        req.report.claim_epoch,
        req.message,
        req.retryable,
        caller=caller_of(request),
    )
    return web.json_response(task_to_json(task))


async def list_tasks(request: web.Request) -> web.Response:
    q = request.query
    state = params.optional_str(q, "state")
    flt = TaskFilter(
        tenant_id=params.optional_str(q, "tenant_id"),
        handler_name=params.optional_str(q, "handler_name"),
        state=None if state is None else task_state_from_json(state, "state"),
        instance_id=params.optional_str(q, "instance_id"),
    )
    page = params.page(q, default_limit=DEFAULT_LIST_LIMIT)
    tasks = await _service(request).tasks(flt, page, caller=caller_of(request))
    return web.json_response([task_to_json(t) for t in tasks])


async def stats(request: web.Request) -> web.Response:
    return web.json_response(
        stats_to_json(await _service(request).stats(caller=caller_of(request)))
    )


def _flag(value: str | None, name: str) -> bool:
    if value is None:
        return False
    text = value.strip().lower()
    if text in {"1", "true", "yes"}:
        return True
    if text in {"0", "false", "no", ""}:
        return False
    raise ValidationError("must be true or false", path=name)


async def list_workers(request: web.Request) -> web.Response:
    q = request.query
    alive = params.optional_int(q, "alive_within_secs", minimum=1)
    fleet = await _service(request).workers(
        caller=caller_of(request),
        alive_within_s=60 if alive is None else alive,
        include_stale=_flag(q.get("include_stale"), "include_stale"),
    )
    return web.json_response([worker_to_json(w) for w in fleet])


async def close_polls(app: web.Application) -> None:
    """At shutdown: release waiting long-polls so the server can stop at once."""
    service = app[DEPS].workers
    if service is not None:
        service.shutdown()


ROUTES = [
    ("POST", "/workers/tasks/poll", poll),
    ("POST", "/workers/tasks/poll/queue", poll_queue),
    ("GET", "/workers/tasks", list_tasks),
    ("GET", "/workers/tasks/stats", stats),
    ("POST", "/workers/tasks/{id}/heartbeat", heartbeat),
    ("POST", "/workers/tasks/{id}/complete", complete),
    ("POST", "/workers/tasks/{id}/fail", fail),
    ("GET", "/workers", list_workers),
]


def _errors(*codes: str) -> dict[str, Any]:
    names = {
        "400": "BadRequest",
        "404": "NotFound",
        "409": "Conflict",
        "413": "PayloadTooLarge",
    }
    return {c: {"$ref": f"#/components/responses/{names[c]}"} for c in codes}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


_STR = {"type": "string"}
_NULLABLE_STR = {"type": ["string", "null"]}
_TIME = {"type": ["string", "null"], "format": "date-time"}
_STATE = {"type": "string", "enum": ["pending", "claimed", "completed", "failed", "cancelled"]}
_EPOCH = {
    "type": "integer",
    "minimum": 0,
    "description": "The claim_epoch the task was claimed at; a stale epoch is refused (409)."
    " Omitted: any epoch of this worker.",
}
WORKER_TASK = {
    "type": "object",
    "description": "Orch8's WorkerTask.",
    "properties": {
        "id": _STR,
        "instance_id": _STR,
        "block_id": _STR,
        "handler_name": _STR,
        "queue_name": _NULLABLE_STR,
        "params": {"type": "object"},
        "context": {"type": "object", "description": "{data, config} of the instance"},
        "attempt": {"type": "integer"},
        "timeout_ms": {"type": ["integer", "null"]},
        "state": _STATE,
        "worker_id": _NULLABLE_STR,
        "claimed_at": _TIME,
        "heartbeat_at": _TIME,
        "claim_epoch": {"type": "integer"},
        "output": {},
        "error_message": _NULLABLE_STR,
        "error_retryable": {"type": ["boolean", "null"]},
        "created_at": {"type": "string", "format": "date-time"},
        "completed_at": _TIME,
    },
}
_TASK_LIST = {"type": "array", "items": WORKER_TASK}
_ID = [{"$ref": "#/components/parameters/Id"}]


def _op(op_id: str, summary: str, responses: dict[str, Any]) -> dict[str, Any]:
    return {"operationId": op_id, "summary": summary, "tags": ["workers"], "responses": responses}


def _report_op(op_id: str, summary: str, body: dict[str, Any], codes: tuple[str, ...]) -> Any:
    return {
        **_op(op_id, summary, {"200": _json(WORKER_TASK, "The task"), **_errors(*codes)}),
        "parameters": _ID,
        "requestBody": _body(body),
    }


OPENAPI_PATHS: dict[str, dict[str, Any]] = {
    "/workers/tasks/poll": {
        "post": {
            **_op(
                "pollWorkerTasks",
                "Claim pending tasks of a handler (SKIP LOCKED); optionally long-poll",
                {"200": _json(_TASK_LIST, "Claimed tasks ([] when none)"), **_errors("400")},
            ),
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["handler_name", "worker_id"],
                    "properties": {
                        "handler_name": _STR,
                        "worker_id": _STR,
                        "limit": {
                            "type": "integer",
                            "minimum": 0,
                            "default": 1,
                            "description": f"clamped to {MAX_POLL_LIMIT}",
                        },
                        "wait_ms": {
                            "type": "integer",
                            "minimum": 0,
                            "description": "Long-poll: wait up to this long for a task"
                            f" (clamped to {MAX_WAIT_MS})",
                        },
                        "queue_name": {"type": "string", "description": "only this queue's tasks"},
                    },
                }
            ),
        }
    },
    "/workers/tasks/poll/queue": {
        "post": {
            **_op(
                "pollWorkerTasksFromQueue",
                "Claim pending tasks of a handler on one queue (queue_name required)",
                {"200": _json(_TASK_LIST, "Claimed tasks ([] when none)"), **_errors("400")},
            ),
            "requestBody": _body(
                {
                    "type": "object",
                    "required": ["handler_name", "worker_id", "queue_name"],
                    "properties": {
                        "handler_name": _STR,
                        "worker_id": _STR,
                        "queue_name": _STR,
                        "limit": {"type": "integer", "minimum": 0, "default": 1},
                        "wait_ms": {"type": "integer", "minimum": 0},
                    },
                }
            ),
        }
    },
    "/workers/tasks": {
        "get": {
            **_op(
                "listWorkerTasks",
                "Worker tasks, newest first",
                {"200": _json(_TASK_LIST, "A page of tasks"), **_errors("400")},
            ),
            "parameters": [
                _query("tenant_id", _STR, "Filter by tenant (the x-tenant-id header wins)"),
                _query("handler_name", _STR, "Filter by handler"),
                _query("state", _STATE, "Filter by state"),
                _query("instance_id", _STR, "Filter by instance"),
                {"$ref": "#/components/parameters/Offset"},
                _query(
                    "limit",
                    {"type": "integer", "minimum": 1, "default": DEFAULT_LIST_LIMIT},
                    "Page size (clamped to 1000)",
                ),
            ],
        }
    },
    "/workers/tasks/stats": {
        "get": _op(
            "workerTaskStats",
            "Task counts per state and per handler, and the workers holding claims",
            {
                "200": _json(
                    {
                        "type": "object",
                        "properties": {
                            "by_state": {"type": "object"},
                            "by_handler": {"type": "object"},
                            "active_workers": {"type": "array", "items": _STR},
                        },
                    },
                    "Counts",
                )
            },
        )
    },
    "/workers/tasks/{id}/heartbeat": {
        "post": _report_op(
            "heartbeatWorkerTask",
            "Keep a claim alive (the reaper frees claims without a heartbeat)",
            {
                "type": "object",
                "required": ["worker_id"],
                "properties": {"worker_id": _STR, "claim_epoch": _EPOCH},
            },
            ("400", "404", "409"),
        )
    },
    "/workers/tasks/{id}/complete": {
        "post": _report_op(
            "completeWorkerTask",
            "Report success; an object output merges into context.data (idempotent)",
            {
                "type": "object",
                "required": ["worker_id", "output"],
                "properties": {"worker_id": _STR, "claim_epoch": _EPOCH, "output": {}},
            },
            ("400", "404", "409", "413"),
        )
    },
    "/workers/tasks/{id}/fail": {
        "post": _report_op(
            "failWorkerTask",
            "Report failure; retryable ones are retried by the step's retry policy",
            {
                "type": "object",
                "required": ["worker_id", "message"],
                "properties": {
                    "worker_id": _STR,
                    "claim_epoch": _EPOCH,
                    "message": _STR,
                    "retryable": {"type": "boolean", "default": False},
                },
            },
            ("400", "404", "409"),
        )
    },
    "/workers": {
        "get": {
            **_op(
                "listWorkers",
                "The worker fleet: handlers polled, last seen, tasks in flight",
                {
                    "200": _json(
                        {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "worker_id": _STR,
                                    "handlers": {"type": "array", "items": _STR},
                                    "queues": {"type": "array", "items": _STR},
                                    "version": _NULLABLE_STR,
                                    "last_seen_at": {"type": "string", "format": "date-time"},
                                    "alive": {"type": "boolean"},
                                    "in_flight": {"type": "integer"},
                                },
                            },
                        },
                        "Workers, most recently seen first",
                    ),
                    **_errors("400"),
                },
            ),
            "parameters": [
                _query(
                    "alive_within_secs",
                    {"type": "integer", "minimum": 1, "default": 60},
                    "Liveness window",
                ),
                _query(
                    "include_stale",
                    {"type": "boolean", "default": False},
                    "Also list workers not seen within the window",
                ),
            ],
        }
    },
}
