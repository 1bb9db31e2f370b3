"""The claim in SQLite: due instances in claim order, concurrency caps applied.

It runs as BEGIN IMMEDIATE (which takes SQLite's single write lock at once, so
two claimers in different processes serialise instead of both reading the same
rows), one ordered SELECT served by the partial index `idx_task_instances_due`,
and an UPDATE of exactly the rows taken. Ties in (priority, next_fire_at) go to
the older row (rowid, the insertion order), which is also the index's own
order, so no sort step is needed.

Concurrency caps are decided under the same write lock: when a candidate
carries a `concurrency_key`, one more statement counts the running instances
of those keys (through `idx_task_instances_running_key`) and candidates are
taken in claim order, each counted against its key, a capped one only while
its key has room (`max_concurrency`). The others
stay scheduled, moved CAP_DEFERRAL later so they do not head every claim.
Nothing else moves an instance into `running` concurrently, so the count holds
until COMMIT.
"""

from __future__ import annotations

import json
from datetime import datetime

import aiosqlite
from attrs import evolve

from orch8.adapters.sql.columns import INSTANCE
from orch8.adapters.sqlite.connection import Row, fetch_all
from orch8.adapters.sqlite.rows import ROWS, to_us
from orch8.application.ports.storage import CAP_DEFERRAL
from orch8.domain.instance import Instance, InstanceState

# The literal 'scheduled' (not a parameter) is what lets SQLite match the partial index.
CLAIM_SELECT = f"""
SELECT {INSTANCE} FROM task_instances
WHERE state = 'scheduled' AND (next_fire_at IS NULL OR next_fire_at <= ?)
ORDER BY priority DESC, next_fire_at ASC, rowid ASC
LIMIT ?
"""  # noqa: S608 - constant columns
CLAIM_UPDATE = (
    "UPDATE task_instances SET state = 'running', updated_at = ? "
    "WHERE id = ? AND state = 'scheduled'"
)
RUNNING_PER_KEY = """
SELECT concurrency_key, count(*) FROM task_instances
WHERE state = 'running' AND concurrency_key IS NOT NULL
  AND concurrency_key IN (SELECT value FROM json_each(?))
GROUP BY concurrency_key
"""
DEFER = "UPDATE task_instances SET next_fire_at = ? WHERE id = ? AND state = 'scheduled'"

_KEY, _CAP = 10, 11  # concurrency_key and max_concurrency in CLAIM_SELECT's rows


async def _running_per_key(conn: aiosqlite.Connection, rows: list[Row]) -> dict[str, int]:
    keys = sorted({str(row[_KEY]) for row in rows if row[_KEY] is not None})
    if not keys:
        return {}
    counted = await fetch_all(conn, RUNNING_PER_KEY, (json.dumps(keys),))
    return {str(key): int(count) for key, count in counted}


def split_by_cap(rows: list[Row], running: dict[str, int]) -> tuple[list[Row], list[Row]]:
    """(taken, held back): candidates in claim order, each taken while its key has room."""
    taken: list[Row] = []
    held: list[Row] = []
    for row in rows:
        if row[_KEY] is not None:
            key = str(row[_KEY])
            if row[_CAP] is not None and running.get(key, 0) >= int(row[_CAP]):
                held.append(row)
                continue
            running[key] = running.get(key, 0) + 1
        taken.append(row)
    return taken, held


async def claim(conn: aiosqlite.Connection, now: datetime, limit: int) -> list[Instance]:
    """Inside the caller's BEGIN IMMEDIATE transaction: take the due instances."""
    now_us = to_us(now)
    rows = await fetch_all(conn, CLAIM_SELECT, (now_us, limit))
    if not rows:
        return []
    taken, held = split_by_cap(rows, await _running_per_key(conn, rows))
    if held:
        later = to_us(now + CAP_DEFERRAL)
        await conn.executemany(DEFER, [(later, row[0]) for row in held])
    if taken:
        await conn.executemany(CLAIM_UPDATE, [(now_us, row[0]) for row in taken])
    return [
        evolve(ROWS.instance_from_row(row), state=InstanceState.RUNNING, updated_at=now)
        for row in taken
    ]
