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
tasks (`tasks`) are inserted there too, a repeat skipped (task_rows.INSERT).

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
from collections.abc import Iterator
from typing import Any

import aiosqlite
from attrs import field, frozen

from orch8.adapters.sqlite.connection import fetch_all
from orch8.adapters.sqlite.instances import INSERT as INSERT_INSTANCE
from orch8.adapters.sqlite.rows import (
    dump_context,
    instance_params,
    node_params,
    output_params,
    to_us,
    to_us_or_none,
)
from orch8.adapters.sqlite.task_rows import INSERT as INSERT_TASK
from orch8.adapters.sqlite.task_rows import task_params
from orch8.application.errors import Conflict, StaleWrite
from orch8.application.ports.storage import SnapshotWrite

CURRENT_STATES = """
SELECT id, state, tenant_id FROM task_instances
WHERE id IN (SELECT value FROM json_each(?))
"""
# COALESCE: a write without a context keeps the stored one (the column is NOT NULL).
# RETURNING tenant_id: one round trip both checks the guard and gives the tenant
# that the node and output rows are stamped with.
GUARDED_UPDATE = """
UPDATE task_instances
SET state = ?, next_fire_at = ?, updated_at = ?, context = COALESCE(?, context)
WHERE id = ? AND state = ?
RETURNING tenant_id
"""
UPDATE = """
UPDATE task_instances
SET state = ?, next_fire_at = ?, updated_at = ?, context = COALESCE(?, context)
WHERE id = ? AND state = ?
"""
UPSERT_NODE = """
INSERT INTO execution_tree (
    instance_id, tenant_id, block_id, block_type, state, parent_id, branch_index, attempts,
    not_before, started_at, completed_at, error, iteration, branch, ref, reserved_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (instance_id, block_id) DO UPDATE SET
    block_type = excluded.block_type, state = excluded.state,
    parent_id = excluded.parent_id, branch_index = excluded.branch_index,
    attempts = excluded.attempts, not_before = excluded.not_before,
    started_at = excluded.started_at, completed_at = excluded.completed_at,
    error = excluded.error, iteration = excluded.iteration, branch = excluded.branch,
    ref = excluded.ref, reserved_at = excluded.reserved_at
"""
INSERT_OUTPUT = """
INSERT INTO block_outputs (
    tenant_id, id, instance_id, block_id, output, output_ref, output_size, attempt, created_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
# Only the instance's own, still undelivered signals: a replayed write changes nothing.
MARK_DELIVERED = """
UPDATE signal_inbox SET delivered_at = ?
WHERE id = ? AND instance_id = ? AND delivered_at IS NULL
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


@frozen
class PreparedWrite:
    """A SnapshotWrite turned into statement parameters. Encoding happens in the
    caller, so its errors reach that caller and never the shared transaction."""

    instance_id: str
    expected_state: str
    update: tuple[Any, ...]
    nodes: list[tuple[Any, ...]]
    outputs: list[tuple[Any, ...]]
    children: list[tuple[Any, ...]]
    wake_parent: tuple[str, int] | None  # (parent id, the write's updated_at)
    delivered: list[tuple[Any, ...]]  # (updated_at, signal id, instance id)
    tasks: list[tuple[Any, ...]] = field(factory=list)  # new worker tasks (task_rows)

    @property
    def alone(self) -> bool:
        """Whether the write touches rows beyond its own instance's."""
        return bool(self.children) or self.wake_parent is not None


def prepare(write: SnapshotWrite) -> PreparedWrite:
    for out in write.outputs:
        if out.instance_id != write.instance_id:
            raise ValueError(
                f"output {out.id} belongs to instance {out.instance_id}, "
                f"not to the written instance {write.instance_id}"
            )
    return PreparedWrite(
        instance_id=write.instance_id,
        expected_state=write.expected_state.value,
        update=(
            write.state.value,
            to_us_or_none(write.next_fire_at),
            to_us(write.updated_at),
            None if write.context is None else dump_context(write.context),
            write.instance_id,
            write.expected_state.value,
        ),
        nodes=[node_params(n) for n in write.nodes],
        outputs=[output_params(o) for o in write.outputs],
        children=[instance_params(c) for c in write.children],
        wake_parent=(
            None if write.wake_parent is None else (write.wake_parent, to_us(write.updated_at))
        ),
        delivered=[
            (to_us(write.updated_at), sid, write.instance_id) for sid in write.delivered_signals
        ],
        tasks=[task_params(t) for t in write.tasks],
    )


def _stale(write: PreparedWrite) -> StaleWrite:
    return StaleWrite(f"instance {write.instance_id} is no longer {write.expected_state}")


def _failure(write: PreparedWrite, exc: BaseException) -> BaseException:
    if isinstance(exc, sqlite3.IntegrityError):
        return Conflict(f"snapshot write for {write.instance_id} conflicts ({exc})")
    return exc


def segments(writes: list[PreparedWrite]) -> Iterator[list[PreparedWrite]]:
    """Consecutive runs of `writes` in which no instance appears twice; a write
    that touches other instances' rows (`alone`) is a run of its own."""
    current: list[PreparedWrite] = []
    seen: set[str] = set()
    for write in writes:
        if current and (write.alone or write.instance_id in seen):
            yield current
            current, seen = [], set()
        current.append(write)
        seen.add(write.instance_id)
        if write.alone:
            yield current
            current, seen = [], set()
    if current:
        yield current


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
        return [_stale(w) for w in segment]
    await conn.execute("SAVEPOINT snapshot_segment")
    try:
        cursor = await conn.executemany(UPDATE, [w.update for w in passing])
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
    return [None if w.instance_id in applied else _stale(w) for w in segment]


async def apply_one(conn: aiosqlite.Connection, write: PreparedWrite) -> Outcome:
    """Apply one write in its own savepoint; return its failure instead of raising it."""
    await conn.execute("SAVEPOINT snapshot_write")
    try:
        rows = await fetch_all(conn, GUARDED_UPDATE, write.update)
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
    return None if rows else _stale(write)
