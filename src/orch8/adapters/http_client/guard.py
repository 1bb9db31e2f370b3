"""The SSRF guard: which targets `http_request` refuses, checked after DNS resolution.

A URL is vetted twice. Before the request, its scheme must be http or https and a
literal IP host (which aiohttp connects to without resolving) is classified at once.
A hostname is resolved by `GuardedResolver`, which the client's connector uses for
every connection: every address the name resolves to is classified, and only if all
are public does the connector get them, so the connection goes to exactly the
addresses that were checked (a DNS answer that changes between check and connect
cannot slip a private address in). The hostname still drives the Host header and
TLS SNI, since only the address lookup is replaced.

Refused: loopback, private (RFC 1918, unique-local fc00::/7), link-local (which holds
169.254.169.254), multicast, unspecified, any other non-global range (CGNAT
100.64.0.0/10, documentation, benchmarking, reserved), well-known cloud metadata
endpoints, and IPv6 forms embedding a refused IPv4 address (v4-mapped, 6to4, NAT64).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address, IPv6Network, ip_address
from typing import Final

from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

IPAddress = IPv4Address | IPv6Address
AddressCheck = Callable[[IPAddress], str | None]
"""Returns why an address is refused, or None when it may be contacted."""

ALLOWED_SCHEMES: Final = frozenset({"http", "https"})

METADATA_ADDRESSES: Final = frozenset(
    ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, ...
        "169.254.169.123",  # AWS time sync
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure wire server (a global address, so listed by name)
        "fd00:ec2::254",  # AWS over IPv6
    )
)
METADATA_HOSTNAMES: Final = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata.azure.internal", "instance-data"}
)
_NAT64: Final = IPv6Network("64:ff9b::/96")


class BlockedTarget(Exception):
    """The URL's target is refused by the guard; never worth a retry."""


def blocked_reason(address: IPAddress) -> str | None:
    """Why `address` may not be contacted, or None when it is a public address."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(address, IPv6Address):
        if address.ipv4_mapped is not None:
            return blocked_reason(address.ipv4_mapped)
        embedded = address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None and (reason := blocked_reason(embedded)) is not None:
            return reason
    checks: tuple[tuple[bool, str], ...] = (
        (address.is_loopback, "a loopback address"),
        (address.is_unspecified, "the unspecified address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private address"),
        (not address.is_global, "a non-public (reserved) address"),
    )
    return next((reason for hit, reason in checks if hit), None)


def parse_target(url: str) -> URL:
    """The URL, if its scheme is http/https and it names a host; ValueError otherwise."""
    try:
        parsed = URL(url)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"invalid url {url!r}: {exc}") from None
    if parsed.scheme not in ALLOWED_SCHEMES:
        shown = parsed.scheme or "(none)"
        raise ValueError(f"only http and https URLs are allowed, got scheme {shown}")
    if not parsed.host:
        raise ValueError(f"url {url!r} has no host")
    return parsed


def check_literal_host(url: URL, check: AddressCheck = blocked_reason) -> None:
    """Refuse metadata hostnames and literal IP hosts the guard refuses.

    Hostnames are left to `GuardedResolver`, which sees what they resolve to.
    """
    host = (url.host or "").rstrip(".").lower()
    if host in METADATA_HOSTNAMES:
        raise BlockedTarget(f"{host} is a cloud metadata endpoint")
    try:
        address = ip_address(host)
    except ValueError:
        return
    reason = check(address)
    if reason is not None:
        raise BlockedTarget(f"{host} is {reason}")


class GuardedResolver(AbstractResolver):
    """Resolves through `inner`, then refuses the name if any address is refused.

    Given to the client's connector, so the addresses it connects to are the ones
    checked here. `inner` defaults to aiohttp's ThreadedResolver, which calls the
    event loop's getaddrinfo.
    """

    def __init__(self, inner: AbstractResolver, check: AddressCheck = blocked_reason) -> None:
        self._inner = inner
        self._check = check

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            try:
                address = ip_address(result["host"])
            except ValueError:
                raise BlockedTarget(
                    f"{host} resolved to {result['host']!r}, which is not an IP address"
                ) from None
            reason = self._check(address)
            if reason is not None:
                raise BlockedTarget(f"{host} resolves to {result['host']}, {reason}")
        return results

    async def close(self) -> None:
        await self._inner.close()
