"""The external-worker REST protocol, wire-compatible with Orch8.

`POST /workers/tasks/poll` claims tasks (optionally long-polling with
`wait_ms`), `POST /workers/tasks/{id}/heartbeat|complete|fail` report on one,
and `GET /workers/tasks`, `/workers/tasks/stats`, `/workers` read the queue
and the fleet. Lost claims are 409, unknown tasks 404, malformed bodies 400,
an output over the configured limit 413.
"""

from __future__ import annotations

from aiohttp import web

from orch8.application.ports.storage import TaskFilter
from orch8.application.use_cases.workers import (
    DEFAULT_ALIVE_WITHIN_S,
    MAX_POLL_LIMIT,
    MAX_WAIT_MS,
    WorkerService,
)
from orch8.codec.tasks import (
    PollRequest,
    complete_from_json,
    fail_from_json,
    poll_request_from_json,
    queue_poll_request_from_json,
    report_from_json,
    stats_to_json,
    task_state_from_json,
    task_to_json,
    worker_to_json,
)
from orch8.domain.tasks import TaskState
from orch8.entrypoints.http import openapi_ops as doc
from orch8.entrypoints.http import params
from orch8.entrypoints.http.body import read_json
from orch8.entrypoints.http.connection import client_gone
from orch8.entrypoints.http.deps import DEPS, caller_of, deps_of

DEFAULT_LIST_LIMIT = 50


def _service(request: web.Request) -> WorkerService:
    return deps_of(request).workers


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
        gone=lambda: client_gone(request),
    )
    return web.json_response([task_to_json(t) for t in tasks])


async def poll_queue(request: web.Request) -> web.Response:
    """Orch8's queue poll: the same as `poll`, with `queue_name` required."""
    return await _poll(request, queue_poll_request_from_json(await read_json(request)))


async def heartbeat(request: web.Request) -> web.Response:
    report = report_from_json(await read_json(request))
    task = await _service(request).heartbeat(
        request.match_info["id"], report.worker_id, report.claim_epoch, caller=caller_of(request)
    )
    return web.json_response(task_to_json(task))


async def complete(request: web.Request) -> web.Response:
    report, output = complete_from_json(await read_json(request))
    task = await _service(request).complete(
        request.match_info["id"],
        report.worker_id,
        report.claim_epoch,
        output,
        caller=caller_of(request),
    )
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
    page = params.page_of(request, default_limit=DEFAULT_LIST_LIMIT)
    tasks = await _service(request).tasks(flt, page, caller=caller_of(request))
    return web.json_response([task_to_json(t) for t in tasks])


async def stats(request: web.Request) -> web.Response:
    return web.json_response(
        stats_to_json(await _service(request).stats(caller=caller_of(request)))
    )


