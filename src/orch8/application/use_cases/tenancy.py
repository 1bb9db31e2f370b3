"""Tenant scoping shared by every use case.

`caller` is the tenant the request acts for: its API key's tenant, else its
`x-tenant-id` header, or None when it names none (a root or unauthenticated
caller without the header, on a server that does not require one). Another tenant's object is
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
        raise Forbidden(
            f"tenant_id '{requested}' is not the caller's tenant '{caller}' "
            "(its x-tenant-id header or API key)"
        )
    tenant = requested or caller or default
    if not tenant:
        raise ValidationError("is required", path="tenant_id")
    return tenant
