"""How snapshot writes are applied: the guard, batching, and failure isolation.

A batch of writes to distinct instances is ONE statement (so one round trip
and one transaction): a data-modifying CTE that runs the guarded UPDATE of
every instance (`WHERE id = w.id AND state = w.expected_state`) and inserts
the nodes and outputs of exactly the instances whose guard held, joined on the
UPDATE's RETURNING rows. An instance whose guard fails gets no row back, so
nothing of its write is stored, and its caller gets StaleWrite.

A batch in which an instance appears twice is cut into consecutive segments
without repeats (`segments`), applied in order, so later writes see earlier
ones. If a segment's statement fails because of one write's data (a duplicate
output id, a value PostgreSQL cannot store), nothing of it was stored; its
writes are then applied one statement each, so only the faulty write fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from attrs import frozen

from orch8.adapters.postgres.connection import (
    DATA_ERRORS,
    Connection,
    Database,
    retry_rollbacks,
    translate,
)
from orch8.adapters.postgres.rows import (
    aware,
    aware_or_none,
    dump_context,
    node_params,
    output_params,
)
from orch8.application.errors import StaleWrite
from orch8.application.ports.storage import SnapshotWrite

# COALESCE: a write without a context keeps the stored one (the column is NOT NULL).
APPLY = """
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
    INSERT INTO execution_tree (
        instance_id, tenant_id, block_id, block_type, state, parent_id, branch_index,
        attempts, not_before, started_at, completed_at, error
    )
    SELECT n.instance_id, a.tenant_id, n.block_id, n.block_type, n.state, n.parent_id,
           n.branch_index, n.attempts, n.not_before, n.started_at, n.completed_at, n.error
    FROM unnest(
        $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::bigint[],
        $13::bigint[], $14::timestamptz[], $15::timestamptz[], $16::timestamptz[], $17::bytea[]
    ) WITH ORDINALITY AS n (
        instance_id, block_id, block_type, state, parent_id, branch_index,
        attempts, not_before, started_at, completed_at, error, ordinality
    )
    JOIN applied AS a ON a.id = n.instance_id
    ORDER BY n.ordinality
    ON CONFLICT (instance_id, block_id) DO UPDATE SET
        block_type = excluded.block_type, state = excluded.state,
        parent_id = excluded.parent_id, branch_index = excluded.branch_index,
        attempts = excluded.attempts, not_before = excluded.not_before,
        started_at = excluded.started_at, completed_at = excluded.completed_at,
        error = excluded.error
), outputs AS (
    INSERT INTO block_outputs (
        tenant_id, id, instance_id, block_id, output, output_ref, output_size, attempt,
        created_at
    )
    SELECT a.tenant_id, o.id, o.instance_id, o.block_id, o.output, o.output_ref,
           o.output_size, o.attempt, o.created_at
    FROM unnest(
        $18::text[], $19::text[], $20::text[], $21::jsonb[], $22::text[], $23::bigint[],
        $24::bigint[], $25::timestamptz[]
    ) WITH ORDINALITY AS o (
        id, instance_id, block_id, output, output_ref, output_size, attempt, created_at,
        ordinality
    )
    JOIN applied AS a ON a.id = o.instance_id
    ORDER BY o.ordinality
)
SELECT id FROM applied
"""

Outcome = BaseException | None


@frozen
class PreparedWrite:
    """A SnapshotWrite turned into statement parameters. Encoding happens in the
    caller, so its errors reach that caller and never the shared batch."""

    instance_id: str
    expected_state: str
    instance: tuple[Any, ...]  # id, expected_state, state, next_fire_at, updated_at, context
    nodes: list[tuple[Any, ...]]  # instance_id + NODE_COLUMNS
    outputs: list[tuple[Any, ...]]  # OUTPUT_COLUMNS


def prepare(write: SnapshotWrite) -> PreparedWrite:
    for out in write.outputs:
        if out.instance_id != write.instance_id:
            raise ValueError(
                f"output {out.id} belongs to instance {out.instance_id}, "
                f"not to the written instance {write.instance_id}"
            )
    # A block written twice in one write: the last version wins, in the place of the
    # first (one INSERT ... ON CONFLICT cannot touch a row twice).
    nodes = {node.block_id: node for node in write.nodes}
    return PreparedWrite(
        instance_id=write.instance_id,
        expected_state=write.expected_state.value,
        instance=(
            write.instance_id,
            write.expected_state.value,
            write.state.value,
            aware_or_none(write.next_fire_at),
            aware(write.updated_at),
            None if write.context is None else dump_context(write.context),
        ),
        nodes=[(write.instance_id, *node_params(n)) for n in nodes.values()],
        outputs=[output_params(o) for o in write.outputs],
    )


def _stale(write: PreparedWrite) -> StaleWrite:
    return StaleWrite(f"instance {write.instance_id} is no longer {write.expected_state}")


def segments(writes: list[PreparedWrite]) -> Iterator[list[PreparedWrite]]:
    """Consecutive runs of `writes` in which no instance appears twice."""
    current: list[PreparedWrite] = []
    seen: set[str] = set()
    for write in writes:
        if write.instance_id in seen:
            yield current
            current, seen = [], set()
        current.append(write)
        seen.add(write.instance_id)
    if current:
        yield current


def _arrays(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


def statement_args(segment: list[PreparedWrite]) -> list[list[Any]]:
    """APPLY's 25 array parameters for a segment (instances, nodes, outputs)."""
    # Sorted by instance id: concurrent statements then lock rows in one order.
    ordered = sorted(segment, key=lambda w: w.instance_id)
    return [
        *_arrays([w.instance for w in ordered], 6),
        *_arrays([n for w in ordered for n in w.nodes], 11),
        *_arrays([o for w in ordered for o in w.outputs], 8),
    ]


async def _apply(conn: Connection, segment: list[PreparedWrite]) -> list[Outcome]:
    args = statement_args(segment)
    rows = await retry_rollbacks(lambda: conn.fetch(APPLY, *args))
    applied = {row[0] for row in rows}
    return [None if w.instance_id in applied else _stale(w) for w in segment]


def _conflict(write: PreparedWrite) -> str:
    return f"snapshot write for {write.instance_id} conflicts"


async def apply_batch(db: Database, writes: list[PreparedWrite]) -> list[Outcome]:
    """Apply `writes` in order; one outcome each (None, or that write's own failure)."""

    async def run(conn: Connection) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for segment in segments(writes):
            try:
                outcomes += await _apply(conn, segment)
            except DATA_ERRORS:
                for write in segment:
                    try:
                        outcomes += await _apply(conn, [write])
                    except DATA_ERRORS as exc:
                        outcomes.append(translate(exc, _conflict(write)))
        return outcomes

    return await db.with_connection(run)
