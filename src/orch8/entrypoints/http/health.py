"""Liveness and readiness probes, served at the root only and open without a tenant."""

from __future__ import annotations

import logging

from aiohttp import web

from orch8.application.errors import ShuttingDown
from orch8.entrypoints.http import openapi_ops as doc
from orch8.entrypoints.http.deps import deps_of
from orch8.entrypoints.http.errors import error_response

log = logging.getLogger("orch8.http")


async def live(request: web.Request) -> web.Response:
    """200 while the process can answer at all."""
    return web.json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    """200 when storage answers and the process is not draining; 503 otherwise so the
    load balancer routes elsewhere."""
    try:
        await deps_of(request).ready()
    except ShuttingDown as exc:
        return error_response(503, str(exc))
    except Exception:
        # Details (paths, hosts) go to the log, not to an unauthenticated probe.
        log.warning("readiness check failed", exc_info=True)
        return error_response(503, "storage is not ready")
    return web.json_response({"status": "ready"})


ROUTES = [
    ("GET", "/health/live", live),
    ("GET", "/health/ready", ready),
]

OPENAPI_PATHS: doc.Paths = {
    "/health/live": {
        "get": doc.op(
            "live", "Liveness probe", "health", {"200": doc.returns(doc.ref("Status"), "Alive")}
        )
    },
    "/health/ready": {
        "get": doc.op(
            "ready",
            "Readiness probe: storage reachable and not shutting down",
            "health",
            {
                "200": doc.returns(doc.ref("Status"), "Ready"),
                "503": doc.returns_error("Storage unreachable, or draining at shutdown"),
            },
        )
    },
}
