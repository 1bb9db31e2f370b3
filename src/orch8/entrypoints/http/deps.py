"""What the HTTP entrypoint needs from the composition root, and how handlers reach it.

The app holds one `ApiDeps` under a typed `web.AppKey`, so handlers get the use
cases with their real types (no string-keyed lookups, no globals) and tests can
build an app around any storage.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web
from attrs import frozen

from orch8.application.use_cases.cron import CronService
from orch8.application.use_cases.instance_ops import InstanceOps
from orch8.application.use_cases.instance_stream import InstanceStream
from orch8.application.use_cases.instances import InstanceService
from orch8.application.use_cases.rate_limits import RateLimitService
from orch8.application.use_cases.sequences import SequenceCatalog
from orch8.application.use_cases.signals import SignalService
from orch8.application.use_cases.workers import WorkerService

T = TypeVar("T")

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
TENANT_HEADER = "x-tenant-id"


@frozen
class ApiDeps:
    """The collaborators of every REST handler.

    `ready` raises when storage cannot serve requests; `/health/ready` turns
    that into a 503 so a load balancer stops routing to this process.
    `require_tenant_header` mirrors `ORCH8_REQUIRE_TENANT_HEADER`.
    """

    sequences: SequenceCatalog
    instances: InstanceService
    ready: Callable[[], Awaitable[None]]
    require_tenant_header: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    signals: SignalService | None = None
    streams: InstanceStream | None = None
    instance_ops: InstanceOps | None = None
    workers: WorkerService | None = None
    cron: CronService | None = None
    rate_limits: RateLimitService | None = None


DEPS = web.AppKey("orch8_api_deps", ApiDeps)


def deps_of(request: web.Request) -> ApiDeps:
    return request.app[DEPS]


def caller_of(request: web.Request) -> str | None:
    """The tenant the request acts for (`x-tenant-id`), None when absent or blank.

    Use cases take this as `caller` and scope every read and write to it.
    """
    value = request.headers.get(TENANT_HEADER, "").strip()
    return value or None


def require(use_case: T | None, what: str) -> T:
    """A use case the route needs; 503 when this server was built without it.

    `what` names it in the plural for the error (`"cron schedules"`). The composition
    root provides every use case, so only a partial test app answers this.
    """
    if use_case is None:
        raise web.HTTPServiceUnavailable(reason=f"{what} are not available on this server")
    return use_case
