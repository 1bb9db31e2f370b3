"""Reading `http_request`'s params (Orch8's names) into one request to make."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Final

from attrs import frozen
from yarl import URL

from orch8.adapters.http_client.guard import parse_target
from orch8.application.ports.handlers import StepFailed

METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
DEFAULT_TIMEOUT_MS: Final = 10_000
MAX_TIMEOUT_MS: Final = 3_600_000
USER_AGENT: Final = "orch8-http-request"


@frozen
class RequestSpec:
    method: str
    url: URL
    headers: Mapping[str, str]
    body: bytes | None
    timeout_ms: int


def bad_param(message: str) -> StepFailed:
    return StepFailed(f"http_request: {message}", retryable=False)


def parse_request(params: Mapping[str, Any]) -> RequestSpec:
    """The request `params` ask for; a non-retryable StepFailed naming the bad param."""
    url = params.get("url")
    if not isinstance(url, str) or not url.strip():
        raise bad_param("`url` (string) is required")
    try:
        target = parse_target(url.strip())
    except ValueError as exc:
        raise bad_param(str(exc)) from None
    headers = _headers(params.get("headers"))
    body = _body(params.get("body"), headers)
    return RequestSpec(
        method=_method(params.get("method", "GET")),
        url=target,
        headers=headers,
        body=body,
        timeout_ms=_timeout_ms(params.get("timeout_ms", DEFAULT_TIMEOUT_MS)),
    )


def _method(raw: Any) -> str:
    if raw is None:
        return "GET"
    if not isinstance(raw, str) or raw.upper() not in METHODS:
        raise bad_param(f"`method` must be one of {', '.join(sorted(METHODS))}, got {raw!r}")
    return raw.upper()


def _headers(raw: Any) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT}
    if raw is None:
        return headers
    if not isinstance(raw, Mapping):
        raise bad_param("`headers` must be an object of header name to value")
    for name, value in raw.items():
        if value is None:
            continue
        if isinstance(value, dict | list):
            raise bad_param(f"header {name!r} must be a string, number or boolean")
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        if any(c in name or c in text for c in "\r\n\0") or not name or ":" in name:
            raise bad_param(f"header {name!r} has an invalid name or value")
        for existing in [k for k in headers if k.lower() == name.lower()]:
            del headers[existing]
        headers[name] = text
    return headers


def _body(raw: Any, headers: dict[str, str]) -> bytes | None:
    """A string is sent as-is, any other JSON value serialised; both default to
    `Content-Type: application/json`, as Orch8 sends its string bodies."""
    if raw is None:
        return None
    if isinstance(raw, str):
        payload = raw.encode()
    else:
        try:
            payload = json.dumps(raw, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise bad_param(f"`body` is not JSON: {exc}") from None
    if not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = "application/json"
    return payload


def _timeout_ms(raw: Any) -> int:
    if raw is None:
        return DEFAULT_TIMEOUT_MS
    if (
        isinstance(raw, bool)
        or not isinstance(raw, int | float)
        or not math.isfinite(raw)
        or raw <= 0
        or raw > MAX_TIMEOUT_MS
    ):
        raise bad_param(f"`timeout_ms` must be a number of milliseconds in 1..{MAX_TIMEOUT_MS}")
    return max(1, int(raw))
