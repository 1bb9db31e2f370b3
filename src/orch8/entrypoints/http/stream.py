"""`GET /instances/{id}/stream`: an instance's live events as Server-Sent Events.

A thin translator of the `InstanceStream` use case's async iterator into
`text/event-stream` frames, as Orch8's `orch8-api/src/streaming.rs` sends them:

    event: state    data: {"instance_id": "...", "state": "running"}   (on change)
    event: output   data: <BlockOutput JSON, as GET /instances/{id}/outputs>
    event: done     data: {"state": "completed"}            then the stream ends
    event: error    data: {"error": "instance not found"}   then the stream ends

plus a `: keep-alive` comment after 15 s without an event. `poll_ms` (default
500, clamped to 100-5000) sets how often storage is polled for changes made by
other processes. Past the per-process limit of open streams the answer is a
503 JSON error. A client that goes away is noticed at the next wake-up (at most
`poll_ms` later) and its stream closed quietly; at shutdown, `close_streams`
ends every open stream so the server does not wait for them. Errors before the
first frame (a bad `poll_ms`, an unknown instance, the limit) are ordinary JSON
errors, mapped by `errors.py`; after it they can only be an `error` frame.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from orch8.application.use_cases.instance_stream import (
    DEFAULT_POLL_MS,
    Finished,
    Idle,
    OutputAdded,
    StateChanged,
    StreamEvent,
    StreamFailed,
)
from orch8.codec.wire import output_to_json
from orch8.entrypoints.http import openapi_ops as doc
from orch8.entrypoints.http import params
from orch8.entrypoints.http.connection import client_gone
from orch8.entrypoints.http.deps import DEPS, caller_of, deps_of

log = logging.getLogger("orch8.http")

KEEPALIVE_S = 15.0
KEEPALIVE = b": keep-alive\n\n"
HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # tell nginx-like proxies not to buffer the stream
}


def frame(event: StreamEvent) -> bytes:
    """One SSE frame (`event:` and a single-line JSON `data:`)."""
    name: str
    data: dict[str, Any]
    if isinstance(event, StateChanged):
        name, data = "state", {"instance_id": event.instance_id, "state": event.state.value}
    elif isinstance(event, OutputAdded):
        name, data = "output", output_to_json(event.output)
    elif isinstance(event, Finished):
        name, data = "done", {"state": event.state.value}
    elif isinstance(event, StreamFailed):
        name, data = "error", {"error": event.message}
    else:
        raise TypeError(f"no SSE frame for {event!r}")
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"event: {name}\ndata: {payload}\n\n".encode()


async def stream(request: web.Request) -> web.StreamResponse:
    streams = deps_of(request).streams
    interval = params.optional_int(request.query, "poll_ms")
    events = streams.open(
        request.match_info["id"],
        caller=caller_of(request),
        poll_ms=DEFAULT_POLL_MS if interval is None else interval,
    )
    async with events:
        # The first event needs a storage read: a failure there is still a plain 500.
        first = await anext(events)
        response = web.StreamResponse(headers=HEADERS)
        try:
            await response.prepare(request)
            await _pump(request, response, first, events)
        except ConnectionError:  # the client went away mid-write: nothing to tell anyone
            return response
        except Exception:
            # Headers are sent: the error can only be reported inside the stream.
            log.exception("stream of %s failed", request.match_info["id"])
            await _try_write(response, frame(StreamFailed("internal error")))
        await _try_close(response)
    return response


async def _pump(
    request: web.Request,
    response: web.StreamResponse,
    first: StreamEvent,
    events: AsyncIterator[StreamEvent],
) -> None:
    loop = asyncio.get_running_loop()
    last_write = loop.time()
    event: StreamEvent | None = first
    while event is not None:
        if isinstance(event, Idle):
            if client_gone(request):
                return
            if loop.time() - last_write >= KEEPALIVE_S:
                await response.write(KEEPALIVE)
                last_write = loop.time()
        else:
            await response.write(frame(event))
            last_write = loop.time()
        event = await anext(events, None)


async def _try_write(response: web.StreamResponse, data: bytes) -> None:
    try:
        await response.write(data)
    except ConnectionError:
        return


async def _try_close(response: web.StreamResponse) -> None:
    try:
        await response.write_eof()
    except ConnectionError:
        return


async def close_streams(app: web.Application) -> None:
    """`on_shutdown`: end every open stream so the server need not wait for them."""
    streams = app[DEPS].streams
    if streams is not None:
        streams.close()


ROUTES = [("GET", "/instances/{id}/stream", stream)]

# One event of the stream (OpenAPI 3.1: the schema of a text/event-stream describes
# each event); `data` is one line of JSON whose shape depends on `event`.
SSE_EVENT: doc.Json = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["state", "output", "done", "error"]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": "state: {instance_id, state}; output: a BlockOutput;"
            " done: {state}; error: {error}",
        },
    },
}

OPENAPI_PATHS: doc.Paths = {
    "/instances/{id}/stream": {
        "get": doc.op(
            "streamInstance",
            "Live events of an instance (Server-Sent Events)",
            "instances",
            {
                "200": {
                    "description": "`event: state|output|done|error` frames with JSON `data`;"
                    " `: keep-alive` comments every 15 s; ends after `done` or `error`",
                    "content": {"text/event-stream": {"schema": SSE_EVENT}},
                },
                **doc.errors("BadRequest"),
                "503": doc.returns_error("Too many open streams, or shutting down"),
            },
            params=(
                "Id",
                doc.query(
                    "poll_ms",
                    {"type": "integer", "maximum": params.INT64_MAX, "default": DEFAULT_POLL_MS},
                    "Storage poll interval for other processes' changes; clamped to 100-5000",
                ),
            ),
        )
    }
}
