"""Query-string parsing for the list and lookup routes.

Orch8 parses these with serde, so a malformed value is a 400 rather than
being silently ignored; orch8 does the same and names the parameter (an empty
string parameter counts as absent; an empty integer or flag is refused). Paging
follows Orch8: `offset` defaults to 0, `limit` is clamped to the server's
largest page (`max_page_size`, 1000 by default) rather than refused, so a
client asking for "everything" gets the largest page. Every integer has a
range (Orch8's u32 `limit`, a 64-bit `offset`): a value outside it is a 400
naming the parameter, never a number storage cannot hold.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from aiohttp import web
from multidict import MultiMapping

from orch8.application.ports.storage import Page
from orch8.codec.wire import DEFAULT_NAMESPACE, state_from_json
from orch8.domain.errors import ValidationError
from orch8.domain.instance import InstanceState
from orch8.entrypoints.http.deps import DEFAULT_MAX_PAGE_SIZE, deps_of

# The default largest page (`max_page_size`), for documentation.
MAX_LIMIT = DEFAULT_MAX_PAGE_SIZE
INT32_MAX = 2**31 - 1
UINT32_MAX = 2**32 - 1
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_INTEGER = re.compile(r"[+-]?[0-9]+")
# `limit` is an unsigned 32-bit integer in Orch8 (then clamped); `offset` 64-bit.
LIMIT_MAX = UINT32_MAX
OFFSET_MAX = INT64_MAX


def optional_str(query: Mapping[str, str], name: str) -> str | None:
    """The parameter's value, as sent; an empty or blank value (`?name=`) counts as
    absent. Given twice it is refused, as Orch8's query parsing does."""
    if isinstance(query, MultiMapping) and len(query.getall(name, ())) > 1:
        raise ValidationError("query parameter given more than once", path=name)
    value = query.get(name, "")
    return value if value.strip() else None


def required_str(query: Mapping[str, str], name: str) -> str:
    value = optional_str(query, name)
    if value is None:
        raise ValidationError("query parameter is required", path=name)
    return value


def optional_int(
    query: Mapping[str, str],
    name: str,
    *,
    minimum: int = INT64_MIN,
    maximum: int = INT64_MAX,
) -> int | None:
    if optional_str(query, name) is None and name not in query:
        return None
    raw = query[name]  # present: even an empty value must be a number, as in Orch8
    text = raw.strip()
    if not _INTEGER.fullmatch(text):  # ASCII digits only: not "1_000", "1e3" or "٣"
        raise ValidationError(f"must be an integer, got '{raw}'", path=name)
    if len(text) > 40:  # int() of a huge digit string is slow; no range here needs it
        raise ValidationError(f"must be an integer of at most {maximum}", path=name)
    value = int(text)
    if value < minimum:
        raise ValidationError(f"must be at least {minimum}", path=name)
    if value > maximum:
        raise ValidationError(f"must be at most {maximum}", path=name)
    return value


def flag(query: Mapping[str, str], name: str) -> bool:
    """`1|true|yes` or `0|false|no` (any case); absent is false."""
    if optional_str(query, name) is None and name not in query:
        return False
    text = query[name].strip().lower()
    if text in {"1", "true", "yes"}:
        return True
    if text in {"0", "false", "no"}:
        return False
    raise ValidationError("must be true or false", path=name)


def page(query: Mapping[str, str], *, default_limit: int, max_limit: int = MAX_LIMIT) -> Page:
    offset = optional_int(query, "offset", minimum=0, maximum=OFFSET_MAX) or 0
    limit = optional_int(query, "limit", minimum=1, maximum=LIMIT_MAX)
    return Page(offset=offset, limit=min(limit or default_limit, max_limit))


def page_of(request: web.Request, *, default_limit: int) -> Page:
    """`offset` and `limit` of a list route, clamped to the server's `max_page_size`."""
    return page(
        request.query, default_limit=default_limit, max_limit=deps_of(request).max_page_size
    )


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
