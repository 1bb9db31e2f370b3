"""Bulk state changes: which instances an operator's request moves, in either dialect.

The port decides which states may move (`movable_to`, `reschedulable`), so
every backend moves the same rows; here a request becomes one UPDATE: the
dialect's head (its SET clause, ending in WHERE) and the filter's conditions
(filters.py), every value a bound parameter. Nothing is sent when no state may
move.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from attrs import frozen

from orch8.adapters.sql.filters import Params, Placeholders, conditions
from orch8.adapters.sql.values import Values
from orch8.application.ports.storage import (
    EARLIEST_FIRE,
    LATEST_FIRE,
    InstanceFilter,
    movable_to,
    reschedulable,
)
from orch8.domain.instance import InstanceState

Statement = tuple[str, list[Any]]


@frozen
class BulkStatements:
    """One dialect's two bulk UPDATEs, and how it binds their values."""

    # SET clause ending in WHERE: parameter 1 the target state, 2 now.
    update_state_head: str
    # SET clause ending in WHERE: parameter 1 the shift, 2 now, 3 and 4 the range
    # every backend holds (EARLIEST_FIRE, LATEST_FIRE).
    reschedule_head: str
    style: Placeholders
    values: Values
    # A shift in seconds as the dialect adds it to a time, clamped to what it can hold.
    shift: Callable[[int], Any]

    def update_state(
        self, flt: InstanceFilter, new_state: InstanceState, now: datetime
    ) -> Statement | None:
        """The statement for `bulk_update_state`, or None when no state may move."""
        states = movable_to(new_state, flt.states)
        if not states:
            return None
        leading = [new_state.value, self.values.time(now)]
        return self._filtered(self.update_state_head, flt, states, leading)

    def reschedule(
        self, flt: InstanceFilter, offset_seconds: int, now: datetime
    ) -> Statement | None:
        """The statement for `bulk_reschedule`, or None when no state may move."""
        states = reschedulable(flt.states)
        if not states:
            return None
        v = self.values
        leading = [
            self.shift(offset_seconds),
            v.time(now),
            v.time(EARLIEST_FIRE),
            v.time(LATEST_FIRE),
        ]
        return self._filtered(self.reschedule_head, flt, states, leading)

    def _filtered(
        self,
        head: str,
        flt: InstanceFilter,
        states: tuple[InstanceState, ...],
        leading: list[Any],
    ) -> Statement:
        params = Params(self.style, leading)
        return head + " AND ".join(conditions(flt, states, params)), params.values
