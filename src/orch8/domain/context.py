"""The four sections of an instance's execution context."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from attrs import field, frozen


@frozen
class ExecutionContext:
    """`data` is the workflow's own state; `config` is read-only after start;
    `audit` is append-only; `runtime` is engine bookkeeping users may read."""

    data: Mapping[str, Any] = field(factory=dict)
    config: Mapping[str, Any] = field(factory=dict)
    audit: tuple[Mapping[str, Any], ...] = ()
    runtime: Mapping[str, Any] = field(factory=dict)


def _plain(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple | list):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def serialized_size(ctx: ExecutionContext) -> int:
    """The context's size as compact UTF-8 JSON: what Orch8's `max_context_bytes` measures."""
    text = json.dumps(
        {"data": ctx.data, "config": ctx.config, "audit": ctx.audit, "runtime": ctx.runtime},
        separators=(",", ":"),
        ensure_ascii=False,
        default=_plain,
    )
    return len(text.encode("utf-8", "surrogatepass"))
