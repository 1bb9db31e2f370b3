"""Bulk state changes: which instances an operator's request moves, in either dialect.

The port decides which states may move (`movable_to`, `reschedulable`), so
every backend moves the same rows; here a request becomes one UPDATE: the
dialect's head (its SET clause, ending in WHERE) and the filter's conditions
(filters.py), every value a bound parameter. Nothing is sent when no state may
move.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

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


def update_state_sql(
    head: str,
    flt: InstanceFilter,
    new_state: InstanceState,
    now: datetime,
    style: Placeholders,
    values: Values,
) -> Statement | None:
    """`head` takes the target state as parameter 1 and now as parameter 2."""
    states = movable_to(new_state, flt.states)
    if not states:
        return None
    return _filtered(head, flt, states, [new_state.value, values.time(now)], style)


def reschedule_sql(
    head: str,
    flt: InstanceFilter,
    offset: Any,
    now: datetime,
    style: Placeholders,
    values: Values,
) -> Statement | None:
    """`head` takes the shift (`offset`, in the dialect's unit) as parameter 1, now
    as 2, and the range every backend holds (EARLIEST_FIRE, LATEST_FIRE) as 3 and 4."""
    states = reschedulable(flt.states)
    if not states:
        return None
    leading = [offset, values.time(now), values.time(EARLIEST_FIRE), values.time(LATEST_FIRE)]
    return _filtered(head, flt, states, leading, style)


def _filtered(
    head: str,
    flt: InstanceFilter,
    states: tuple[InstanceState, ...],
    leading: list[Any],
    style: Placeholders,
) -> Statement:
    params = Params(style, leading)
    return head + " AND ".join(conditions(flt, states, params)), params.values
