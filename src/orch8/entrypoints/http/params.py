"""Query-string parsing for the list and lookup routes.

Orch8 parses these with serde, so a malformed value is a 400 rather than
being silently ignored; orch8 does the same and names the parameter. Paging
follows Orch8: `offset` defaults to 0, `limit` is clamped to 1000 rather than
refused, so a client asking for "everything" gets the largest page.
"""

from __future__ import annotations

from collections.abc import Mapping

from orch8.application.ports.storage import Page
from orch8.codec.wire import DEFAULT_NAMESPACE, state_from_json
from orch8.domain.errors import ValidationError
from orch8.domain.instance import InstanceState

MAX_LIMIT = 1000


def optional_str(query: Mapping[str, str], name: str) -> str | None:
    """The parameter's value; an empty value (`?name=`) counts as absent."""
    value = query.get(name, "").strip()
    return value or None


def required_str(query: Mapping[str, str], name: str) -> str:
    value = optional_str(query, name)
    if value is None:
        raise ValidationError("query parameter is required", path=name)
    return value


def optional_int(query: Mapping[str, str], name: str, *, minimum: int | None = None) -> int | None:
    raw = optional_str(query, name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(f"must be an integer, got '{raw}'", path=name) from None
    if minimum is not None and value < minimum:
        raise ValidationError(f"must be at least {minimum}", path=name)
    return value


def flag(query: Mapping[str, str], name: str) -> bool:
    """`1|true|yes` or `0|false|no` (any case); absent or empty is false."""
    text = query.get(name, "").strip().lower()
    if text in {"1", "true", "yes"}:
        return True
    if text in {"0", "false", "no", ""}:
        return False
    raise ValidationError("must be true or false", path=name)


def page(query: Mapping[str, str], *, default_limit: int) -> Page:
    offset = optional_int(query, "offset", minimum=0) or 0
    limit = optional_int(query, "limit", minimum=1)
    return Page(offset=offset, limit=min(limit or default_limit, MAX_LIMIT))


def states(query: Mapping[str, str]) -> tuple[InstanceState, ...]:
    """`state=a,b` as a tuple of states (empty: no state filter)."""
    raw = optional_str(query, "state")
    if raw is None:
        return ()
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    return tuple(dict.fromkeys(state_from_json(p, "state") for p in parts))


def namespace(query: Mapping[str, str]) -> str:
    """Orch8 requires `namespace` on name lookups; orch8 falls back to "default"."""
    return optional_str(query, "namespace") or DEFAULT_NAMESPACE


def tenant(query: Mapping[str, str], caller: str | None) -> str:
    """`tenant_id` for name lookups, falling back to the `x-tenant-id` caller."""
    value = optional_str(query, "tenant_id") or caller
    if value is None:
        raise ValidationError("query parameter is required (or send x-tenant-id)", path="tenant_id")
    return value
