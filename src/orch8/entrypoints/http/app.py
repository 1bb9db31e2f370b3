"""`create_app`: the aiohttp application for orch8's REST API.

Product routes are mounted twice, under `/api/v1` (canonical) and at the root
(Orch8's deprecated compatibility alias, answered with `Deprecation`, `Sunset`
and `Link` headers as Orch8 does). Health, the OpenAPI document and `meta`'s
routes (`/info`, `/metrics`, `/swagger-ui`) live at the root only. The app
carries its dependencies under a typed key and knows nothing of concrete
adapters: the composition root builds `ApiDeps`.
"""

from __future__ import annotations

from aiohttp import web

from orch8.entrypoints.http import (
    api_keys,
    cron,
    health,
    instance_ops,
    instances,
    meta,
    openapi,
    rate_limits,
    sequences,
    signals,
    stream,
    workers,
)
from orch8.entrypoints.http.auth import auth_middleware, tenant_middleware
from orch8.entrypoints.http.deps import DEPS, ApiDeps
from orch8.entrypoints.http.errors import Handler, error_middleware

API_PREFIX = openapi.API_PREFIX
# Paths that are not the deprecated bare alias of a product route.
_NOT_LEGACY = ("/health/", "/api-docs/", API_PREFIX + "/", "/info", "/metrics", "/swagger-ui")

Route = tuple[str, str, Handler]

PRODUCT_ROUTES: list[Route] = [
    *sequences.ROUTES,
    # before instances: `/instances/dlq` and `/instances/bulk/...` are not ids
    *instance_ops.ROUTES,
    *instances.ROUTES,
    *signals.ROUTES,
    *stream.ROUTES,
    *workers.ROUTES,
    *cron.ROUTES,
    *rate_limits.ROUTES,
    *api_keys.ROUTES,
]
ROOT_ROUTES: list[Route] = [*health.ROUTES, *openapi.ROUTES, *meta.ROUTES]

# Orch8's lifecycle headers for the bare (pre-versioned) mount.
DEPRECATION = "@1767225600"
SUNSET = "Sat, 01 Jan 2028 00:00:00 GMT"


async def _mark_legacy_mount(request: web.Request, response: web.StreamResponse) -> None:
    """Tell clients of a bare product path where its canonical replacement is."""
    if request.match_info.http_exception is not None or request.path.startswith(_NOT_LEGACY):
        return
    response.headers["Deprecation"] = DEPRECATION
    response.headers["Sunset"] = SUNSET
    response.headers["Link"] = f'<{API_PREFIX}{request.path_qs}>; rel="successor-version"'


def create_app(deps: ApiDeps) -> web.Application:
    app = web.Application(
        client_max_size=deps.max_body_bytes,
        middlewares=[meta.request_metrics, error_middleware, auth_middleware, tenant_middleware],
    )
    app[DEPS] = deps
    for method, path, handler in ROOT_ROUTES:
        app.router.add_route(method, path, handler)
    for prefix in (API_PREFIX, ""):
        for method, path, handler in PRODUCT_ROUTES:
            app.router.add_route(method, prefix + path, handler)
    app.on_response_prepare.append(_mark_legacy_mount)
    app.on_shutdown.append(stream.close_streams)
    app.on_shutdown.append(workers.close_polls)
    return app
