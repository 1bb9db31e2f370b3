"""Running the whole process: HTTP API and engine, with a graceful stop on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal

from aiohttp import web

from orch8.bootstrap.process import Process, build
from orch8.bootstrap.settings import Settings, parse_addr, redacted_url, refuse_unavailable
from orch8.domain.errors import ValidationError
from orch8.entrypoints.http.app import create_app
from orch8.entrypoints.http.deps import ApiDeps

_log = logging.getLogger("orch8.server")

# How long closing HTTP waits for requests still being answered (long-polls and
# streams are ended at once); the engine's grace period comes before it.
HTTP_CLOSE_TIMEOUT_S = 5.0


def api_deps(process: Process) -> ApiDeps:
    """The REST API's view of a built process."""
    settings = process.settings
    return ApiDeps.of(
        process.use_cases,
        ready=process.ready,
        require_tenant_header=settings.require_tenant_header,
        max_body_bytes=settings.max_request_body_bytes,
        max_page_size=settings.max_page_size,
    )


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings) -> None:
    """Refuse to serve an unauthenticated API beyond this machine.

    Loopback needs no setup; any other address needs a root key (`api_key`),
    or `insecure` to serve without authentication anyway (warned in the log).
    """
    host, _port = parse_addr(settings.http_addr, "http_addr")
    if settings.api_key or is_loopback(host):
        return
    if not settings.insecure:
        raise ValidationError(
            f"refusing to serve {host} without an API key: anyone who can reach it could "
            "read and run every tenant's workflows. Set ORCH8_API_KEY ([api] api_key), "
            "or serve on 127.0.0.1, or set ORCH8_INSECURE=true (--insecure) to serve "
            "without authentication anyway",
            path="http_addr",
        )
    _log.warning("serving %s without authentication (insecure is set)", host)


async def serve(settings: Settings, *, ready: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT: then drain (stop claiming, `/health/ready` answers
    503, in-flight instances reach a step boundary within the grace period or are
    handed back), close HTTP and storage, and return. Raises ValidationError, before
    anything starts, when `check_exposure` refuses or a setting asks for what is
    not available."""
    refuse_unavailable(settings)
    check_exposure(settings)
    process = build(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(
        create_app(api_deps(process)),
        handle_signals=False,
        access_log=None,
        shutdown_timeout=HTTP_CLOSE_TIMEOUT_S,
    )
    try:
        async with process:
            await runner.setup()
            try:
                host, port = parse_addr(settings.http_addr, "http_addr")
                await process.start_engine()
                await web.TCPSite(runner, host, port).start()
                _log.info(
                    "orch8 listening on http://%s:%d (storage %s)",
                    host,
                    port,
                    redacted_url(settings.database_url),
                )
                if ready is not None:
                    ready.set()
                await stop.wait()
                _log.info(
                    "draining: no new claims; in-flight steps get %ss to finish",
                    settings.shutdown_grace_period_secs,
                )
            finally:
                await process.engine.stop()
                await runner.cleanup()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        _log.info("stopped")
