"""Bulk state changes in PostgreSQL: one UPDATE per request, built by adapters/sql/bulk.py.

The port decides the states that may move (`movable_to`, `reschedulable`), the
same for every backend; PostgreSQL binds them as a text array, and shifts fire
times by an interval of seconds.
"""

from __future__ import annotations

from orch8.adapters.postgres.rows import VALUES
from orch8.adapters.sql.bulk import BulkStatements
from orch8.adapters.sql.filters import Placeholders
from orch8.application.ports.storage import EARLIEST_FIRE, LATEST_FIRE

# PostgreSQL numbers parameters `$n`; a list of states is bound as a text array.
PLACEHOLDERS = Placeholders(mark="$", in_states="state = ANY({}::text[])", state_list=list)
# $1 the target state, $2 now.
UPDATE_STATE_HEAD = """
UPDATE task_instances
SET state = $1::text, updated_at = $2::timestamptz,
    next_fire_at = CASE WHEN $1::text = 'scheduled' THEN $2::timestamptz ELSE next_fire_at END
WHERE """
# $1 the shift in seconds, $2 now, $3 and $4 the range every backend holds.
RESCHEDULE_HEAD = """
UPDATE task_instances
SET next_fire_at = LEAST(GREATEST(
        COALESCE(next_fire_at, $2::timestamptz) + make_interval(secs => $1::double precision),
        $3::timestamptz), $4::timestamptz),
    updated_at = $2::timestamptz
WHERE """

_SPAN_S = int((LATEST_FIRE - EARLIEST_FIRE).total_seconds())


def _shift(seconds: int) -> float:
    # Any shift beyond the whole range lands on a bound anyway; clamping first
    # keeps the interval inside PostgreSQL's range.
    return float(max(-_SPAN_S, min(_SPAN_S, seconds)))


BULK = BulkStatements(
    update_state_head=UPDATE_STATE_HEAD,
    reschedule_head=RESCHEDULE_HEAD,
    style=PLACEHOLDERS,
    values=VALUES,
    shift=_shift,
)