async def list_workers(request: web.Request) -> web.Response:
    q = request.query
    alive = params.optional_int(q, "alive_within_secs", minimum=1, maximum=params.INT32_MAX)
    fleet = await _service(request).workers(
        caller=caller_of(request),
        alive_within_s=DEFAULT_ALIVE_WITHIN_S if alive is None else alive,
        include_stale=params.flag(q, "include_stale"),
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


_NULLABLE_STR = doc.nullable(doc.STR)
_EPOCH: doc.Json = {
    "type": "integer",
    "minimum": 0,
    "description": "The claim_epoch the task was claimed at; a stale epoch is refused (409)."
    " Omitted: any epoch of this worker.",
}
_LIMIT: doc.Json = {
    "type": "integer",
    "minimum": 0,
    "default": 1,
    "description": f"clamped to {MAX_POLL_LIMIT}",
}
_WAIT: doc.Json = {
    "type": "integer",
    "minimum": 0,
    "description": f"Long-poll: wait up to this long for a task (clamped to {MAX_WAIT_MS})",
}
_POLL = {"handler_name": doc.TEXT, "worker_id": doc.TEXT, "limit": _LIMIT, "wait_ms": _WAIT}

OPENAPI_SCHEMAS: dict[str, doc.Json] = {
    "WorkerTask": {
        "type": "object",
        "description": "Orch8's WorkerTask.",
        "properties": {
            "id": doc.STR,
            "instance_id": doc.STR,
            "block_id": doc.STR,
            "handler_name": doc.STR,
            "queue_name": _NULLABLE_STR,
            "params": {"type": "object"},
            "context": {"type": "object", "description": "{data, config} of the instance"},
            "attempt": doc.INT,
            "timeout_ms": doc.nullable(doc.INT),
            "state": doc.ref("WorkerTaskState"),
            "worker_id": _NULLABLE_STR,
            "claimed_at": doc.nullable(doc.TIME),
            "heartbeat_at": doc.nullable(doc.TIME),
            "claim_epoch": doc.INT,
            "output": {},
            "error_message": _NULLABLE_STR,
            "error_retryable": doc.nullable(doc.BOOL),
            "created_at": doc.TIME,
            "completed_at": doc.nullable(doc.TIME),
        },
    },
    "WorkerTaskState": {"type": "string", "enum": [s.value for s in TaskState]},
    "WorkerPoll": {
        "type": "object",
        "required": ["handler_name", "worker_id"],
        "properties": {
            **_POLL,
            "queue_name": {"type": "string", "description": "only this queue's tasks"},
        },
    },
    "WorkerQueuePoll": {
        "type": "object",
        "required": ["handler_name", "worker_id", "queue_name"],
        "properties": {**_POLL, "queue_name": doc.NONEMPTY},
    },
}

_TAG = "workers"
_TASK = doc.ref("WorkerTask")
_CLAIMED = doc.returns(doc.array_of(_TASK), "Claimed tasks ([] when none)")


def _report_op(op_id: str, summary: str, body: doc.Json, *error_names: str) -> doc.Json:
    """A report on one claimed task: the task as it now is, or why not."""
    return doc.op(
        op_id,
        summary,
        _TAG,
        {"200": doc.returns(_TASK, "The task"), **doc.errors(*error_names)},
        params=("Id",),
        body=body,
    )


OPENAPI_PATHS: doc.Paths = {
    "/workers/tasks/poll": {
        "post": doc.op(
            "pollWorkerTasks",
            "Claim pending tasks of a handler (SKIP LOCKED); optionally long-poll",
            _TAG,
            {"200": _CLAIMED, **doc.errors("BadRequest")},
            body="WorkerPoll",
        )
    },
    "/workers/tasks/poll/queue": {
        "post": doc.op(
            "pollWorkerTasksFromQueue",
            "Claim pending tasks of a handler on one queue (queue_name required)",
            _TAG,
            {"200": _CLAIMED, **doc.errors("BadRequest")},
            body="WorkerQueuePoll",
        )
    },
    "/workers/tasks": {
        "get": doc.op(
            "listWorkerTasks",
            "Worker tasks, newest first",
            _TAG,
            {
                "200": doc.returns(doc.array_of(_TASK), "A page of tasks"),
                **doc.errors("BadRequest"),
            },
            params=(
                doc.query("tenant_id", doc.STR, "Filter by tenant (the x-tenant-id header wins)"),
                doc.query("handler_name", doc.STR, "Filter by handler"),
                doc.query("state", doc.ref("WorkerTaskState"), "Filter by state"),
                doc.query("instance_id", doc.STR, "Filter by instance"),
                "Offset",
                doc.query(
                    "limit",
                    doc.page_size(DEFAULT_LIST_LIMIT),
                    "Page size, clamped to the server's max_page_size (1000 by default)",
                ),
            ),
        )
    },
    "/workers/tasks/stats": {
        "get": doc.op(
            "workerTaskStats",
            "Task counts per state and per handler, and the workers holding claims",
            _TAG,
            {
                "200": doc.returns(
                    {
                        "type": "object",
                        "properties": {
                            "by_state": {"type": "object"},
                            "by_handler": {"type": "object"},
                            "active_workers": doc.array_of(doc.STR),
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
                "properties": {"worker_id": doc.TEXT, "claim_epoch": _EPOCH},
            },
            "BadRequest",
            "NotFound",
            "Conflict",
        )
    },
    "/workers/tasks/{id}/complete": {
        "post": _report_op(
            "completeWorkerTask",
            "Report success; an object output merges into context.data (idempotent)",
            {
                "type": "object",
                "required": ["worker_id", "output"],
                "properties": {
                    "worker_id": doc.TEXT,
                    "claim_epoch": _EPOCH,
                    "output": {
                        "description": "Any JSON value (null too) without NUL characters,"
                        " up to the server's worker_max_output_bytes"
                    },
                },
            },
            "BadRequest",
            "NotFound",
            "Conflict",
            "PayloadTooLarge",
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
                    "worker_id": doc.TEXT,
                    "claim_epoch": _EPOCH,
                    "message": doc.STR,
                    "retryable": {"type": "boolean", "default": False},
                },
            },
            "BadRequest",
            "NotFound",
            "Conflict",
        )
    },
    "/workers": {
        "get": doc.op(
            "listWorkers",
            "The worker fleet: handlers polled, last seen, tasks in flight",
            _TAG,
            {
                "200": doc.returns(
                    doc.array_of(
                        {
                            "type": "object",
                            "properties": {
                                "worker_id": doc.STR,
                                "handlers": doc.array_of(doc.STR),
                                "queues": doc.array_of(doc.STR),
                                "version": _NULLABLE_STR,
                                "last_seen_at": doc.TIME,
                                "alive": doc.BOOL,
                                "in_flight": doc.INT,
                            },
                        }
                    ),
                    "Workers, most recently seen first",
                ),
                **doc.errors("BadRequest"),
            },
            params=(
                doc.query(
                    "alive_within_secs",
                    {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": params.INT32_MAX,
                        "default": DEFAULT_ALIVE_WITHIN_S,
                    },
                    "Liveness window",
                ),
                doc.query(
                    "include_stale",
                    {"type": "boolean", "default": False},
                    "Also list workers not seen within the window",
                ),
            ),
        )
    },
}
