"""Every failure leaves as JSON `{"error": "..."}` with one status code.

Use cases raise application and domain errors; this module is the single
place that maps them to HTTP, so handlers stay straight-line code. Errors
aiohttp raises itself (unknown route, wrong method, body too large) are
rewritten to the same JSON shape, because Orch8 clients parse `error` from
every non-2xx answer. Anything unexpected becomes a 500 whose body says only
"internal error": the traceback goes to the log, never to the client.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from orch8.application.errors import (
    Conflict,
    ContextTooLarge,
    Forbidden,
    InstanceTerminal,
    NotFound,
    OutputTooLarge,
    ShuttingDown,
    StaleWrite,
    StreamUnavailable,
    Unauthorized,
    UnstorableValue,
)
from orch8.domain.errors import DomainError
from orch8.entrypoints.http.deps import deps_of

log = logging.getLogger("orch8.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# What each error a use case raises answers, tried in order (the first match wins).
# An error missing here is a bug: it answers 500 and is logged.
STATUS_OF: tuple[tuple[type[Exception], int], ...] = (
    (DomainError, 400),  # ValidationError, InvalidTransition: the request is wrong
    (InstanceTerminal, 400),  # Orch8 answers 400 for a signal to an ended instance
    (UnstorableValue, 400),  # a value in the request the store cannot hold
    (Unauthorized, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (StaleWrite, 409),
    (OutputTooLarge, 413),
    (ContextTooLarge, 413),  # Orch8's max_context_bytes
    (StreamUnavailable, 503),
    (ShuttingDown, 503),
)
# Headers some answers carry besides the JSON body.
HEADERS_OF: dict[type[Exception], dict[str, str]] = {StreamUnavailable: {"Retry-After": "1"}}


def error_response(status: int, message: str, **headers: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers or None)


def _from_error(exc: Exception) -> web.Response | None:
    """The answer to an application or domain error; None for anything else."""
    for kind, status in STATUS_OF:
        if isinstance(exc, kind):
            return error_response(status, str(exc), **HEADERS_OF.get(kind, {}))
    return None


async def _allowed_methods(request: web.Request, fallback: set[str]) -> set[str]:
    """The methods of the first route whose path matches: a literal path such as
    `/instances/batch` comes before `/instances/{id}`, and only its methods are its own
    (aiohttp would list every matching route's)."""
    for resource in request.app.router.resources():
        _match, allowed = await resource.resolve(request)
        if allowed:
            return set(allowed)
    return fallback


async def _from_http_exception(request: web.Request, exc: web.HTTPException) -> web.Response:
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = await _allowed_methods(request, set(exc.allowed_methods))
        return error_response(
            405,
            f"method {request.method} not allowed for {request.path}",
            Allow=",".join(sorted(allowed)),
        )
    if isinstance(exc, web.HTTPNotFound):
        return error_response(404, f"no route for {request.method} {request.path}")
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        limit = deps_of(request).max_body_bytes
        return error_response(413, f"request body exceeds the {limit}-byte limit")
    return error_response(exc.status, exc.reason or "request failed")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Translate exceptions to JSON error responses (the outermost middleware)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return await _from_http_exception(request, exc)
    except Exception as exc:
        answer = _from_error(exc)
        if answer is None:
            log.exception("unhandled error in %s %s", request.method, request.path)
            return error_response(500, "internal error")
        return answer
