"""Requests the use cases accept, already parsed and type-checked by the edge."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from attrs import field, frozen

from orch8.domain.context import ExecutionContext
from orch8.domain.instance import Priority
from orch8.domain.sequence import Block


@frozen
class NewSequence:
    """A create-sequence request: what the client chose; the server fills the rest."""

    tenant_id: str | None
    namespace: str
    name: str
    blocks: tuple[Block, ...]
    id: str | None = None
    version: int | None = None
    created_at: datetime | None = None
    deprecated: bool = False
    input_schema: Mapping[str, Any] | None = None
    on_failure: tuple[Block, ...] | None = None
    on_cancel: tuple[Block, ...] | None = None


@frozen
class NewInstance:
    sequence_id: str
    tenant_id: str | None = None
    namespace: str = "default"
    priority: Priority = Priority.NORMAL
    timezone: str = "UTC"
    metadata: Mapping[str, Any] = field(factory=dict)
    context: ExecutionContext = field(factory=ExecutionContext)
    next_fire_at: datetime | None = None
    concurrency_key: str | None = None
    max_concurrency: int | None = None
    idempotency_key: str | None = None
