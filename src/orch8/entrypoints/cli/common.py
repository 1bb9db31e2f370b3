"""What every client command shares: where the server is, exit codes, running a request.

Client commands talk to a running server through `orch8.client.Orch8Client` only, so they
load nothing of the engine. Each takes `--url`, `--api-key`, `--tenant` and `--json`
(`remote_options`), runs one coroutine against the client (`run`), and turns the client's
`Orch8Error` into an exit code scripts can rely on (`ExitCode`, documented in docs/cli.md).
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import IO, Any, TypeVar

import click

from orch8.client import Orch8Client, Orch8Error

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TENANT = "default"
API_PREFIX = "/api/v1"


class ExitCode(IntEnum):
    """The exit status of every `orch8` command."""

    OK = 0
    SERVER = 1  # no answer (connection refused, timed out), a 5xx, or an OS error
    USAGE = 2  # bad flags or arguments, unreadable or malformed input, bad configuration
    NOT_FOUND = 3  # 404: unknown instance or sequence (or another tenant's)
    REFUSED = 4  # any other 4xx: invalid definition, conflict, forbidden, wrong state
    FAILED = 5  # `instances watch`: the instance ended `failed`
    CANCELLED = 6  # `instances watch`: the instance ended `cancelled`
    INTERRUPTED = 130  # SIGINT (Ctrl-C), as shells report it


def exit_code_of(status: int) -> ExitCode:
    """The exit code for an HTTP status (0: no HTTP answer at all)."""
    if status == 404:
        return ExitCode.NOT_FOUND
    if 400 <= status < 500:
        return ExitCode.REFUSED
    return ExitCode.SERVER


class Failure(click.ClickException):
    """A command failed: `orch8: <message>` on stderr and the given exit code."""

    def __init__(self, message: str, code: ExitCode) -> None:
        super().__init__(message)
        # click declares exit_code on the class but reads it from the instance.
        self.exit_code = int(code)  # type: ignore[misc]

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"orch8: {self.format_message()}", err=True)

    @classmethod
    def of(cls, error: Orch8Error, where: str | None = None) -> Failure:
        prefix = f"{where}: " if where else ""
        return cls(prefix + str(error), exit_code_of(error.status))


@dataclass(frozen=True, slots=True)
class Remote:
    """The server a client command talks to, as whom, and how it answers the user."""

    url: str
    api_key: str | None
    tenant: str
    as_json: bool

    def client(self) -> Orch8Client:
        base = self.url.rstrip("/")
        if not base.endswith(API_PREFIX):
            base += API_PREFIX
        return Orch8Client(base, api_key=self.api_key, tenant_id=self.tenant)


def run(remote: Remote, action: Callable[[Orch8Client], Awaitable[T]]) -> T:
    """Run `action` with a client of `remote` in a fresh event loop."""

    async def call() -> T:
        async with remote.client() as client:
            return await action(client)

    try:
        return asyncio.run(call())
    except Orch8Error as exc:
        raise Failure.of(exc) from None
    except KeyboardInterrupt:
        raise Failure("interrupted", ExitCode.INTERRUPTED) from None


def _check_url(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise click.BadParameter("must start with http:// or https://", ctx, param)
    return value


def _check_tenant(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.strip():
        raise click.BadParameter("must not be empty", ctx, param)
    return value


_REMOTE_OPTIONS = (
    click.option(
        "--url",
        envvar="ORCH8_URL",
        default=DEFAULT_URL,
        show_default=True,
        callback=_check_url,
        help="The server's address (env ORCH8_URL); /api/v1 is added when missing.",
    ),
    click.option(
        "--api-key",
        envvar="ORCH8_API_KEY",
        default=None,
        help="Sent as x-api-key (env ORCH8_API_KEY).",
    ),
    click.option(
        "--tenant",
        envvar="ORCH8_TENANT",
        default=DEFAULT_TENANT,
        show_default=True,
        callback=_check_tenant,
        help="Sent as x-tenant-id, and the tenant_id of what is created (env ORCH8_TENANT).",
    ),
    click.option(
        "--json",
        "as_json",
        is_flag=True,
        default=False,
        help="Print one JSON document on stdout instead of a table.",
    ),
)


def remote_options(func: Callable[..., None]) -> Callable[..., None]:
    """Add --url, --api-key, --tenant and --json; the command receives a `Remote` first."""

    @functools.wraps(func)
    def command(
        *args: Any, url: str, api_key: str | None, tenant: str, as_json: bool, **kwargs: Any
    ) -> None:
        func(Remote(url, api_key or None, tenant, as_json), *args, **kwargs)

    decorated: Callable[..., None] = command
    for option in reversed(_REMOTE_OPTIONS):
        decorated = option(decorated)
    return decorated


def read_json_text(text: str) -> Any:
    """JSON from an option value; `@PATH` reads the value from a file. ValueError if bad."""
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read {text[1:]}: {exc.strerror or exc}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None


def json_value(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """Click callback: the option's JSON value (None when not given)."""
    if value is None:
        return None
    try:
        return read_json_text(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def json_object(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """Click callback: the option's value, which must be a JSON object."""
    decoded = json_value(ctx, param, value)
    if decoded is not None and not isinstance(decoded, dict):
        raise click.BadParameter("must be a JSON object", ctx, param)
    return decoded
