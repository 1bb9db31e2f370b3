"""The `http_request` handler: an aiohttp client with an SSRF guard."""

from orch8.adapters.http_client.guard import BlockedTarget, GuardedResolver, blocked_reason
from orch8.adapters.http_client.handler import HttpRequestHandler

__all__ = ["BlockedTarget", "GuardedResolver", "HttpRequestHandler", "blocked_reason"]
