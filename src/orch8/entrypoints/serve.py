"""Running the whole process: HTTP API and engine, with a graceful stop on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from orch8.application.ports.task_events import TaskNotifications
from orch8.bootstrap.containers import build_container
from orch8.bootstrap.settings import Settings, parse_addr, redacted_url
from orch8.entrypoints.http.app import create_app
from orch8.entrypoints.http.deps import ApiDeps

_log = logging.getLogger("orch8.server")


async def serve(settings: Settings, *, ready: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT: then stop claiming, let in-flight instances reach a
    step boundary (within the grace period), close HTTP and storage, and return."""
    container = build_container(settings)
    storage = container.storage()
    if settings.run_migrations:
        await storage.migrate()
    engine = container.engine()
    if isinstance(storage, TaskNotifications):  # wake long-polls for other processes' tasks
        await storage.listen(container.task_bell().ring)
    app = create_app(
        ApiDeps(
            sequences=container.sequences(),
            instances=container.instances(),
            ready=storage.ping,
            require_tenant_header=settings.require_tenant_header,
            signals=container.signals(),
            streams=container.streams(),
            instance_ops=container.instance_ops(),
            workers=container.workers(),
            cron=container.cron(),
            rate_limits=container.rate_limits(),
        )
    )
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    host, port = parse_addr(settings.http_addr, "http_addr")
    site = web.TCPSite(runner, host, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await engine.start()
        await site.start()
        _log.info(
            "orch8 listening on http://%s:%d (storage %s)",
            host,
            port,
            redacted_url(settings.database_url),
        )
        if ready is not None:
            ready.set()
        await stop.wait()
        _log.info("shutting down")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await engine.stop()
        await container.http_client().close()
        await runner.cleanup()
        await storage.close()
        _log.info("stopped")
