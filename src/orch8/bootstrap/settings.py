"""Typed settings from an `orch8.toml` file, `ORCH8_*` variables and CLI flags.

Precedence: flags over environment over file over defaults. Section and
variable names follow Orch8's configuration reference so operators can move
a deployment over unchanged.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from attrs import evolve, fields, frozen

from orch8.domain.errors import ValidationError

DEFAULT_DATABASE_URL = "sqlite://orch8.db"


@frozen
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    database_max_connections: int = 16
    run_migrations: bool = True
    sqlite_synchronous: str = "FULL"
    http_addr: str = "127.0.0.1:8080"
    # Off when empty. No gRPC server exists yet, so any address is refused at load.
    # (Empty rather than None while the CLI builds `--grpc-port` on this string.)
    grpc_addr: str = ""
    api_key: str | None = None
    insecure: bool = False
    require_tenant_header: bool = False
    allow_internal_urls: bool = False
    tick_interval_ms: int = 100
    batch_size: int = 256
    max_concurrent_steps: int = 128
    stale_instance_threshold_secs: int = 30
    shutdown_grace_period_secs: int = 30
    cron_tick_secs: int = 10
    worker_reaper_tick_secs: int = 30
    worker_reaper_stale_secs: int = 60
    worker_max_output_bytes: int = 1024 * 1024
    log_level: str = "info"
    log_json: bool = True
    env_label: str | None = None  # shown by `/info`, as Orch8's (cosmetic, for UIs)
    env_color: str | None = None
    # Limits (docs/configuration.md, "Limits"); Orch8's names where Orch8 has the limit.
    max_request_body_bytes: int = 10 * 1024 * 1024
    max_context_bytes: int = 256 * 1024  # 0: no limit, as in Orch8
    max_batch_instances: int = 10_000
    max_page_size: int = 1000
    max_sse_streams: int = 256


# setting name -> (toml section, toml key, environment variable)
_SOURCES: dict[str, tuple[str, str, str]] = {
    "database_url": ("database", "url", "ORCH8_DATABASE_URL"),
    "database_max_connections": ("database", "max_connections", "ORCH8_DATABASE_MAX_CONNECTIONS"),
    "run_migrations": ("database", "run_migrations", "ORCH8_RUN_MIGRATIONS"),
    "sqlite_synchronous": ("database", "sqlite_synchronous", "ORCH8_SQLITE_SYNCHRONOUS"),
    "http_addr": ("api", "http_addr", "ORCH8_HTTP_ADDR"),
    "grpc_addr": ("api", "grpc_addr", "ORCH8_GRPC_ADDR"),
    "api_key": ("api", "api_key", "ORCH8_API_KEY"),
    "insecure": ("api", "insecure", "ORCH8_INSECURE"),
    "require_tenant_header": ("api", "require_tenant_header", "ORCH8_REQUIRE_TENANT_HEADER"),
    "allow_internal_urls": ("api", "allow_internal_urls", "ORCH8_ALLOW_INTERNAL_URLS"),
    "tick_interval_ms": ("engine", "tick_interval_ms", "ORCH8_TICK_INTERVAL_MS"),
    "batch_size": ("engine", "batch_size", "ORCH8_BATCH_SIZE"),
    "max_concurrent_steps": ("engine", "max_concurrent_steps", "ORCH8_MAX_CONCURRENT_STEPS"),
    "stale_instance_threshold_secs": (
        "engine",
        "stale_instance_threshold_secs",
        "ORCH8_STALE_INSTANCE_THRESHOLD_SECS",
    ),
    "shutdown_grace_period_secs": (
        "engine",
        "shutdown_grace_period_secs",
        "ORCH8_SHUTDOWN_GRACE_PERIOD_SECS",
    ),
    "cron_tick_secs": ("engine", "cron_tick_secs", "ORCH8_CRON_TICK_SECS"),
    "worker_reaper_tick_secs": (
        "engine",
        "worker_reaper_tick_secs",
        "ORCH8_WORKER_REAPER_TICK_SECS",
    ),
    "worker_reaper_stale_secs": (
        "engine",
        "worker_reaper_stale_secs",
        "ORCH8_WORKER_REAPER_STALE_SECS",
    ),
    "worker_max_output_bytes": (
        "engine",
        "worker_max_output_bytes",
        "ORCH8_WORKER_MAX_OUTPUT_BYTES",
    ),
    "max_request_body_bytes": ("api", "max_request_body_bytes", "ORCH8_MAX_REQUEST_BODY_BYTES"),
    "max_batch_instances": ("api", "max_batch_instances", "ORCH8_MAX_BATCH_INSTANCES"),
    "max_page_size": ("api", "max_page_size", "ORCH8_MAX_PAGE_SIZE"),
    "max_sse_streams": ("api", "max_sse_streams", "ORCH8_MAX_SSE_STREAMS"),
    "max_context_bytes": ("engine", "max_context_bytes", "ORCH8_MAX_CONTEXT_BYTES"),
    "log_level": ("logging", "level", "ORCH8_LOG_LEVEL"),
    "log_json": ("logging", "json", "ORCH8_LOG_JSON"),
    "env_label": ("api", "env_label", "ORCH8_ENV_LABEL"),
    "env_color": ("api", "env_color", "ORCH8_ENV_COLOR"),
}

_POSITIVE = {
    "database_max_connections",
    "tick_interval_ms",
    "batch_size",
    "max_concurrent_steps",
    "stale_instance_threshold_secs",
    "cron_tick_secs",
    "worker_reaper_tick_secs",
    "worker_reaper_stale_secs",
    "worker_max_output_bytes",
    "max_request_body_bytes",
    "max_batch_instances",
    "max_page_size",
    "max_sse_streams",
}
_NOT_NEGATIVE = {"max_context_bytes"}
# Text settings where an empty value means "not set".
_OPTIONAL_TEXT = {"api_key"}
_LOG_LEVELS = {"trace", "debug", "info", "warn", "warning", "error"}


def _to_bool(value: object, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ValidationError("must be true or false", path=where)


def _to_int(value: object, where: str) -> int:
    if isinstance(value, bool):
        raise ValidationError("must be an integer", path=where)
    try:
        return int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise ValidationError("must be an integer", path=where) from None


def _convert(name: str, value: object, where: str) -> Any:
    kind = {f.name: f.type for f in fields(Settings)}[name]
    converters: dict[object, Callable[[object, str], Any]] = {
        "bool": _to_bool,
        "int": _to_int,
    }
    convert = converters.get(kind)
    if convert is not None:
        result = convert(value, where)
        if name in _POSITIVE and result <= 0:
            raise ValidationError("must be positive", path=where)
        if name in _NOT_NEGATIVE and result < 0:
            raise ValidationError("must not be negative (0 disables the limit)", path=where)
        return result
    if not isinstance(value, str):
        raise ValidationError("must be a string", path=where)
    return value or None if name in _OPTIONAL_TEXT else value


def load_settings(
    config_file: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
) -> Settings:
    """Build settings; raises ValidationError naming the bad key or variable."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    if config_file is not None:
        path = Path(config_file)
        try:
            document = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ValidationError("file not found", path=str(path)) from None
        except tomllib.TOMLDecodeError as exc:
            raise ValidationError(f"invalid TOML: {exc}", path=str(path)) from None
        for name, (section, key, _var) in _SOURCES.items():
            table = document.get(section, {})
            if isinstance(table, dict) and key in table:
                values[name] = _convert(name, table[key], f"[{section}].{key}")
    for name, (_section, _key, var) in _SOURCES.items():
        if var in env:
            values[name] = _convert(name, env[var], var)
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = _convert(name, value, f"--{name.replace('_', '-')}")
    settings = evolve(Settings(), **values)
    if settings.log_level.lower() not in _LOG_LEVELS:
        raise ValidationError(f"must be one of {sorted(_LOG_LEVELS)}", path="log level")
    if settings.sqlite_synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise ValidationError("must be OFF, NORMAL, FULL or EXTRA", path="sqlite_synchronous")
    parse_addr(settings.http_addr, "http_addr")
    refuse_unavailable(settings)
    return settings


def refuse_unavailable(settings: Settings) -> None:
    """Refuse settings that ask for what this build cannot do, rather than ignore them."""
    if settings.grpc_addr.strip():
        raise ValidationError(
            "gRPC is not available yet in this version of orch8; unset ORCH8_GRPC_ADDR,"
            " [api] grpc_addr and --grpc-port (the REST API serves every operation)",
            path="grpc_addr",
        )


def redacted_url(url: str) -> str:
    """The database URL without its password, for logs and messages."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def parse_addr(addr: str, where: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValidationError("must be HOST:PORT", path=where)
    return host.strip("[]") or "127.0.0.1", int(port)
