"""Server-Sent Events, read line by line: the wire format of `GET /instances/{id}/stream`.

`SseParser` is fed one line at a time (with or without its line break) and hands back
an event when a blank line ends one, following the `text/event-stream` rules that matter
here: `event:` names the event (`message` when absent), `data:` lines are joined with
newlines, one space after the colon is dropped, lines starting with `:` are comments (the
server's keep-alives), `id:`/`retry:` and unknown fields are ignored, and a block without
`data:` dispatches nothing. `read_events` reads a whole stream over HTTP.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass

import aiohttp

from orch8.client.errors import Orch8Error, error_text
from orch8.client.types import JSON


@dataclass(frozen=True, slots=True)
class ServerEvent:
    """One event of a stream: its name and its `data:` text."""

    event: str
    data: str

    def json(self) -> JSON:
        """The data decoded as JSON; malformed data is a protocol error (status 0)."""
        try:
            return json.loads(self.data)
        except ValueError as exc:
            raise Orch8Error(0, f"malformed JSON in {self.event!r} event: {exc}") from exc


class SseParser:
    """Accumulates the fields of the event being read."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> ServerEvent | None:
        """Read one line; the finished event when the line ends one, else None."""
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None

    def _dispatch(self) -> ServerEvent | None:
        event, data = self._event or "message", self._data
        self._event, self._data = "", []
        return ServerEvent(event, "\n".join(data)) if data else None


async def read_events(
    session: aiohttp.ClientSession,
    base_url: str,
    path: str,
    *,
    params: Mapping[str, str],
    connect_timeout_s: float,
    read_timeout_s: float,
) -> AsyncGenerator[ServerEvent, None]:
    """GET an event stream and yield its events until the server ends it.

    No overall deadline (a stream lasts as long as the instance): only connecting and
    each read are bounded. An error status, a broken connection or a silent server
    raise `Orch8Error` (status 0 when there was no HTTP answer)."""
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=connect_timeout_s, sock_read=read_timeout_s
    )
    parser = SseParser()
    try:
        async with session.get(
            base_url + path,
            params=params,
            headers={"accept": "text/event-stream"},
            timeout=timeout,
        ) as resp:
            if resp.status >= 400:
                raise Orch8Error(resp.status, error_text(await resp.text(), resp.reason))
            # Split lines here rather than with `readline`, whose length cap is below the
            # largest output a step may produce.
            pending = b""
            async for chunk in resp.content.iter_any():
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    event = parser.feed(line.decode("utf-8", errors="replace"))
                    if event is not None:
                        yield event
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise Orch8Error(0, f"GET {path}: {type(exc).__name__}: {exc}") from exc
