"""Bulk state changes in SQLite: one UPDATE per request, chosen by filter.

Which states may move is decided by the port (`movable_to`, `reschedulable`),
so every backend moves the same rows; here those states become a bound JSON
list. The statement is built only from constant fragments, picked by which
filter fields are set; every value is a bound parameter.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from orch8.adapters.sqlite.rows import to_us
from orch8.application.ports.storage import (
    EARLIEST_FIRE,
    LATEST_FIRE,
    InstanceFilter,
    movable_to,
    reschedulable,
)
from orch8.domain.instance import InstanceState

_FILTERS = {
    "tenant_id": "tenant_id = :tenant_id",
    "namespace": "namespace = :namespace",
    "sequence_id": "sequence_id = :sequence_id",
}
_IN_STATES = "state IN (SELECT value FROM json_each(:states))"
UPDATE_STATE_HEAD = """
UPDATE task_instances
SET state = :new_state, updated_at = :now,
    next_fire_at = CASE WHEN :new_state = 'scheduled' THEN :now ELSE next_fire_at END
WHERE """
# Shifted from the stored fire time (or now), clamped to the range every backend holds.
RESCHEDULE_HEAD = """
UPDATE task_instances
SET next_fire_at = min(max(coalesce(next_fire_at, :now) + :offset, :earliest), :latest),
    updated_at = :now
WHERE """

_EARLIEST_US = to_us(EARLIEST_FIRE)
_LATEST_US = to_us(LATEST_FIRE)
_SPAN_US = _LATEST_US - _EARLIEST_US


def _where(flt: InstanceFilter, states: tuple[InstanceState, ...]) -> tuple[str, dict[str, Any]]:
    params: dict[str, Any] = {
        "tenant_id": flt.tenant_id,
        "namespace": flt.namespace,
        "sequence_id": flt.sequence_id,
    }
    where = [_FILTERS[key] for key, value in params.items() if value is not None]
    params = {key: value for key, value in params.items() if value is not None}
    params["states"] = json.dumps([s.value for s in states])
    return " AND ".join([*where, _IN_STATES]), params


def update_state_sql(
    flt: InstanceFilter, new_state: InstanceState, now: datetime
) -> tuple[str, dict[str, Any]] | None:
    """The statement for `bulk_update_state`, or None when no state may move."""
    states = movable_to(new_state, flt.states)
    if not states:
        return None
    where, params = _where(flt, states)
    params.update(new_state=new_state.value, now=to_us(now))
    return UPDATE_STATE_HEAD + where, params


def reschedule_sql(
    flt: InstanceFilter, offset_seconds: int, now: datetime
) -> tuple[str, dict[str, Any]] | None:
    """The statement for `bulk_reschedule`, or None when no state may move."""
    states = reschedulable(flt.states)
    if not states:
        return None
    where, params = _where(flt, states)
    # Any shift beyond the whole range lands on a bound anyway; clamping first
    # keeps the arithmetic inside SQLite's 64-bit integers.
    offset = max(-_SPAN_US, min(_SPAN_US, offset_seconds * 1_000_000))
    params.update(now=to_us(now), offset=offset, earliest=_EARLIEST_US, latest=_LATEST_US)
    return RESCHEDULE_HEAD + where, params
