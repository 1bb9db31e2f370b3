"""`orch8 serve` and `orch8 migrate`: the commands that run the engine's own process.

A configuration error exits 2 (`orch8: configuration error: <key>: <what>`), an OS error
(an address in use, a database that refuses connections) exits 1. The composition root is
imported only when one of these commands runs, so the client commands start quickly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import click

from orch8.bootstrap.logging_setup import configure_logging
from orch8.bootstrap.settings import Settings, load_settings, redacted_url
from orch8.domain.errors import ValidationError
from orch8.entrypoints.cli.common import ExitCode, Failure

_STORAGE_HELP = "Database URL (overrides ORCH8_DATABASE_URL)."
_CONFIG_HELP = "Path to an orch8.toml file."


def server_settings(
    config: str | None,
    *,
    storage: str | None,
    host: str | None = None,
    port: int | None = None,
    grpc_port: int | None = None,
    insecure: bool = False,
) -> Settings:
    """Settings from the file, the environment and these flags (flags win).

    Raises `ValidationError` naming the bad key, variable or flag."""
    overrides: dict[str, object] = {"database_url": storage}
    base = load_settings(config)
    if host is not None or port is not None:
        base_host, _, base_port = base.http_addr.rpartition(":")
        overrides["http_addr"] = f"{host or base_host}:{port or base_port}"
    if grpc_port is not None:
        grpc_host, _, _port = base.grpc_addr.rpartition(":")
        overrides["grpc_addr"] = f"{grpc_host}:{grpc_port}"
    if insecure:
        overrides["insecure"] = True
    return load_settings(config, overrides=overrides)


def _run(
    load: Callable[[], Settings], work: Callable[[Settings], Coroutine[Any, Any, None]]
) -> Settings:
    try:
        settings = load()
    except ValidationError as exc:
        raise Failure(f"configuration error: {exc}", ExitCode.USAGE) from None
    configure_logging(settings.log_level, json=settings.log_json)
    try:
        asyncio.run(work(settings))
    except ValidationError as exc:
        raise Failure(f"configuration error: {exc}", ExitCode.USAGE) from None
    except OSError as exc:
        raise Failure(str(exc), ExitCode.SERVER) from None
    return settings


@click.command()
@click.option("--config", help=_CONFIG_HELP)
@click.option("--host", help="HTTP listen host (overrides ORCH8_HTTP_ADDR).")
@click.option("--port", type=int, help="HTTP listen port (overrides ORCH8_HTTP_ADDR).")
@click.option("--grpc-port", type=int, help="gRPC listen port.")
@click.option("--storage", help=_STORAGE_HELP)
@click.option(
    "--insecure",
    is_flag=True,
    default=False,
    help="Set the insecure setting (as ORCH8_INSECURE=true; see docs/configuration.md).",
)
def serve(
    config: str | None,
    host: str | None,
    port: int | None,
    grpc_port: int | None,
    storage: str | None,
    insecure: bool,
) -> None:
    """Run the API server and the engine until SIGTERM or SIGINT."""

    async def work(settings: Settings) -> None:
        from orch8.entrypoints.serve import serve as serve_api

        await serve_api(settings)

    _run(
        lambda: server_settings(
            config, storage=storage, host=host, port=port, grpc_port=grpc_port, insecure=insecure
        ),
        work,
    )


@click.command()
@click.option("--config", help=_CONFIG_HELP)
@click.option("--storage", help=_STORAGE_HELP)
def migrate(config: str | None, storage: str | None) -> None:
    """Create or upgrade the database schema."""

    async def work(settings: Settings) -> None:
        from orch8.bootstrap.process import build

        process = build(settings)
        try:
            await process.storage.migrate()
        finally:
            await process.close()

    settings = _run(lambda: server_settings(config, storage=storage), work)
    click.echo(f"schema up to date ({redacted_url(settings.database_url)})")
