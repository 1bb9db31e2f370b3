"""`http_request` against a real aiohttp server on loopback, and its SSRF guard."""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer

from orch8.adapters.http_client import HttpRequestHandler, blocked_reason
from orch8.adapters.http_client.guard import IPAddress
from orch8.application.ports.handlers import StepCall, StepFailed
from orch8.bootstrap.process import build
from orch8.bootstrap.settings import Settings
from orch8.domain.context import ExecutionContext

MIB = 1024 * 1024


class Target:
    """The local server: records every request it receives."""

    def __init__(self) -> None:
        self.hits: list[dict[str, Any]] = []
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.hits.append(
            {
                "method": request.method,
                "path": request.path,
                "headers": dict(request.headers),
                "body": body.decode(),
            }
        )
        path = request.path
        if path == "/json":
            return web.json_response({"ok": True, "n": [1, 2]}, headers={"X-Test": "yes"})
        if path == "/problem":
            return web.json_response({"type": "x"}, content_type="application/problem+json")
        if path == "/bad-json":
            return web.Response(text="{not json", content_type="application/json")
        if path == "/text":
            return web.Response(text="hello there", charset="utf-8")
        if path == "/echo":
            return web.json_response(
                {
                    "method": request.method,
                    "content_type": request.headers.get("Content-Type"),
                    "api_key": request.headers.get("X-Api-Key"),
                    "num": request.headers.get("X-Num"),
                    "host": request.headers.get("Host"),
                    "user_agent": request.headers.get("User-Agent"),
                    "body": body.decode(),
                }
            )
        if path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            return web.Response(status=code, text=f"status {code} body")
        if path == "/slow":
            await asyncio.sleep(5)
            return web.Response(text="late")
        if path == "/big":
            size = int(request.query["size"])
            return web.Response(body=b"x" * size, content_type="text/plain")
        if path == "/big-chunked":
            size = int(request.query["size"])
            response = web.StreamResponse()
            response.enable_chunked_encoding()
            await response.prepare(request)
            for _ in range(size // 65536):
                await response.write(b"y" * 65536)
            await response.write(b"y" * (size % 65536))
            await response.write_eof()
            return response
        if path == "/redirect":
            raise web.HTTPFound(request.query["to"])
        if path == "/redirect-post":
            raise web.HTTPSeeOther("/echo")
        return web.Response(status=404, text="not here")


@pytest.fixture
async def target() -> AsyncIterator[tuple[Target, str]]:
    server_side = Target()
    server = TestServer(server_side.app, host="127.0.0.1")
    await server.start_server()
    try:
        yield server_side, f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


@pytest.fixture
async def make_handler() -> AsyncIterator[Callable[..., HttpRequestHandler]]:
    made: list[HttpRequestHandler] = []

    def make(*args: Any, **kwargs: Any) -> HttpRequestHandler:
        handler = HttpRequestHandler(*args, **kwargs)
        made.append(handler)
        return handler

    yield make
    for handler in made:
        await handler.close()


def call(**params: Any) -> StepCall:
    return StepCall(
        "inst", "acme", "req", "http_request", params, ExecutionContext(), 1, datetime.now(UTC)
    )


async def failure(handler: HttpRequestHandler, **params: Any) -> StepFailed:
    with pytest.raises(StepFailed) as info:
        await handler(call(**params))
    return info.value


# success ----------------------------------------------------------------------
async def test_get_json(target: tuple[Target, str], make_handler: Any) -> None:
    _server, base = target
    output = await make_handler(allow_internal_urls=True)(call(url=f"{base}/json"))
    assert output["status"] == 200
    assert output["body"] == {"ok": True, "n": [1, 2]}
    assert output["headers"]["x-test"] == "yes"
    assert output["headers"]["content-type"].startswith("application/json")


async def test_get_text(target: tuple[Target, str], make_handler: Any) -> None:
    _server, base = target
    output = await make_handler(allow_internal_urls=True)(call(url=f"{base}/text"))
    assert output["status"] == 200
    assert output["body"] == "hello there"


async def test_json_variants(target: tuple[Target, str], make_handler: Any) -> None:
    _server, base = target
    handler = make_handler(allow_internal_urls=True)
    assert (await handler(call(url=f"{base}/problem")))["body"] == {"type": "x"}
    assert (await handler(call(url=f"{base}/bad-json")))["body"] == "{not json"


async def test_post_sends_headers_and_json_body(
    target: tuple[Target, str], make_handler: Any
) -> None:
    _server, base = target
    output = await make_handler(allow_internal_urls=True)(
        call(
            url=f"{base}/echo",
            method="post",
            headers={"X-Api-Key": "secret", "X-Num": 5, "X-Null": None},
            body={"a": 1, "b": [True, None]},
        )
    )
    echoed = output["body"]
    assert echoed["method"] == "POST"
    assert echoed["content_type"] == "application/json"
    assert echoed["api_key"] == "secret"
    assert echoed["num"] == "5"
    assert echoed["user_agent"] == "orch8-http-request"
    assert echoed["body"] == '{"a":1,"b":[true,null]}'


async def test_string_body_is_sent_as_is(target: tuple[Target, str], make_handler: Any) -> None:
    _server, base = target
    handler = make_handler(allow_internal_urls=True)
    output = await handler(
        call(
            url=f"{base}/echo",
            method="PUT",
            body="plain words",
            headers={"content-type": "text/plain"},
        )
    )
    assert output["body"]["method"] == "PUT"
    assert output["body"]["content_type"] == "text/plain"
    assert output["body"]["body"] == "plain words"
    # without a content type a string body goes out as JSON, as Orch8 sends it
    output = await handler(call(url=f"{base}/echo", method="POST", body='{"x": 1}'))
    assert output["body"]["content_type"] == "application/json"
    assert output["body"]["body"] == '{"x": 1}'


async def test_redirects_are_followed(target: tuple[Target, str], make_handler: Any) -> None:
    server, base = target
    handler = make_handler(allow_internal_urls=True)
    output = await handler(call(url=f"{base}/redirect?to=/json"))
    assert output["body"] == {"ok": True, "n": [1, 2]}
    output = await handler(call(url=f"{base}/redirect-post", method="POST", body={"a": 1}))
    assert output["body"]["method"] == "GET"
    assert output["body"]["body"] == ""
    assert [hit["path"] for hit in server.hits] == ["/redirect", "/json", "/redirect-post", "/echo"]


# failures -------------------------------------------------------------------------
async def test_4xx_fails_permanently(target: tuple[Target, str], make_handler: Any) -> None:
    _server, base = target
    handler = make_handler(allow_internal_urls=True)
    for code in (400, 404, 422, 429):
        error = await failure(handler, url=f"{base}/status/{code}?token=hidden")
        assert not error.retryable
        assert error.message == f"HTTP {code} from {base}/status/{code}: status {code} body"


async def test_5xx_fails_retryably(target: tuple[Target, str], make_handler: Any) -> None:
    _server, base = target
    handler = make_handler(allow_internal_urls=True)
    for code in (500, 502, 503):
        error = await failure(handler, url=f"{base}/status/{code}")
        assert error.retryable
        assert f"HTTP {code}" in error.message


async def test_timeout_fails_retryably(target: tuple[Target, str], make_handler: Any) -> None:
    _server, base = target
    error = await failure(
        make_handler(allow_internal_urls=True), url=f"{base}/slow", timeout_ms=200
    )
    assert error.retryable
    assert error.message == f"http_request: GET {base}/slow timed out after 200 ms"


async def test_connection_refused_fails_retryably(make_handler: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    error = await failure(make_handler(allow_internal_urls=True), url=f"http://127.0.0.1:{port}/")
    assert error.retryable
    assert "failed" in error.message


@pytest.mark.parametrize("path", ["/big", "/big-chunked"])
async def test_oversized_response_is_refused(
    target: tuple[Target, str], make_handler: Any, path: str
) -> None:
    _server, base = target
    handler = make_handler(allow_internal_urls=True)
    output = await handler(call(url=f"{base}{path}?size={MIB}"))
    assert len(output["body"]) == MIB
    error = await failure(handler, url=f"{base}{path}?size={MIB + 1}")
    assert not error.retryable
    assert "exceeds the 1048576-byte limit" in error.message


async def test_response_limit_is_configurable(
    target: tuple[Target, str], make_handler: Any
) -> None:
    _server, base = target
    handler = make_handler(allow_internal_urls=True, max_response_bytes=10)
    assert (await handler(call(url=f"{base}/big?size=10")))["body"] == "x" * 10
    assert not (await failure(handler, url=f"{base}/big-chunked?size=11")).retryable


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({}, "`url` (string) is required"),
        ({"url": 5}, "`url` (string) is required"),
        ({"url": "ftp://example.com/file"}, "only http and https URLs are allowed, got scheme ftp"),
        ({"url": "file:///etc/passwd"}, "only http and https URLs are allowed, got scheme file"),
        ({"url": "example.com/path"}, "only http and https URLs are allowed"),
        ({"url": "http://"}, "has no host"),
        ({"url": "http://example.com", "method": "BREW"}, "`method` must be one of"),
        ({"url": "http://example.com", "headers": ["a"]}, "`headers` must be an object"),
        ({"url": "http://example.com", "headers": {"a": {"b": 1}}}, "header 'a' must be"),
        ({"url": "http://example.com", "headers": {"a": "x\r\nEvil: 1"}}, "invalid name or value"),
        ({"url": "http://example.com", "timeout_ms": 0}, "`timeout_ms` must be"),
        ({"url": "http://example.com", "timeout_ms": "10"}, "`timeout_ms` must be"),
        ({"url": "http://example.com", "timeout_ms": True}, "`timeout_ms` must be"),
    ],
)
async def test_bad_params_fail_for_good(
    make_handler: Any, params: dict[str, Any], fragment: str
) -> None:
    error = await failure(make_handler(allow_internal_urls=True), **params)
    assert not error.retryable
    assert error.message.startswith("http_request: ")
    assert fragment in error.message


