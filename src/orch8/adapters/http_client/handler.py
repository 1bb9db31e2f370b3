"""The `http_request` built-in handler, on one shared aiohttp client session."""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from typing import Any, Final

import aiohttp
from aiohttp.abc import AbstractResolver
from attrs import frozen
from multidict import CIMultiDictProxy
from yarl import URL

from orch8.adapters.http_client.guard import (
    AddressCheck,
    BlockedTarget,
    GuardedResolver,
    blocked_reason,
    check_literal_host,
    parse_target,
)
from orch8.adapters.http_client.request import RequestSpec, parse_request
from orch8.application.ports.handlers import StepCall, StepFailed, StepHandler

_log = logging.getLogger("orch8.handlers.http_request")

DEFAULT_MAX_RESPONSE_BYTES: Final = 1024 * 1024
DEFAULT_MAX_REDIRECTS: Final = 10
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_CREDENTIAL_HEADERS: Final = frozenset({"authorization", "cookie", "proxy-authorization"})
_SNIPPET_CHARS: Final = 200
_CHUNK: Final = 64 * 1024


class ResponseTooLarge(Exception):
    pass


@frozen
class _Response:
    url: URL
    status: int
    headers: dict[str, str]
    body: Any


class HttpRequestHandler(StepHandler):
    """`http_request`: params `method` (GET), `url`, `headers`, `body`, `timeout_ms`
    (10 000) → `{status, headers, body}`; the body is parsed when it is JSON.

    Unless `allow_internal_urls`, targets are vetted after DNS resolution (see
    `guard`), and so is every redirect. 5xx answers, timeouts and connection errors
    fail the attempt retryably; 4xx answers, refused targets, bad params and bodies
    over `max_response_bytes` fail it for good.

    The client session is created on first use and closed by `close()`.
    `resolver` (the DNS lookup, aiohttp's ThreadedResolver by default), `address_check`
    and `ssl_context` are for tests and unusual deployments.
    """

    def __init__(
        self,
        allow_internal_urls: bool = False,
        *,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_redirects: int = DEFAULT_MAX_REDIRECTS,
        resolver: AbstractResolver | None = None,
        address_check: AddressCheck = blocked_reason,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.allow_internal_urls = allow_internal_urls
        self.max_response_bytes = max_response_bytes
        self.max_redirects = max_redirects
        self._resolver = resolver
        self._check = address_check
        self._ssl: ssl.SSLContext | bool = True if ssl_context is None else ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    async def __call__(self, call: StepCall) -> dict[str, Any]:
        spec = parse_request(call.params)
        shown = _shown(spec.url)
        try:
            async with asyncio.timeout(spec.timeout_ms / 1000):
                response = await self._exchange(spec)
        except BlockedTarget as exc:
            raise StepFailed(
                f"http_request: blocked: {exc} (internal targets need allow_internal_urls)",
                retryable=False,
            ) from None
        except ResponseTooLarge as exc:
            raise StepFailed(f"http_request: {exc}", retryable=False) from None
        except TimeoutError:
            raise StepFailed(
                f"http_request: {spec.method} {shown} timed out after {spec.timeout_ms} ms"
            ) from None
        except (aiohttp.InvalidURL, aiohttp.ClientConnectorCertificateError) as exc:
            raise StepFailed(
                f"http_request: {spec.method} {shown}: {exc}", retryable=False
            ) from None
        except aiohttp.ClientError as exc:
            detail = str(exc) or type(exc).__name__
            raise StepFailed(f"http_request: {spec.method} {shown} failed: {detail}") from None
        status = response.status
        if status >= 400:
            snippet = _snippet(response.body)
            message = f"HTTP {status} from {_shown(response.url)}" + (
                f": {snippet}" if snippet else ""
            )
            raise StepFailed(message, retryable=status >= 500)
        return {"status": status, "headers": response.headers, "body": response.body}

    async def close(self) -> None:
        """Close the shared session; later calls fail retryably."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # internals -------------------------------------------------------------
    def _client(self) -> aiohttp.ClientSession:
        if self._closed:
            raise aiohttp.ClientConnectionError("the http client is closed (shutting down)")
        if self._session is None:
            resolver = self._resolver or aiohttp.ThreadedResolver()
            if not self.allow_internal_urls:
                resolver = GuardedResolver(resolver, self._check)
            connector = aiohttp.TCPConnector(resolver=resolver, ssl=self._ssl, ttl_dns_cache=10)
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),  # no cookies shared between instances
                trust_env=False,  # a proxy from the environment would bypass the guard
                timeout=aiohttp.ClientTimeout(total=None),  # the caller's deadline applies
                auto_decompress=True,
            )
        return self._session

    async def _exchange(self, spec: RequestSpec) -> _Response:
        """Make the request, following redirects ourselves so each hop is vetted."""
        session = self._client()
        method, url, headers, body = spec.method, spec.url, dict(spec.headers), spec.body
        for _hop in range(self.max_redirects + 1):
            if not self.allow_internal_urls:
                check_literal_host(url, self._check)
            async with session.request(
                method, url, headers=headers, data=body, allow_redirects=False
            ) as resp:
                location = resp.headers.get("Location")
                if resp.status in _REDIRECTS and location:
                    try:
                        target = parse_target(str(resp.url.join(URL(location))))
                    except ValueError as exc:
                        raise BlockedTarget(f"redirect refused: {exc}") from None
                    if resp.status == 303 or (resp.status in {301, 302} and method == "POST"):
                        method, body = ("HEAD" if method == "HEAD" else "GET"), None
                        headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
                    if target.origin() != url.origin():
                        headers = {
                            k: v for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS
                        }
                    url = target
                    continue
                raw = await self._read(resp, truncate=resp.status >= 400)
                return _Response(resp.url, resp.status, _flat(resp.headers), _decode(resp, raw))
        raise BlockedTarget(f"more than {self.max_redirects} redirects, last to {_shown(url)}")

    async def _read(self, resp: aiohttp.ClientResponse, *, truncate: bool) -> bytes:
        limit = self.max_response_bytes
        too_large = f"response body from {_shown(resp.url)} exceeds the {limit}-byte limit"
        declared = resp.content_length
        if declared is not None and declared > limit and not truncate:
            raise ResponseTooLarge(f"{too_large} (Content-Length {declared})")
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(_CHUNK):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                if truncate:
                    break
                raise ResponseTooLarge(too_large)
        return b"".join(chunks)[:limit]


def _flat(headers: CIMultiDictProxy[str]) -> dict[str, str]:
    """Response headers with lower-case names; repeated headers joined with ", "."""
    flat: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        flat[key] = f"{flat[key]}, {value}" if key in flat else value
    return flat


def _decode(resp: aiohttp.ClientResponse, raw: bytes) -> Any:
    """JSON when the response says it is JSON (and parses), text otherwise."""
    mimetype = resp.content_type.lower()
    if raw and (mimetype == "application/json" or mimetype.endswith("+json")):
        try:
            return json.loads(raw)
        except ValueError:
            pass
    try:
        return raw.decode(resp.charset or "utf-8", errors="replace")
    except LookupError:
        return raw.decode("utf-8", errors="replace")


def _snippet(body: Any) -> str:
    text = body if isinstance(body, str) else json.dumps(body)
    text = " ".join(text.split())
    return text if len(text) <= _SNIPPET_CHARS else text[:_SNIPPET_CHARS] + "…"


def _shown(url: URL) -> str:
    """The URL for messages: no credentials, no query string (it may carry tokens)."""
    return str(url.with_user(None).with_query(None).with_fragment(None))
