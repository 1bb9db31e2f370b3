"""Instance states, the transitions between them, and priorities."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import IntEnum, StrEnum
from typing import Any

from attrs import field, frozen

from orch8.domain.context import ExecutionContext
from orch8.domain.errors import InvalidTransition


class InstanceState(StrEnum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    WAITING = "waiting"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {InstanceState.COMPLETED, InstanceState.FAILED, InstanceState.CANCELLED}
)

_S = InstanceState
ALLOWED_TRANSITIONS: Mapping[InstanceState, frozenset[InstanceState]] = {
    _S.SCHEDULED: frozenset({_S.RUNNING, _S.PAUSED, _S.CANCELLED}),
    _S.RUNNING: frozenset(
        {_S.SCHEDULED, _S.WAITING, _S.COMPLETED, _S.FAILED, _S.PAUSED, _S.CANCELLED}
    ),
    _S.WAITING: frozenset({_S.RUNNING, _S.SCHEDULED, _S.CANCELLED, _S.FAILED}),
    _S.PAUSED: frozenset({_S.SCHEDULED, _S.CANCELLED}),
    _S.FAILED: frozenset({_S.SCHEDULED}),
    _S.COMPLETED: frozenset(),
    _S.CANCELLED: frozenset(),
}


def can_transition(current: InstanceState, target: InstanceState) -> bool:
    return target in ALLOWED_TRANSITIONS[current]


def check_transition(current: InstanceState, target: InstanceState) -> None:
    if not can_transition(current, target):
        raise InvalidTransition(current.value, target.value)


class Priority(IntEnum):
    """Claim order: higher first. The wire spells them in PascalCase."""

    LOW = 0
    NORMAL = 1
    HIGH = 2
    CRITICAL = 3

    @property
    def wire_name(self) -> str:
        return self.name.capitalize()


@frozen
class Instance:
    id: str
    sequence_id: str
    tenant_id: str
    namespace: str
    state: InstanceState
    next_fire_at: datetime | None
    priority: Priority
    timezone: str
    created_at: datetime
    updated_at: datetime
    metadata: Mapping[str, Any] = field(factory=dict)
    context: ExecutionContext = field(factory=ExecutionContext)
    concurrency_key: str | None = None
    max_concurrency: int | None = None
    idempotency_key: str | None = None
    parent_instance_id: str | None = None
