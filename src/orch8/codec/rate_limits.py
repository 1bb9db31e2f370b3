"""The rate-limit wire format: `{tenant_id, key, max_count, window_seconds, ...}`.

orch8's own API (Orch8 has none): a body names the limit's numbers, and on
create its key and optionally its tenant. Each refusal names the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import frozen

from orch8.application.use_cases.rate_limits import LimitSpec
from orch8.codec.fields import obj, req, string
from orch8.codec.times import format_time
from orch8.domain.errors import ValidationError
from orch8.domain.rate_limits import RateLimit


@frozen
class NewLimit:
    """`POST /rate-limits`: the tenant (None: the caller's) and key, with the numbers."""

    tenant_id: str | None
    key: str
    spec: LimitSpec


def limit_to_json(limit: RateLimit) -> dict[str, Any]:
    return {
        "tenant_id": limit.tenant_id,
        "key": limit.key,
        "max_count": limit.max_count,
        "window_seconds": limit.window_seconds,
        "created_at": format_time(limit.created_at),
        "updated_at": format_time(limit.updated_at),
    }


def new_limit_from_json(value: object) -> NewLimit:
    """`{key, max_count, window_seconds, tenant_id?}`."""
    data = obj(value, "body")
    key = string(data, "key", "", required=True)
    assert key is not None
    return NewLimit(string(data, "tenant_id", ""), key, _spec(data))


def limit_change_from_json(value: object, *, tenant_id: str, key: str) -> LimitSpec:
    """`{max_count, window_seconds}` for the limit at `tenant_id`/`key`; a `key` or
    `tenant_id` in the body must name that same limit."""
    data = obj(value, "body")
    for name, addressed in (("key", key), ("tenant_id", tenant_id)):
        given = string(data, name, "")
        if given is not None and given != addressed:
            raise ValidationError(
                f"'{given}' does not match the addressed '{addressed}'", path=name
            )
    return _spec(data)


def _spec(data: Mapping[str, Any]) -> LimitSpec:
    count = req(data, "max_count", "")
    if isinstance(count, float) and count.is_integer():
        count = int(count)
    if isinstance(count, bool) or not isinstance(count, int):
        raise ValidationError("must be an integer", path="max_count")
    window = req(data, "window_seconds", "")
    if isinstance(window, bool) or not isinstance(window, int | float):
        raise ValidationError("must be a number of seconds", path="window_seconds")
    return LimitSpec(max_count=count, window_seconds=float(window))
