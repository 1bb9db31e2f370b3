"""Who a request acts as: API-key authentication and the tenant header check.

`auth_middleware` runs on every request but the public routes (`PUBLIC_ROUTES`,
the one list of them): it asks the `ApiKeyService` who the `x-api-key` header
proves the caller to be, and keeps the answer on the request
(`deps.PRINCIPAL`), where `deps.caller_of` reads it. With no root key
configured every request acts as the root, its tenant (if any) from
`x-tenant-id`; with one, a missing or bad key is 401. A tenant key acts for
its tenant: an `x-tenant-id` naming another is 403, and so is a route outside
its capabilities (Orch8's route families, `allows`). Unknown routes need a key
too, so an unauthenticated client learns nothing of which routes exist.

`tenant_middleware` then refuses a request that names no tenant when the
server requires one (`require_tenant_header`); a tenant key names its own.
"""

from __future__ import annotations

from aiohttp import web

from orch8.application.errors import Forbidden
from orch8.domain.api_keys import Capability, Principal
from orch8.entrypoints.http.deps import (
    API_KEY_HEADER,
    PRINCIPAL,
    TENANT_HEADER,
    caller_of,
    deps_of,
)
from orch8.entrypoints.http.errors import Handler, error_response
from orch8.entrypoints.http.openapi_ops import API_PREFIX

# The routes anyone may call, without a key or a tenant: (method, path as the
# router declares it); a path ending in `/*` covers every path under it. Orch8
# leaves exactly these open: the probes, `/info`, and inbound webhooks (which
# carry their own per-trigger secret).
PUBLIC_ROUTES: tuple[tuple[str, str], ...] = (
    ("GET", "/health/*"),
    ("GET", "/info"),
    ("POST", "/webhooks/{slug}"),
)


def is_public_route(method: str, path: str) -> bool:
    """Whether the route `method path` (its declared path) is open to anyone."""
    for public_method, public_path in PUBLIC_ROUTES:
        if method.upper() != public_method:
            continue
        if public_path.endswith("/*"):
            if path.startswith(public_path[:-1]):
                return True
        elif path == public_path:
            return True
    return False


def _is_public(request: web.Request) -> bool:
    route = request.match_info.route
    resource = route.resource
    if request.match_info.http_exception is not None or resource is None:
        return False
    return is_public_route(route.method, resource.canonical)


# Routes that act for no tenant (root-only key management): no tenant header needed.
TENANT_FREE_PREFIXES = ("/api-keys",)


def _tenant_free(request: web.Request) -> bool:
    return _is_public(request) or request.path.removeprefix(API_PREFIX).startswith(
        TENANT_FREE_PREFIXES
    )


def allows(capabilities: tuple[Capability, ...], method: str, path: str) -> bool:
    """Whether a tenant key with `capabilities` may call `method path` (Orch8's
    families: `orch8-api/src/auth.rs`, `capabilities_allow`)."""
    path = path.removeprefix(API_PREFIX)
    for capability in capabilities:
        if capability is Capability.OPERATOR:
            return True
        if capability is Capability.WORKER and (path.startswith("/workers") or path == "/handlers"):
            return True
        if capability is Capability.DEVICE and path.startswith("/mobile"):
            return True
        if capability is Capability.PUBLISHER and path.startswith(
            ("/releases", "/plugins", "/sequences")
        ):
            return True
        if capability is Capability.APPROVER and (
            path.startswith("/approvals")
            or (path.startswith("/instances/") and path.endswith("/signals"))
        ):
            return True
        if capability is Capability.AUDITOR and method in ("GET", "HEAD"):
            return True
    return False


async def _principal(request: web.Request) -> Principal:
    principal = await deps_of(request).api_keys.authenticate(request.headers.get(API_KEY_HEADER))
    if principal.is_root:
        return principal
    named = request.headers.get(TENANT_HEADER, "").strip()
    if named and named != principal.tenant_id:
        raise Forbidden(f"{TENANT_HEADER} does not match the tenant of the API key")
    # The route as declared (`/instances/{id}/signals`), not the path as sent: an
    # encoded character in an id cannot make one route look like another.
    resource = request.match_info.route.resource
    path = request.path if resource is None else resource.canonical
    if not allows(principal.capabilities, request.method, path):
        raise Forbidden("the API key's capabilities do not include this route")
    return principal


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve who the request acts as; 401 without a valid key when auth is on."""
    if not _is_public(request):
        request[PRINCIPAL] = await _principal(request)
    return await handler(request)


@web.middleware
async def tenant_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse tenant-less requests when the server requires a tenant header.

    Unknown routes fall through so they answer 404, not 400; public routes and
    key management need no tenant.
    """
    if (
        deps_of(request).require_tenant_header
        and request.match_info.http_exception is None
        and not _tenant_free(request)
        and caller_of(request) is None
    ):
        return error_response(400, f"{TENANT_HEADER} header is required")
    return await handler(request)