async def test_calls_after_close_fail_retryably(make_handler: Any) -> None:
    handler = make_handler(allow_internal_urls=True)
    await handler.close()
    error = await failure(handler, url="http://127.0.0.1:9/")
    assert error.retryable
    assert "closed" in error.message


# the SSRF guard -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:{port}/json", "loopback"),
        ("http://localhost:{port}/json", "localhost resolves to"),
        ("http://[::1]:{port}/json", "loopback"),
        ("http://[::ffff:127.0.0.1]:{port}/json", "loopback"),
        ("http://0.0.0.0:{port}/json", "unspecified"),
        ("http://10.0.0.1/", "private"),
        ("http://172.16.5.4/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://[fd12:3456::1]/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("http://169.254.10.10/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://100.100.100.200/", "cloud metadata"),
        ("http://[fd00:ec2::254]/", "cloud metadata"),
        ("http://metadata.google.internal/computeMetadata/v1/", "cloud metadata"),
        ("http://224.0.0.1/", "multicast"),
        ("http://100.64.0.1/", "non-public"),
        ("https://192.0.2.10/", "private"),  # documentation range
    ],
)
async def test_internal_targets_are_refused(
    target: tuple[Target, str], make_handler: Any, url: str, reason: str
) -> None:
    server, base = target
    port = base.rsplit(":", 1)[1]
    error = await failure(make_handler(), url=url.format(port=port))
    assert not error.retryable
    assert error.message.startswith("http_request: blocked: ")
    assert reason in error.message
    assert "allow_internal_urls" in error.message
    assert server.hits == []


