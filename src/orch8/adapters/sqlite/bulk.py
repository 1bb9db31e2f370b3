"""Bulk state changes in SQLite: one UPDATE per request, built by adapters/sql/bulk.py.

The states that may move come from the port (`movable_to`, `reschedulable`), so
every backend moves the same rows. SQLite binds them as one JSON array, read
back with json_each, and shifts fire times in integer microseconds.
"""

from __future__ import annotations

import json

from orch8.adapters.sql.bulk import BulkStatements
from orch8.adapters.sql.filters import Placeholders
from orch8.adapters.sqlite.rows import VALUES, to_us
from orch8.application.ports.storage import EARLIEST_FIRE, LATEST_FIRE

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

_SPAN_US = to_us(LATEST_FIRE) - to_us(EARLIEST_FIRE)


def _shift(seconds: int) -> int:
    # Any shift beyond the whole range lands on a bound anyway; clamping first
    # keeps the arithmetic inside SQLite's 64-bit integers.
    return max(-_SPAN_US, min(_SPAN_US, seconds * 1_000_000))


BULK = BulkStatements(
    update_state_head=UPDATE_STATE_HEAD,
    reschedule_head=RESCHEDULE_HEAD,
    style=PLACEHOLDERS,
    values=VALUES,
    shift=_shift,
)
