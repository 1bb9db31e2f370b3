"""Signals: messages to a running workflow, delivered in order, exactly once."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from attrs import frozen

HUMAN_INPUT_PREFIX = "human_input:"


class SignalKind(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    UPDATE_CONTEXT = "update_context"
    CUSTOM = "custom"


@frozen
class Signal:
    """`name` is set for custom signals only (e.g. `human_input:approve`)."""

    id: str
    instance_id: str
    tenant_id: str
    kind: SignalKind
    created_at: datetime
    payload: Any = None
    name: str | None = None
    delivered_at: datetime | None = None

    @property
    def human_input_block(self) -> str | None:
        """The block a `human_input:<block_id>` signal answers, else None."""
        if (
            self.kind is SignalKind.CUSTOM
            and self.name
            and self.name.startswith(HUMAN_INPUT_PREFIX)
        ):
            return self.name[len(HUMAN_INPUT_PREFIX) :]
        return None