async def test_allow_internal_urls_reaches_loopback(
    target: tuple[Target, str], make_handler: Any
) -> None:
    _server, base = target
    port = base.rsplit(":", 1)[1]
    output = await make_handler(True)(call(url=f"http://localhost:{port}/json"))
    assert output["status"] == 200


class FakeDns(AbstractResolver):
    """Answers from a table, counting lookups; what the connector connects to."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.lookups: list[str] = []

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        self.lookups.append(host)
        if host not in self.table:
            raise OSError(f"no such host {host}")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.table[host]
        ]

    async def close(self) -> None:
        return None


def loopback_1_is_public(address: IPAddress) -> str | None:
    """The guard, except that 127.0.0.1 (the test server) counts as public."""
    return None if address == ip_address("127.0.0.1") else blocked_reason(address)


async def test_every_resolved_address_is_checked(make_handler: Any) -> None:
    dns = FakeDns({"mixed.test": ["8.8.8.8", "10.1.2.3"], "private.test": ["192.168.0.7"]})
    handler = make_handler(resolver=dns)
    error = await failure(handler, url="http://private.test/")
    assert not error.retryable
    assert "private.test resolves to 192.168.0.7, a private address" in error.message
    error = await failure(handler, url="https://mixed.test/")
    assert not error.retryable
    assert "mixed.test resolves to 10.1.2.3" in error.message


async def test_connection_goes_to_the_vetted_address_with_the_right_host(
    target: tuple[Target, str], make_handler: Any
) -> None:
    """`pinned.test` exists only in the guarded resolver's answer: reaching the server
    proves the connector used the checked address and did not look the name up again."""
    server, base = target
    port = base.rsplit(":", 1)[1]
    dns = FakeDns({"pinned.test": ["127.0.0.1"]})
    handler = make_handler(resolver=dns, address_check=loopback_1_is_public)
    output = await handler(call(url=f"http://pinned.test:{port}/echo"))
    assert output["body"]["host"] == f"pinned.test:{port}"
    assert dns.lookups == ["pinned.test"]
    assert len(server.hits) == 1


async def test_redirects_are_vetted_too(target: tuple[Target, str], make_handler: Any) -> None:
    server, base = target
    port = base.rsplit(":", 1)[1]
    dns = FakeDns({"pinned.test": ["127.0.0.1"], "inside.test": ["10.9.8.7"]})
    handler = make_handler(resolver=dns, address_check=loopback_1_is_public)
    for to in (
        "http://169.254.169.254/latest/meta-data/",
        f"http://inside.test:{port}/json",
        f"http://[::1]:{port}/json",
        "file:///etc/passwd",
    ):
        error = await failure(handler, url=f"{base}/redirect?to={to}")
        assert not error.retryable, to
        assert error.message.startswith("http_request: blocked: "), error.message
    assert [hit["path"] for hit in server.hits] == ["/redirect"] * 4
    output = await handler(call(url=f"{base}/redirect?to=http://pinned.test:{port}/json"))
    assert output["body"]["ok"] is True


async def test_too_many_redirects_fail_for_good(
    target: tuple[Target, str], make_handler: Any
) -> None:
    _server, base = target
    handler = make_handler(allow_internal_urls=True, max_redirects=2)
    error = await failure(handler, url=f"{base}/redirect?to=/redirect?to=/redirect?to=/json")
    assert not error.retryable
    assert "more than 2 redirects" in error.message


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("8.8.8.8", False),
        ("2606:4700:4700::1111", False),
        ("2002:0808:0808::1", False),
        ("127.0.0.2", True),
        ("2002:7f00:1::1", True),
        ("64:ff9b::a00:1", True),
        ("::", True),
        ("255.255.255.255", True),
        ("168.63.129.16", True),
        ("198.18.0.1", True),
    ],
)
def test_address_classification(address: str, refused: bool) -> None:
    assert (blocked_reason(ip_address(address)) is not None) is refused


# TLS: the pinned connection still presents the hostname (SNI) and checks its certificate
@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=pinned.test",
            "-addext", "subjectAltName=DNS:pinned.test",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_https_keeps_sni_and_certificate_checks(
    certificate: tuple[Path, Path], make_handler: Any
) -> None:
    cert, key = certificate
    seen_names: list[str | None] = []
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)

    def record_sni(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        seen_names.append(name)

    server_ctx.sni_callback = record_sni  # type: ignore[assignment]
    server_side = Target()
    server = TestServer(server_side.app, host="127.0.0.1")
    await server.start_server(ssl=server_ctx)
    try:
        client_ctx = ssl.create_default_context(cafile=str(cert))
        dns = FakeDns({"pinned.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]})
        handler = make_handler(
            resolver=dns, address_check=loopback_1_is_public, ssl_context=client_ctx
        )
        output = await handler(call(url=f"https://pinned.test:{server.port}/echo"))
        assert output["body"]["host"] == f"pinned.test:{server.port}"
        assert seen_names == ["pinned.test"]
        # a name the certificate does not cover fails, and for good
        error = await failure(handler, url=f"https://other.test:{server.port}/echo")
        assert not error.retryable
    finally:
        await server.close()


# wiring ---------------------------------------------------------------------------------
async def test_the_composition_root_registers_the_handler_with_the_setting() -> None:
    process = build(Settings(allow_internal_urls=True, database_url="memory://"))
    try:
        http_client = process.handlers.get("http_request")
        assert isinstance(http_client, HttpRequestHandler)
        assert http_client.allow_internal_urls is True
        assert process.handlers.get("transform") is not None
    finally:
        await process.close()
    default = build(Settings(database_url="memory://")).handlers.get("http_request")
    assert isinstance(default, HttpRequestHandler)
    assert default.allow_internal_urls is False
