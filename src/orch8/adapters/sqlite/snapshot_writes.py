"""Applying snapshot writes inside one (group-committed) transaction.

Each write is guarded by the state its author last saw: it applies only if the
instance is still in `expected_state`; otherwise it is stale and nothing of it
is written. Each write lands whole or not at all, even when it shares a
transaction with others.

Every statement costs a hop to aiosqlite's thread (~50 µs), more than SQLite
spends on the row itself, so a batch is applied in as few statements as
possible: the batch is cut, in order, into segments in which no instance
appears twice; for each segment one SELECT reads the instances' current
states, and one executemany each updates the instances whose guard holds,
upserts their nodes and inserts their outputs, all inside a segment SAVEPOINT.
Writes within a segment touch different instances, so applying them together
gives the same result as applying them one by one in order. Should a statement
fail on one write's data (a duplicate output id, say), the segment is rolled
back to its savepoint and replayed one write at a time, each in its own
savepoint, so only the offending write fails. The signals a write acted on
(`delivered_signals`) are stamped delivered in the same place, only for a
write whose guard held, so a signal is acted on exactly once. New worker
tasks (`tasks`) are inserted there too, a repeat skipped (new_tasks.INSERT).

A write that reaches beyond its own instance (it inserts `children`, or wakes
a parent) is a segment of its own, applied one statement at a time in its own
savepoint: the guarded update first, and the children, nodes, outputs and
wake-up only if it held. Writes before it are applied before it, writes after
it after it, so a later write in the batch sees the children it inserted and
the parent it woke. Such writes are rare (a child starting or ending), so the
batched path for every other write is unchanged.
"""

from __future__ import annotations

import json
import sqlite3

import aiosqlite

from orch8.adapters.sql.columns import NODE
from orch8.adapters.sql.prepared_writes import NODE_UPDATE, PreparedWrite, segments, stale
from orch8.adapters.sqlite.connection import fetch_all
from orch8.adapters.sqlite.instances import INSERT as INSERT_INSTANCE
from orch8.adapters.sqlite.new_tasks import INSERT as INSERT_TASK
from orch8.application.errors import Conflict

CURRENT_STATES = """
SELECT id, state, tenant_id FROM task_instances
WHERE id IN (SELECT value FROM json_each(?))
"""
# COALESCE: a write without a context keeps the stored one (the column is NOT NULL).
# Parameters: PreparedWrite.guard.
UPDATE = """
UPDATE task_instances
SET state = ?3, next_fire_at = ?4, updated_at = ?5, context = COALESCE(?6, context)
WHERE id = ?1 AND state = ?2
"""
# RETURNING tenant_id: one round trip both checks the guard and gives the tenant
# that the node and output rows are stamped with.
GUARDED_UPDATE = UPDATE + "RETURNING tenant_id\n"
UPSERT_NODE = f"""
INSERT INTO execution_tree (instance_id, tenant_id, {NODE})
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (instance_id, block_id) DO UPDATE SET {NODE_UPDATE}
"""  # noqa: S608 - constant columns
INSERT_OUTPUT = """
INSERT INTO block_outputs (
    tenant_id, id, instance_id, block_id, output, output_ref, output_size, attempt, created_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
# Only the instance's own, still undelivered signals: a replayed write changes nothing.
MARK_DELIVERED = """
UPDATE signal_inbox SET delivered_at = ?3
WHERE id = ?1 AND instance_id = ?2 AND delivered_at IS NULL
"""
# A parent is made due now (?2, the write's updated_at) unless it was due earlier;
# a NULL fire time counts as "now". Other states (running, paused, terminal) stay.
WAKE_PARENT = """
UPDATE task_instances
SET state = 'scheduled', next_fire_at = min(coalesce(next_fire_at, ?2), ?2), updated_at = ?2
WHERE id = ?1 AND state IN ('waiting', 'scheduled')
"""

# Errors caused by one write's data rather than by the database: only that write fails.
PER_WRITE_ERRORS = (
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.DataError,
    OverflowError,
)

Outcome = BaseException | None


def _failure(write: PreparedWrite, exc: BaseException) -> BaseException:
    if isinstance(exc, sqlite3.IntegrityError):
        return Conflict(f"snapshot write for {write.instance_id} conflicts ({exc})")
    return exc


async def apply_batch(conn: aiosqlite.Connection, writes: list[PreparedWrite]) -> list[Outcome]:
    """Apply `writes` in order inside the caller's transaction; one outcome each."""
    outcomes: list[Outcome] = []
    for segment in segments(writes):
        if len(segment) == 1:
            outcomes.append(await apply_one(conn, segment[0]))
        else:
            outcomes.extend(await _apply_segment(conn, segment))
    return outcomes


