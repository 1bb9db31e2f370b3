"""The four sections of an instance's execution context."""

from __future__ import annotations

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
