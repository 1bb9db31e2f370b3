"""The client's Server-Sent Events reader: the line parser, and a stream over loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from orch8.client import Orch8Client, Orch8Error, ServerEvent
from orch8.client.sse import SseParser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse(*lines: str) -> list[ServerEvent]:
    parser = SseParser()
    return [event for line in lines if (event := parser.feed(line)) is not None]


def test_an_event_is_its_name_and_data_ended_by_a_blank_line() -> None:
    assert parse("event: state\n", 'data: {"state":"running"}\n', "\n") == [
        ServerEvent("state", '{"state":"running"}')
    ]


def test_comments_ids_and_unknown_fields_are_skipped_and_data_lines_join() -> None:
    events = parse(
        ": keep-alive",
        "",
        "id: 7",
        "retry: 100",
        "colour: blue",
        "data:first",
        "data:  second",
        "",
    )
    assert events == [ServerEvent("message", "first\n second")]


def test_crlf_lines_and_a_block_without_data() -> None:
    assert parse("event: nothing\r\n", "\r\n", "event: done\r\n", "data: {}\r\n", "\r\n") == [
        ServerEvent("done", "{}")
    ]
    assert parse("data: 1") == []  # not dispatched until the blank line


def test_json_of_malformed_data_is_a_protocol_error() -> None:
    assert ServerEvent("done", '{"state": "failed"}').json() == {"state": "failed"}
    with pytest.raises(Orch8Error) as caught:
        ServerEvent("done", "{").json()
    assert caught.value.status == 0


Respond = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def serving(respond: Respond) -> AsyncIterator[Orch8Client]:
    app = web.Application()
    app.router.add_get("/api/v1/instances/{id}/stream", respond)
    server = TestServer(app)
    await server.start_server()
    try:
        async with Orch8Client(str(server.make_url("/api/v1")), tenant_id="acme") as client:
            yield client
    finally:
        await server.close()


async def test_a_stream_is_read_across_chunk_boundaries_with_a_large_event() -> None:
    big = {"block_id": "b", "output": "x" * (1024 * 1024)}  # above aiohttp's line limit
    seen: dict[str, str] = {}

    async def respond(request: web.Request) -> web.StreamResponse:
        seen.update(request.query)
        seen["tenant"] = request.headers.get("x-tenant-id", "")
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        body = (
            b'event: state\ndata: {"state":"running"}\n\n: keep-alive\n\n'
            + f"event: output\ndata: {json.dumps(big)}\n\n".encode()
            + b'event: done\ndata: {"state":"completed"}\n\n'
        )
        for start in range(0, len(body), 7001):  # odd-sized pieces cut lines anywhere
            await response.write(body[start : start + 7001])
        return response

    async with serving(respond) as client:
        events = [e async for e in client.stream_instance("i1", poll_ms=250)]
    assert [e.event for e in events] == ["state", "output", "done"]
    assert events[1].json() == big
    assert seen == {"poll_ms": "250", "tenant": "acme"}


async def test_an_error_status_and_no_server_raise_orch8_error() -> None:
    async def respond(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": "poll_ms: must be an integer"}, status=400)

    async with serving(respond) as client:
        with pytest.raises(Orch8Error) as caught:
            _ = [e async for e in client.stream_instance("i1")]
    assert (caught.value.status, caught.value.message) == (400, "poll_ms: must be an integer")

    async with Orch8Client(f"http://127.0.0.1:{free_port()}") as client:
        with pytest.raises(Orch8Error) as caught:
            _ = [e async for e in client.stream_instance("i1")]
    assert caught.value.status == 0


async def test_a_silent_server_is_a_timeout() -> None:
    never = asyncio.Event()

    async def respond(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'event: state\ndata: {"state":"running"}\n\n')
        await never.wait()
        return response

    events: list[ServerEvent] = []

    async def follow(client: Orch8Client) -> None:
        async for event in client.stream_instance("i1", read_timeout_s=0.3):
            events.append(event)

    async with serving(respond) as client:
        with pytest.raises(Orch8Error) as caught:
            await follow(client)
        never.set()
    assert [e.event for e in events] == ["state"]
    assert caught.value.status == 0
