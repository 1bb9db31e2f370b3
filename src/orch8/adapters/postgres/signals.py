"""The signal inbox in PostgreSQL: enqueue atomically with the instance check, read pending.

`enqueue` is one statement, so one atomic unit: it locks the instance row
(FOR UPDATE, so a concurrent snapshot write that ends the instance is ordered
before or after it, never in between), inserts the signal only if the instance
has not ended, and makes the instance due now when the signal should wake it.
What the row lock read tells the caller whether the instance was missing or
ended (then nothing was stored). Delivery is marked by the snapshot write that
acts on the signal (snapshot_writes.py), in the same statement as its effects.
"""

from __future__ import annotations

from orch8.adapters.postgres.connection import Database
from orch8.adapters.postgres.rows import ROWS
from orch8.application.errors import InstanceTerminal, NotFound
from orch8.application.ports.storage import SignalInbox
from orch8.domain.instance import InstanceState
from orch8.domain.signals import Signal

# $9: whether the signal wakes a paused instance (resume, cancel). The instance
# is due at the signal's time unless it was due earlier (LEAST skips a NULL).
ENQUEUE = """
WITH inst AS (
    SELECT id, state FROM task_instances WHERE id = $2 FOR UPDATE
), stored AS (
    INSERT INTO signal_inbox (
        id, instance_id, tenant_id, kind, name, payload, created_at, delivered_at
    )
    SELECT $1, $2, $3, $4, $5, $6::jsonb, $7::timestamptz, $8::timestamptz
    FROM inst WHERE inst.state NOT IN ('completed', 'failed', 'cancelled')
), woken AS (
    UPDATE task_instances AS t
    SET state = 'scheduled', next_fire_at = LEAST(t.next_fire_at, $7::timestamptz)
    FROM inst
    WHERE t.id = inst.id
      AND (inst.state IN ('scheduled', 'waiting') OR (inst.state = 'paused' AND $9::boolean))
)
SELECT state FROM inst
"""
# The literal `delivered_at IS NULL` is what lets the planner use the partial index.
PENDING = """
SELECT id, instance_id, tenant_id, kind, name, payload, created_at, delivered_at
FROM signal_inbox
WHERE instance_id = $1 AND delivered_at IS NULL
ORDER BY created_at ASC, insert_order ASC
"""

_WAKE_PAUSED = frozenset({"resume", "cancel"})


class PostgresSignalInbox(SignalInbox):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def enqueue(self, signal: Signal) -> None:
        rows = await self._db.fetch(
            ENQUEUE, *ROWS.signal_params(signal), signal.kind.value in _WAKE_PAUSED
        )
        if not rows:
            raise NotFound("instance", signal.instance_id)
        state = InstanceState(rows[0][0])
        if state.is_terminal:
            raise InstanceTerminal(signal.instance_id, state.value)

    async def pending(self, instance_id: str) -> list[Signal]:
        return [ROWS.signal_from_row(r) for r in await self._db.fetch(PENDING, instance_id)]
