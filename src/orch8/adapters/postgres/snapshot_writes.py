"""How snapshot writes are applied: the guard, batching, and failure isolation.

A batch of writes to distinct instances is ONE statement (so one round trip
and one transaction): a data-modifying CTE that runs the guarded UPDATE of
every instance (`WHERE id = w.id AND state = w.expected_state`) and inserts
the nodes and outputs of exactly the instances whose guard held, joined on the
UPDATE's RETURNING rows. An instance whose guard fails gets no row back, so
nothing of its write is stored, and its caller gets StaleWrite. The signals a
write acted on (`delivered_signals`) are stamped delivered by the same
statement, joined on the same rows, so a signal is acted on exactly once.
New worker tasks (`tasks`) are inserted the same way (a repeat is skipped), by
a variant of the statement that also sends `NOTIFY orch8_tasks, '<handler>'`
(new_tasks.py); writes without tasks use the statement unchanged.

A batch in which an instance appears twice is cut into consecutive segments
without repeats (`segments`), applied in order, so later writes see earlier
ones. If a segment's statement fails because of one write's data (a duplicate
output id, a value PostgreSQL cannot store), nothing of it was stored; its
writes are then applied one statement each, so only the faulty write fails.

A write that reaches beyond its own instance (it inserts `children`, or wakes
a parent) is a segment of its own, sent as APPLY_REACHING_OUT: the same
statement plus an INSERT of the children and an UPDATE of the parent, both
conditioned on the guard having held. Still one statement, so still one
atomic unit: a duplicate child id fails the whole write and stores nothing.
Writes before it in the batch are applied before it and writes after it see
its children and its parent's wake-up. Such writes are rare (a child starting
or ending); every other write keeps the batched path unchanged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from attrs import evolve

from orch8.adapters.postgres.connection import (
    DATA_ERRORS,
    Connection,
    Database,
    retry_rollbacks,
    translate,
)
from orch8.adapters.postgres.new_tasks import NOTIFYING_RESULT, tasks_fragment
from orch8.adapters.sql.columns import INSTANCE, NODE, prefixed
from orch8.adapters.sql.prepared_writes import NODE_UPDATE, PreparedWrite, segments, stale
from orch8.adapters.sql.task_rows import WIDTH as TASK_WIDTH
from orch8.application.ports.storage import SnapshotWrite
from orch8.domain.instance import Instance, InstanceState

# The guarded update and the node and output rows of the instances whose guard held.
# COALESCE: a write without a context keeps the stored one (the column is NOT NULL).
_GUARDED = f"""
WITH w AS (
    SELECT * FROM unnest(
        $1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::jsonb[]
    ) AS w (id, expected_state, state, next_fire_at, updated_at, context)
), applied AS (
    UPDATE task_instances AS t
    SET state = w.state, next_fire_at = w.next_fire_at, updated_at = w.updated_at,
        context = COALESCE(w.context, t.context)
    FROM w
    WHERE t.id = w.id AND t.state = w.expected_state
    RETURNING t.id, t.tenant_id
), nodes AS (
    INSERT INTO execution_tree (instance_id, tenant_id, {NODE})
    SELECT n.instance_id, a.tenant_id, {prefixed(NODE, "n")}
    FROM unnest(
        $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[],
        $13::bigint[], $14::timestamptz[], $15::timestamptz[], $16::timestamptz[], $17::bytea[],
        $18::bigint[], $19::bigint[], $20::text[], $21::timestamptz[]
    ) WITH ORDINALITY AS n (instance_id, {NODE}, ordinality)
    JOIN applied AS a ON a.id = n.instance_id
    ORDER BY n.ordinality
    ON CONFLICT (instance_id, block_id) DO UPDATE SET {NODE_UPDATE}
), outputs AS (
    INSERT INTO block_outputs (
        tenant_id, id, instance_id, block_id, output, output_ref, output_size, attempt,
        created_at
    )
    SELECT a.tenant_id, o.id, o.instance_id, o.block_id, o.output, o.output_ref,
           o.output_size, o.attempt, o.created_at
    FROM unnest(
        $22::text[], $23::text[], $24::text[], $25::jsonb[], $26::text[], $27::bigint[],
        $28::bigint[], $29::timestamptz[]
    ) WITH ORDINALITY AS o (
        id, instance_id, block_id, output, output_ref, output_size, attempt, created_at,
        ordinality
    )
    JOIN applied AS a ON a.id = o.instance_id
    ORDER BY o.ordinality
), delivered AS (
    UPDATE signal_inbox AS s SET delivered_at = d.delivered_at
    FROM unnest($30::text[], $31::text[], $32::timestamptz[]) AS d (id, instance_id, delivered_at)
    JOIN applied AS a ON a.id = d.instance_id
    WHERE s.id = d.id AND s.instance_id = d.instance_id AND s.delivered_at IS NULL
)"""  # noqa: S608 - constant columns
# For one write (`w` has one row): its children, and the parent it wakes, both
# only if its guard held. The parent is made due now ($50, the write's updated_at)
# unless it was due earlier; LEAST skips a NULL fire time, which counts as "now".
_CHILDREN_AND_PARENT = f""", children AS (
    INSERT INTO task_instances ({INSTANCE})
    SELECT {INSTANCE}
    FROM unnest(
        $33::text[], $34::text[], $35::text[], $36::text[], $37::text[], $38::timestamptz[],
        $39::smallint[], $40::text[], $41::jsonb[], $42::jsonb[], $43::text[], $44::bigint[],
        $45::text[], $46::text[], $47::timestamptz[], $48::timestamptz[]
    ) WITH ORDINALITY AS c ({INSTANCE}, ordinality)
    WHERE EXISTS (SELECT 1 FROM applied)
    ORDER BY c.ordinality
), woken AS (
    UPDATE task_instances
    SET state = 'scheduled', next_fire_at = LEAST(next_fire_at, $50::timestamptz),
        updated_at = $50::timestamptz
    WHERE id = $49::text AND state IN ('waiting', 'scheduled')
      AND EXISTS (SELECT 1 FROM applied)
)"""  # noqa: S608 - constant columns
_RESULT = """
SELECT id FROM applied
"""
# Constant fragments only; every value is a bound parameter.
APPLY = _GUARDED + _RESULT
APPLY_REACHING_OUT = _GUARDED + _CHILDREN_AND_PARENT + _RESULT
# The same, plus the new worker tasks of the writes whose guard held (and their NOTIFY).
_WITH_TASKS = {
    APPLY: _GUARDED + tasks_fragment(33) + NOTIFYING_RESULT,
    APPLY_REACHING_OUT: _GUARDED + _CHILDREN_AND_PARENT + tasks_fragment(51) + NOTIFYING_RESULT,
}
WAKEABLE = (InstanceState.WAITING, InstanceState.SCHEDULED)

Outcome = BaseException | None


def _earliest(fire: datetime | None, now: datetime) -> datetime:
    return now if fire is None or fire > now else fire


def _woken(child: Instance, now: datetime) -> Instance:
    if child.state not in WAKEABLE:
        return child
    fire = _earliest(child.next_fire_at, now)
    return evolve(child, state=InstanceState.SCHEDULED, next_fire_at=fire, updated_at=now)


def wake_within(write: SnapshotWrite) -> SnapshotWrite:
    """`write` with a wake-up of its own instance, or of one of its own children,
    applied to the rows it writes: one statement cannot update a row it also
    updates or inserts, and the result is the same as waking after the write."""
    parent, now = write.wake_parent, write.updated_at
    if parent is None:
        return write
    if parent == write.instance_id:
        if write.state in WAKEABLE:
            write = evolve(
                write,
                state=InstanceState.SCHEDULED,
                next_fire_at=_earliest(write.next_fire_at, now),
            )
        return evolve(write, wake_parent=None)
    if any(child.id == parent for child in write.children):
        children = tuple(_woken(c, now) if c.id == parent else c for c in write.children)
        return evolve(write, children=children, wake_parent=None)
    return write


def _arrays(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


def statement_args(segment: list[PreparedWrite]) -> list[list[Any]]:
    """APPLY's 32 array parameters for a segment (instances, nodes, outputs, signals)."""
    # Sorted by instance id: concurrent statements then lock rows in one order.
    ordered = sorted(segment, key=lambda w: w.instance_id)
    return [
        *_arrays([w.guard for w in ordered], 6),
        *_arrays([(w.instance_id, *n) for w in ordered for n in w.nodes], 15),
        *_arrays([o for w in ordered for o in w.outputs], 8),
        *_arrays([d for w in ordered for d in w.delivered], 3),
    ]


