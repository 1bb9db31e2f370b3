"""The `orch8` command: serve, migrate."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from orch8.bootstrap.logging_setup import configure_logging
from orch8.bootstrap.process import build
from orch8.bootstrap.settings import Settings, load_settings, redacted_url
from orch8.domain.errors import ValidationError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="orch8", description="Durable workflow engine")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API server and the engine")
    serve.add_argument("--config", help="path to an orch8.toml file")
    serve.add_argument("--host", help="HTTP listen host (overrides ORCH8_HTTP_ADDR)")
    serve.add_argument("--port", type=int, help="HTTP listen port (overrides ORCH8_HTTP_ADDR)")
    serve.add_argument("--grpc-port", type=int, help="gRPC listen port")
    serve.add_argument("--storage", help="database URL (overrides ORCH8_DATABASE_URL)")

    migrate = sub.add_parser("migrate", help="create or upgrade the database schema")
    migrate.add_argument("--config", help="path to an orch8.toml file")
    migrate.add_argument("--storage", help="database URL (overrides ORCH8_DATABASE_URL)")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, object] = {"database_url": args.storage}
    base = load_settings(args.config)
    if getattr(args, "host", None) is not None or getattr(args, "port", None) is not None:
        host, _, port = base.http_addr.rpartition(":")
        overrides["http_addr"] = f"{args.host or host}:{args.port or port}"
    if getattr(args, "grpc_port", None) is not None:
        host, _, _port = base.grpc_addr.rpartition(":")
        overrides["grpc_addr"] = f"{host}:{args.grpc_port}"
    return load_settings(args.config, overrides=overrides)


async def _migrate(settings: Settings) -> None:
    process = build(settings)
    try:
        await process.storage.migrate()
    finally:
        await process.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ValidationError as exc:
        print(f"orch8: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, json=settings.log_json)
    try:
        if args.command == "serve":
            from orch8.entrypoints.serve import serve

            asyncio.run(serve(settings))
        elif args.command == "migrate":
            asyncio.run(_migrate(settings))
            print(f"schema up to date ({redacted_url(settings.database_url)})")
    except ValidationError as exc:
        print(f"orch8: configuration error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"orch8: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
