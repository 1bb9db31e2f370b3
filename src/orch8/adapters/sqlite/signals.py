"""The signal inbox in SQLite: enqueue atomically with the instance check, read pending.

`enqueue` is one BEGIN IMMEDIATE transaction: read the instance's state, refuse
a missing or ended instance, insert the signal, and make the instance due now
when the signal should wake it. Holding SQLite's write lock across the three
statements is what makes the check and the insert one atomic step: no snapshot
write can end the instance in between. Delivery is marked by the snapshot write
that acts on the signal (snapshot_writes.py), in its own transaction.
"""

from __future__ import annotations

import aiosqlite

from orch8.adapters.sqlite.connection import Database, fetch_all
from orch8.adapters.sqlite.rows import ROWS, to_us
from orch8.application.errors import InstanceTerminal, NotFound
from orch8.application.ports.storage import SignalInbox
from orch8.domain.instance import InstanceState
from orch8.domain.signals import Signal, SignalKind

STATE_OF = "SELECT state FROM task_instances WHERE id = ?"
INSERT = """
INSERT INTO signal_inbox (
    id, instance_id, tenant_id, kind, name, payload, created_at, delivered_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""
# Due at the signal's time unless it was due earlier (a NULL fire time counts as "now").
WAKE = """
UPDATE task_instances
SET state = 'scheduled', next_fire_at = min(coalesce(next_fire_at, ?2), ?2)
WHERE id = ?1
"""
# The literal `delivered_at IS NULL` is what lets SQLite match the partial index.
PENDING = """
SELECT id, instance_id, tenant_id, kind, name, payload, created_at, delivered_at
FROM signal_inbox
WHERE instance_id = ? AND delivered_at IS NULL
ORDER BY created_at ASC, rowid ASC
"""

_WAKES_ALWAYS = frozenset({InstanceState.SCHEDULED.value, InstanceState.WAITING.value})
_WAKE_PAUSED = frozenset({SignalKind.RESUME, SignalKind.CANCEL})


def wakes(state: str, kind: SignalKind) -> bool:
    """Whether a signal of `kind` makes an instance in `state` due now."""
    return state in _WAKES_ALWAYS or (state == InstanceState.PAUSED.value and kind in _WAKE_PAUSED)


class SqliteSignalInbox(SignalInbox):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def enqueue(self, signal: Signal) -> None:
        params = ROWS.signal_params(signal)
        wake = (signal.instance_id, to_us(signal.created_at))

        async def store(conn: aiosqlite.Connection) -> None:
            rows = await fetch_all(conn, STATE_OF, (signal.instance_id,))
            if not rows:
                raise NotFound("instance", signal.instance_id)
            state = str(rows[0][0])
            if InstanceState(state).is_terminal:
                raise InstanceTerminal(signal.instance_id, state)
            await conn.execute(INSERT, params)
            if wakes(state, signal.kind):
                await conn.execute(WAKE, wake)

        await self._db.write(store, conflict=f"signal {signal.id} already exists")

    async def pending(self, instance_id: str) -> list[Signal]:
        return [ROWS.signal_from_row(r) for r in await self._db.read(PENDING, (instance_id,))]