def reaching_out_args(write: PreparedWrite) -> list[Any]:
    """APPLY_REACHING_OUT's 50 parameters: APPLY's, the children, the parent to wake."""
    parent, now = write.wake_parent or (None, None)
    return [*statement_args([write]), *_arrays(write.children, 16), parent, now]


async def _apply(conn: Connection, segment: list[PreparedWrite]) -> list[Outcome]:
    if len(segment) == 1 and segment[0].alone:
        sql, args = APPLY_REACHING_OUT, reaching_out_args(segment[0])
    else:
        sql, args = APPLY, statement_args(segment)
    tasks = [t for w in segment for t in w.tasks]
    if tasks:
        sql, args = _WITH_TASKS[sql], [*args, *_arrays(tasks, TASK_WIDTH)]
    rows = await retry_rollbacks(lambda: conn.fetch(sql, *args))
    applied = {row[0] for row in rows}
    return [None if w.instance_id in applied else stale(w) for w in segment]


def _conflict(write: PreparedWrite) -> str:
    return f"snapshot write for {write.instance_id} conflicts"


async def apply_batch(db: Database, writes: list[PreparedWrite]) -> list[Outcome]:
    """Apply `writes` in order; one outcome each (None, or that write's own failure)."""

    async def run(conn: Connection) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for segment in segments(writes):
            try:
                outcomes += await _apply(conn, segment)
            except DATA_ERRORS as exc:
                if len(segment) == 1:  # nothing to isolate: the write's own failure
                    outcomes.append(translate(exc, _conflict(segment[0])))
                    continue
                for write in segment:
                    try:
                        outcomes += await _apply(conn, [write])
                    except DATA_ERRORS as exc:
                        outcomes.append(translate(exc, _conflict(write)))
        return outcomes

    return await db.with_connection(run)
