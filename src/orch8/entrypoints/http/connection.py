"""Whether the client of a long-lived request (a long-poll, a stream) is still there.

aiohttp does not cancel a handler when its client disconnects (by default); handlers that
wait check this at each wake-up so they stop working for nobody.
"""

from __future__ import annotations

from aiohttp import web


def client_gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()
