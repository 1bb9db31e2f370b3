"""The claim in PostgreSQL: due instances in claim order, concurrency caps applied.

The common case is one statement (CLAIM), the reason many orch8 processes can
share one database: it selects the due rows in claim order with `FOR UPDATE
SKIP LOCKED` (rows another claimer holds are passed over, not waited for, and
a row that stopped being scheduled while we looked is dropped) and marks the
ones without a `concurrency_key` running. The partial index `idx_task_instances_due` has the
ORDER BY's exact shape, so the scan reads due rows in order and stops at
`limit`. Ties in (priority, next_fire_at) go to the older row (insert_order),
as they do in the other adapters.

Candidates with a `concurrency_key` come back unclaimed and are taken in a
second, short transaction (`take_capped`): it holds one
transaction-scoped advisory lock per key (taken in hash order, so two claimers
never wait on each other crosswise), re-reads the candidates that are still
due (`FOR UPDATE SKIP LOCKED`), counts the running instances of each key, and
claims in claim order, each counted against its key, a capped one only while
its key has room (`max_concurrency`); the rest stay scheduled,
CAP_DEFERRAL later. Every claimer of a key counts under that key's lock and
commits before releasing it, so the count a claimer sees includes every claim
made before it: two claimers never exceed a cap together. Instances without a
key never pay for any of this.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from datetime import datetime

from attrs import evolve

from orch8.adapters.postgres.connection import Connection, Database, Record
from orch8.adapters.postgres.rows import ROWS, aware
from orch8.adapters.sql.columns import INSTANCE, prefixed
from orch8.application.ports.storage import CAP_DEFERRAL, EARLIEST_FIRE
from orch8.domain.instance import Instance, InstanceState

# The literal 'scheduled' (not a parameter) is what lets the planner use the
# partial index in a generic (prepared) plan. Each due row comes back once: a
# claimed one with its columns, a keyed one with NULLs there and its id and key
# in the last columns.
CLAIM = f"""
WITH due AS (
    SELECT id, priority, next_fire_at, insert_order, concurrency_key
    FROM task_instances
    WHERE state = 'scheduled' AND (next_fire_at IS NULL OR next_fire_at <= $1)
    ORDER BY priority DESC, next_fire_at ASC NULLS FIRST, insert_order ASC
    LIMIT $2
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE task_instances AS t SET state = 'running', updated_at = $1
    FROM due WHERE t.id = due.id AND due.concurrency_key IS NULL
    RETURNING t.*
)
SELECT {prefixed(INSTANCE, "c")},
       due.insert_order, due.id AS due_id, due.concurrency_key AS due_key
FROM due LEFT JOIN claimed AS c ON c.id = due.id
ORDER BY due.priority DESC, due.next_fire_at ASC NULLS FIRST, due.insert_order ASC
"""  # noqa: S608 - constant columns
# One advisory lock per distinct key, in hash order (the subquery's ORDER BY).
LOCK_KEYS = """
SELECT pg_advisory_xact_lock(keys.h)
FROM (SELECT DISTINCT hashtextextended(k, 0) AS h FROM unnest($1::text[]) AS k ORDER BY h) AS keys
"""
CAPPED_CANDIDATES = f"""
SELECT {INSTANCE}, insert_order FROM task_instances
WHERE id = ANY($1::text[]) AND state = 'scheduled'
  AND (next_fire_at IS NULL OR next_fire_at <= $2)
ORDER BY priority DESC, next_fire_at ASC NULLS FIRST, insert_order ASC
FOR UPDATE SKIP LOCKED
"""  # noqa: S608 - constant columns
RUNNING_PER_KEY = """
SELECT concurrency_key, count(*) FROM task_instances
WHERE state = 'running' AND concurrency_key IS NOT NULL AND concurrency_key = ANY($1::text[])
GROUP BY concurrency_key
"""
MARK_RUNNING = """
UPDATE task_instances SET state = 'running', updated_at = $1 WHERE id = ANY($2::text[])
"""
DEFER = "UPDATE task_instances SET next_fire_at = $1 WHERE id = ANY($2::text[])"

Claimed = tuple[int, Instance]  # (insert_order, the instance), for the final ordering


def _running(inst: Instance, now: datetime) -> Instance:
    return evolve(inst, state=InstanceState.RUNNING, updated_at=now)


async def claim_due(db: Database, now: datetime, limit: int) -> list[Instance]:
    rows = await db.fetch(CLAIM, aware(now), limit)
    claimed: list[Claimed] = [
        (int(row["insert_order"]), ROWS.instance_from_row(row))
        for row in rows
        if row["id"] is not None
    ]
    keyed = [row for row in rows if row["id"] is None]
    if keyed:
        ids = [str(row["due_id"]) for row in keyed]
        keys = sorted({str(row["due_key"]) for row in keyed})

        async def take(conn: Connection) -> list[Claimed]:
            return await take_capped(conn, ids, keys, now)

        claimed += await db.transaction(take)
        claimed.sort(key=lambda c: _claim_order(c[1], c[0]))
    return [inst for _, inst in claimed]


def _claim_order(inst: Instance, insert_order: int) -> tuple[int, bool, datetime, int]:
    fire = inst.next_fire_at
    return (-int(inst.priority), fire is not None, fire or EARLIEST_FIRE, insert_order)


async def take_capped(
    conn: Connection, ids: Seq[str], keys: Seq[str], now: datetime
) -> list[Claimed]:
    """Inside one transaction: claim the keyed candidates whose key has room."""
    await conn.execute(LOCK_KEYS, list(keys))
    rows: list[Record] = list(await conn.fetch(CAPPED_CANDIDATES, list(ids), aware(now)))
    if not rows:
        return []
    running = {str(k): int(n) for k, n in await conn.fetch(RUNNING_PER_KEY, list(keys))}
    taken: list[Claimed] = []
    held: list[str] = []
    for row in rows:
        inst = ROWS.instance_from_row(row)
        key, cap = inst.concurrency_key, inst.max_concurrency
        if key is not None:
            if cap is not None and running.get(key, 0) >= cap:
                held.append(inst.id)
                continue
            running[key] = running.get(key, 0) + 1
        taken.append((int(row["insert_order"]), _running(inst, now)))
    if taken:
        await conn.execute(MARK_RUNNING, aware(now), [inst.id for _, inst in taken])
    if held:
        await conn.execute(DEFER, aware(now + CAP_DEFERRAL), held)
    return taken
