"""Tenant scoping shared by every use case.

`caller` is the tenant from the `x-tenant-id` header, or None when the request
carried none (and the server does not require one). Another tenant's object is
reported as absent, never as forbidden, so ids cannot be probed across tenants.
"""

from __future__ import annotations

from orch8.application.errors import Forbidden
from orch8.domain.errors import ValidationError


def visible(owner: str, caller: str | None) -> bool:
    return caller is None or owner == caller


def effective_tenant(requested: str | None, caller: str | None, *, default: str | None) -> str:
    """The tenant a write belongs to: the body's, the header's, or the fallback."""
    if requested is not None and caller is not None and requested != caller:
        raise Forbidden(f"tenant_id '{requested}' does not match the x-tenant-id header")
    tenant = requested or caller or default
    if not tenant:
        raise ValidationError("is required", path="tenant_id")
    return tenant
