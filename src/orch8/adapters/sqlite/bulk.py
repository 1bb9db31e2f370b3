"""Bulk state changes in SQLite: one UPDATE per request, chosen by filter.

Which states may move is decided by the port (`movable_to`, `reschedulable`),
so every backend moves the same rows; here those states become a bound JSON
list. The statement is built only from constant fragments, picked by which
filter fields are set (adapters/sql/filters.py); every value is a bound parameter.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from orch8.adapters.sql.filters import Placeholders, bulk_sql
from orch8.adapters.sqlite.rows import to_us
from orch8.application.ports.storage import (
    EARLIEST_FIRE,
    LATEST_FIRE,
    InstanceFilter,
    movable_to,
    reschedulable,
)
from orch8.domain.instance import InstanceState

# SQLite numbers parameters `?n`; a list of states is bound as one JSON array.
PLACEHOLDERS = Placeholders(
    mark="?", in_states="state IN (SELECT value FROM json_each({}))", state_list=json.dumps
)
# ?1 the target state, ?2 now.
UPDATE_STATE_HEAD = """
UPDATE task_instances
SET state = ?1, updated_at = ?2,
    next_fire_at = CASE WHEN ?1 = 'scheduled' THEN ?2 ELSE next_fire_at END
WHERE """
# Shifted from the stored fire time (or now), clamped to the range every backend holds:
# ?1 the shift in microseconds, ?2 now, ?3 and ?4 that range.
RESCHEDULE_HEAD = """
UPDATE task_instances
SET next_fire_at = min(max(coalesce(next_fire_at, ?2) + ?1, ?3), ?4),
    updated_at = ?2
WHERE """

_EARLIEST_US = to_us(EARLIEST_FIRE)
_LATEST_US = to_us(LATEST_FIRE)
_SPAN_US = _LATEST_US - _EARLIEST_US


def update_state_sql(
    flt: InstanceFilter, new_state: InstanceState, now: datetime
) -> tuple[str, list[Any]] | None:
    """The statement for `bulk_update_state`, or None when no state may move."""
    states = movable_to(new_state, flt.states)
    if not states:
        return None
    leading = [new_state.value, to_us(now)]
    return bulk_sql(UPDATE_STATE_HEAD, flt, states, leading, PLACEHOLDERS)


def reschedule_sql(
    flt: InstanceFilter, offset_seconds: int, now: datetime
) -> tuple[str, list[Any]] | None:
    """The statement for `bulk_reschedule`, or None when no state may move."""
    states = reschedulable(flt.states)
    if not states:
        return None
    # Any shift beyond the whole range lands on a bound anyway; clamping first
    # keeps the arithmetic inside SQLite's 64-bit integers.
    offset = max(-_SPAN_US, min(_SPAN_US, offset_seconds * 1_000_000))
    leading = [offset, to_us(now), _EARLIEST_US, _LATEST_US]
    return bulk_sql(RESCHEDULE_HEAD, flt, states, leading, PLACEHOLDERS)