async def _apply_segment(conn: aiosqlite.Connection, segment: list[PreparedWrite]) -> list[Outcome]:
    ids = json.dumps([w.instance_id for w in segment])
    current = {row[0]: (row[1], row[2]) for row in await fetch_all(conn, CURRENT_STATES, (ids,))}
    passing = [
        w
        for w in segment
        if w.instance_id in current and current[w.instance_id][0] == w.expected_state
    ]
    if not passing:
        return [stale(w) for w in segment]
    await conn.execute("SAVEPOINT snapshot_segment")
    try:
        cursor = await conn.executemany(UPDATE, [w.guard for w in passing])
        if cursor.rowcount != len(passing):  # cannot happen under the write lock; be safe
            raise sqlite3.IntegrityError("instance states changed under the write lock")
        nodes = [(w.instance_id, current[w.instance_id][1], *n) for w in passing for n in w.nodes]
        if nodes:
            await conn.executemany(UPSERT_NODE, nodes)
        outputs = [(current[w.instance_id][1], *o) for w in passing for o in w.outputs]
        if outputs:
            await conn.executemany(INSERT_OUTPUT, outputs)
        delivered = [d for w in passing for d in w.delivered]
        if delivered:
            await conn.executemany(MARK_DELIVERED, delivered)
        tasks = [t for w in passing for t in w.tasks]
        if tasks:
            await conn.executemany(INSERT_TASK, tasks)
    except PER_WRITE_ERRORS:
        await conn.execute("ROLLBACK TO snapshot_segment")
        await conn.execute("RELEASE snapshot_segment")
        return [await apply_one(conn, w) for w in segment]
    await conn.execute("RELEASE snapshot_segment")
    applied = {w.instance_id for w in passing}
    return [None if w.instance_id in applied else stale(w) for w in segment]


async def apply_one(conn: aiosqlite.Connection, write: PreparedWrite) -> Outcome:
    """Apply one write in its own savepoint; return its failure instead of raising it."""
    await conn.execute("SAVEPOINT snapshot_write")
    try:
        rows = await fetch_all(conn, GUARDED_UPDATE, write.guard)
        if rows:
            tenant_id = rows[0][0]
            if write.children:
                await conn.executemany(INSERT_INSTANCE, write.children)
            if write.nodes:
                await conn.executemany(
                    UPSERT_NODE, [(write.instance_id, tenant_id, *n) for n in write.nodes]
                )
            if write.outputs:
                await conn.executemany(INSERT_OUTPUT, [(tenant_id, *o) for o in write.outputs])
            if write.delivered:
                await conn.executemany(MARK_DELIVERED, write.delivered)
            if write.tasks:
                await conn.executemany(INSERT_TASK, write.tasks)
            if write.wake_parent is not None:
                await conn.execute(WAKE_PARENT, write.wake_parent)
    except PER_WRITE_ERRORS as exc:
        await conn.execute("ROLLBACK TO snapshot_write")
        await conn.execute("RELEASE snapshot_write")
        return _failure(write, exc)
    await conn.execute("RELEASE snapshot_write")
    return None if rows else stale(write)
