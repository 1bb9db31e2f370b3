"""What the HTTP entrypoint needs from the composition root, and how handlers reach it.

The app holds one `ApiDeps` under a typed `web.AppKey`, so handlers get the use
cases with their real types (no string-keyed lookups, no globals) and tests can
build an app around any storage.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from attrs import frozen

from orch8.application.use_cases.api import UseCases
from orch8.application.use_cases.api_keys import ApiKeyService
from orch8.application.use_cases.cron import CronService
from orch8.application.use_cases.instance_ops import InstanceOps
from orch8.application.use_cases.instance_stream import InstanceStream
from orch8.application.use_cases.instances import InstanceService
from orch8.application.use_cases.rate_limits import RateLimitService
from orch8.application.use_cases.sequences import SequenceCatalog
from orch8.application.use_cases.service_info import MetricsService, ServerInfo
from orch8.application.use_cases.signals import SignalService
from orch8.application.use_cases.workers import WorkerService
from orch8.domain.api_keys import ROOT, Principal

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_PAGE_SIZE = 1000  # Orch8 clamps `limit` to 1000
TENANT_HEADER = "x-tenant-id"
API_KEY_HEADER = "x-api-key"


@frozen
class ApiDeps:
    """The collaborators of every REST handler: the use cases, plus what only HTTP needs.

    `ready` raises when storage cannot serve requests; `/health/ready` turns
    that into a 503 so a load balancer stops routing to this process.
    `require_tenant_header` mirrors `ORCH8_REQUIRE_TENANT_HEADER`;
    `max_body_bytes` and `max_page_size` are the HTTP limits of the settings.
    """

    sequences: SequenceCatalog
    instances: InstanceService
    signals: SignalService
    streams: InstanceStream
    instance_ops: InstanceOps
    workers: WorkerService
    cron: CronService
    rate_limits: RateLimitService
    api_keys: ApiKeyService
    metrics: MetricsService
    info: ServerInfo
    ready: Callable[[], Awaitable[None]]
    require_tenant_header: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_page_size: int = DEFAULT_MAX_PAGE_SIZE

    @staticmethod
    def of(
        use_cases: UseCases,
        *,
        ready: Callable[[], Awaitable[None]],
        require_tenant_header: bool = False,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_page_size: int = DEFAULT_MAX_PAGE_SIZE,
    ) -> ApiDeps:
        return ApiDeps(
            sequences=use_cases.sequences,
            instances=use_cases.instances,
            signals=use_cases.signals,
            streams=use_cases.streams,
            instance_ops=use_cases.instance_ops,
            workers=use_cases.workers,
            cron=use_cases.cron,
            rate_limits=use_cases.rate_limits,
            api_keys=use_cases.api_keys,
            metrics=use_cases.metrics,
            info=use_cases.info,
            ready=ready,
            require_tenant_header=require_tenant_header,
            max_body_bytes=max_body_bytes,
            max_page_size=max_page_size,
        )


DEPS = web.AppKey("orch8_api_deps", ApiDeps)
# Who the request acts as, set by `auth.auth_middleware` once its key is checked.
PRINCIPAL = web.RequestKey("orch8_principal", Principal)


def deps_of(request: web.Request) -> ApiDeps:
    return request.app[DEPS]


def principal_of(request: web.Request) -> Principal:
    """Who the request acts as: the root, or a tenant key (see `auth`)."""
    principal = request.get(PRINCIPAL)
    return ROOT if principal is None else principal


def caller_of(request: web.Request) -> str | None:
    """The tenant the request acts for: its API key's tenant, else `x-tenant-id`;
    None when neither names one.

    Use cases take this as `caller` and scope every read and write to it.
    """
    key_tenant = principal_of(request).tenant_id
    if key_tenant is not None:
        return key_tenant
    value = request.headers.get(TENANT_HEADER, "").strip()
    return value or None
