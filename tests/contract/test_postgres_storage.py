"""What only the PostgreSQL adapter promises: its schema and migrations (also under
concurrent migrators), the claim's query plan, several pools on one database,
group-commit isolation, driver-error translation and the pool's size."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime

import asyncpg
import pytest

from orch8.adapters.postgres import PostgresStorage
from orch8.adapters.postgres.claim import CLAIM
from orch8.adapters.postgres.connection import retry_rollbacks
from orch8.adapters.postgres.instances import WAKE_PARENTS
from orch8.adapters.postgres.migrate import available_migrations
from orch8.adapters.postgres.outputs import LATEST
from orch8.application.errors import Conflict, StaleWrite, UnstorableValue
from orch8.bootstrap.storage import build_storage
from orch8.domain.instance import Instance, InstanceState, Priority
from orch8.domain.tree import Node, NodeState
from tests.contract.builders import (
    at,
    make_context,
    make_instance,
    make_node,
    make_output,
    make_sequence,
    make_write,
)
from tests.pg_server import fresh_schema

S = InstanceState

# Every object orch8 owns in its schema, with the schema's own name taken out.
CATALOG = """
SELECT 'column', table_name || '.' || column_name,
       data_type || ' ' || is_nullable || ' ' || coalesce(collation_name, '')
       || ' ' || coalesce(column_default, '') || ' ' || is_identity
FROM information_schema.columns WHERE table_schema = current_schema()
UNION ALL
SELECT 'index', indexname, replace(indexdef, current_schema() || '.', '')
FROM pg_indexes WHERE schemaname = current_schema()
UNION ALL
SELECT 'constraint', conrelid::regclass::text || '.' || conname, pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = current_schema()::regnamespace
ORDER BY 1, 2
"""


async def _fetch(url: str, sql: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def _catalog(url: str) -> list[tuple[object, ...]]:
    return [tuple(row) for row in await _fetch(url, CATALOG)]


@pytest.fixture
async def pg(postgres_schema_url: str) -> AsyncIterator[PostgresStorage]:
    store = PostgresStorage(postgres_schema_url)
    await store.migrate()
    yield store
    await store.close()


async def _scheduled(store: PostgresStorage, count: int, now: datetime) -> list[Instance]:
    seq = make_sequence()
    await store.sequences.create(seq)
    insts = [make_instance(seq, next_fire_at=now) for _ in range(count)]
    await store.instances.create(insts)
    return insts


async def test_migrate_is_idempotent_and_records_every_version(postgres_url: str) -> None:
    async with fresh_schema(postgres_url) as once, fresh_schema(postgres_url) as twice:
        for url, runs in ((once, 1), (twice, 2)):
            store = PostgresStorage(url)
            for _ in range(runs):
                await store.migrate()
            await store.close()
        assert await _catalog(once) == await _catalog(twice)
        expected = [m.version for m in available_migrations()]
        assert expected[0] == 1
        rows = await _fetch(twice, "SELECT version FROM schema_migrations ORDER BY version")
        assert [r[0] for r in rows] == expected


async def test_fresh_schema_equals_one_migrated_step_by_step(postgres_url: str) -> None:
    async with fresh_schema(postgres_url) as fresh, fresh_schema(postgres_url) as stepped:
        store = PostgresStorage(fresh)
        await store.migrate()
        await store.close()
        for migration in available_migrations():
            store = PostgresStorage(stepped)
            await store.migrate(target=migration.version)
            await store.close()
        assert await _catalog(fresh) == await _catalog(stepped)
        assert ("index", "idx_task_instances_due") in [row[:2] for row in await _catalog(fresh)]


async def test_concurrent_migrators_apply_each_version_once(postgres_schema_url: str) -> None:
    stores = [PostgresStorage(postgres_schema_url, max_connections=2) for _ in range(6)]
    await asyncio.gather(*(s.migrate() for s in stores))
    for store in stores:
        await store.close()
    rows = await _fetch(postgres_schema_url, "SELECT version FROM schema_migrations")
    assert sorted(r[0] for r in rows) == [m.version for m in available_migrations()]


async def test_migrate_refuses_a_database_from_a_newer_release(
    pg: PostgresStorage, postgres_schema_url: str
) -> None:
    await _fetch(
        postgres_schema_url, "INSERT INTO schema_migrations (version, name) VALUES (9999, 'x')"
    )
    with pytest.raises(RuntimeError, match="newer"):
        await pg.migrate()


async def test_tables_live_in_the_schema_the_url_names(
    pg: PostgresStorage, postgres_schema_url: str
) -> None:
    await pg.ping()
    url = postgres_schema_url
    tables = {
        r[0]
        for r in await _fetch(
            url, "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        )
    }
    assert {"sequences", "task_instances", "execution_tree", "block_outputs"} <= tables
    public = await _fetch(url, "SELECT 1 FROM pg_tables WHERE schemaname = 'public'")
    assert public == []


@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
async def test_claim_is_an_index_scan_of_the_due_index(
    pg: PostgresStorage, postgres_schema_url: str, plan_cache_mode: str
) -> None:
    seq = make_sequence()
    await pg.sequences.create(seq)
    states = list(InstanceState)
    await pg.instances.create(
        [
            make_instance(
                seq,
                state=states[n % len(states)],
                priority=Priority(n % 4),
                next_fire_at=at(n % 600 - 300),
            )
            for n in range(3000)
        ]
    )
    conn = await asyncpg.connect(postgres_schema_url)
    try:
        await conn.execute("ANALYZE")
        await conn.execute(f"SET plan_cache_mode = {plan_cache_mode}")
        async with conn.transaction():
            await conn.execute(f"PREPARE claim(timestamptz, bigint) AS {CLAIM}")
            now = at(0).isoformat()
            rows = await conn.fetch(f"EXPLAIN (COSTS OFF) EXECUTE claim('{now}', 32)")
            await conn.execute("DEALLOCATE claim")
    finally:
        await conn.close()
    plan = [r[0].strip() for r in rows]
    scan = next(i for i, line in enumerate(plan) if "idx_task_instances_due" in line)
    assert plan[scan].startswith("->  Index Scan using idx_task_instances_due"), plan
    # Limit -> LockRows -> the index scan: due rows arrive in claim order, unsorted.
    assert plan[scan - 1] == "->  LockRows", plan
    assert plan[scan - 2] == "->  Limit", plan


async def test_nodes_written_before_version_2_load_with_default_composite_fields(
    postgres_schema_url: str,
) -> None:
    store = PostgresStorage(postgres_schema_url)
    await store.migrate(target=1)
    [inst] = await _scheduled(store, 1, at(0))
    await _fetch(
        postgres_schema_url,
        "INSERT INTO execution_tree (instance_id, tenant_id, block_id, block_type, state, "
        "attempts) VALUES ($1, $2, 'greet', 'step', 'completed', 1)",
        inst.id,
        inst.tenant_id,
    )
    await store.migrate()
    loaded = await store.snapshots.load(inst.id)
    await store.close()
    assert loaded is not None
    assert loaded[1] == [Node("greet", "step", state=NodeState.COMPLETED, attempts=1)]


async def _explain(url: str, plan_cache_mode: str, prepare: str, execute: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("ANALYZE")
        await conn.execute(f"SET plan_cache_mode = {plan_cache_mode}")
        async with conn.transaction():
            await conn.execute(prepare)
            rows = await conn.fetch(f"EXPLAIN (COSTS OFF) {execute}")
            await conn.execute("DEALLOCATE q")
    finally:
        await conn.close()
    return [r[0].strip() for r in rows]


@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
async def test_latest_output_is_one_index_seek_per_block(
    pg: PostgresStorage, postgres_schema_url: str, plan_cache_mode: str
) -> None:
    insts = await _scheduled(pg, 40, at(0))
    await asyncio.gather(
        *(
            pg.snapshots.commit(
                make_write(
                    inst,
                    expected_state=S.SCHEDULED,
                    state=S.SCHEDULED,
                    outputs=tuple(
                        make_output(inst.id, f"b{k % 6}", created_at=at(k)) for k in range(30)
                    ),
                )
            )
            for inst in insts
        )
    )
    plan = await _explain(
        postgres_schema_url,
        plan_cache_mode,
        f"PREPARE q(text, text[]) AS {LATEST}",
        f"EXECUTE q('{insts[0].id}', ARRAY['b1', 'b2'])",
    )
    assert any(line.startswith("->  Index Scan using idx_block_outputs_latest") for line in plan)
    assert not any("Sort" in line or "Seq Scan" in line for line in plan), plan


@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
async def test_wake_sweep_reads_waiting_nodes_through_their_index(
    pg: PostgresStorage, postgres_schema_url: str, plan_cache_mode: str
) -> None:
    """Many instances wait (for a delay, a signal), few of them for a child: the
    sweep starts from the few nodes in the partial index, not from waiting instances."""
    seq = make_sequence()
    await pg.sequences.create(seq)
    insts = [make_instance(seq, state=S.WAITING if n % 2 else S.RUNNING) for n in range(600)]
    await pg.instances.create(insts)
    await asyncio.gather(
        *(
            pg.snapshots.commit(
                make_write(
                    inst,
                    expected_state=inst.state,
                    state=inst.state,
                    nodes=tuple(
                        make_node(
                            f"b{k}",
                            state=NodeState.WAITING if n % 50 == k == 0 else NodeState.COMPLETED,
                            ref=insts[(n + k + 1) % len(insts)].id,
                        )
                        for k in range(4)
                    ),
                )
            )
            for n, inst in enumerate(insts)
        )
    )
    plan = await _explain(
        postgres_schema_url,
        plan_cache_mode,
        f"PREPARE q(timestamptz) AS {WAKE_PARENTS}",
        f"EXECUTE q('{at(0).isoformat()}')",
    )
    assert any("Index Scan using idx_execution_tree_waiting_ref" in line for line in plan), plan
    assert not any("Seq Scan" in line for line in plan), plan


async def test_values_postgresql_cannot_hold_are_unstorable(pg: PostgresStorage) -> None:
    seq = make_sequence()
    await pg.sequences.create(seq)
    refused = make_instance(seq, context=make_context(text="nul \x00 inside"))
    with pytest.raises(UnstorableValue, match="PostgreSQL cannot store this value"):
        await pg.instances.create([refused])
    inst = make_instance(seq, next_fire_at=at(0))
    await pg.instances.create([inst])
    with pytest.raises(UnstorableValue, match="surrogates not allowed"):
        await pg.instances.replace_context(inst.id, make_context(text="\ud800"), at(1))
    assert await pg.instances.get(refused.id) is None
    assert await pg.instances.get(inst.id) == inst


async def test_naive_datetimes_are_refused(pg: PostgresStorage) -> None:
    with pytest.raises(ValueError, match="naive"):
        await pg.instances.claim_due(datetime(2026, 1, 1), 1)


async def test_duplicate_idempotency_key_conflicts(pg: PostgresStorage) -> None:
    seq = make_sequence()
    await pg.sequences.create(seq)
    await pg.instances.create([make_instance(seq, idempotency_key="k")])
    await pg.instances.create([make_instance(seq, idempotency_key="k", tenant_id="globex")])
    with pytest.raises(Conflict):
        await pg.instances.create([make_instance(seq, idempotency_key="k")])


async def test_instance_of_unknown_sequence_conflicts(pg: PostgresStorage) -> None:
    with pytest.raises(Conflict):
        await pg.instances.create([make_instance(make_sequence())])


async def test_two_pools_on_one_database_claim_disjoint_work(
    pg: PostgresStorage, postgres_schema_url: str
) -> None:
    other = PostgresStorage(postgres_schema_url, max_connections=4)
    insts = await _scheduled(pg, 120, at(0))
    batches = await asyncio.gather(
        *(store.instances.claim_due(at(0), 9) for _ in range(8) for store in (pg, other))
    )
    await other.close()
    ids = [i.id for batch in batches for i in batch]
    assert len(ids) == len(set(ids)) == len(insts)


async def test_a_recovered_instance_rejects_its_stalled_owner(
    pg: PostgresStorage, postgres_schema_url: str
) -> None:
    other = PostgresStorage(postgres_schema_url, max_connections=2)
    [inst] = await _scheduled(pg, 1, at(0))
    [mine] = await pg.instances.claim_due(at(0), 1)
    assert await other.instances.recover_stale(at(100), at(100)) == 1
    [theirs] = await other.instances.claim_due(at(100), 1)
    assert theirs.id == mine.id == inst.id
    await other.snapshots.commit(make_write(theirs, state=S.WAITING, updated_at=at(101)))
    with pytest.raises(StaleWrite):
        await pg.snapshots.commit(
            make_write(mine, state=S.COMPLETED, outputs=(make_output(inst.id),))
        )
    await other.close()
    found = await pg.instances.get(inst.id)
    assert found is not None
    assert (found.state, found.updated_at) == (S.WAITING, at(101))
    assert await pg.outputs.list_for_instance(inst.id) == []


async def test_a_failing_write_in_a_group_leaves_the_others_applied(pg: PostgresStorage) -> None:
    seq = make_sequence()
    await pg.sequences.create(seq)
    insts = [make_instance(seq, state=S.RUNNING) for _ in range(4)]
    await pg.instances.create(insts)
    taken = make_output(insts[0].id, id="out-taken")
    await pg.snapshots.commit(make_write(insts[0], state=S.RUNNING, outputs=(taken,)))
    dup = make_output(insts[1].id, id="out-taken")
    unstorable = make_context(text="nul \x00 inside")
    results = await asyncio.gather(
        pg.snapshots.commit(make_write(insts[1], outputs=(make_output(insts[1].id), dup))),
        pg.snapshots.commit(make_write(insts[2], outputs=(make_output(insts[2].id),))),
        pg.snapshots.commit(make_write(insts[0], expected_state=S.WAITING)),
        pg.snapshots.commit(make_write(insts[3], context=unstorable)),
        return_exceptions=True,
    )
    assert isinstance(results[0], Conflict)
    assert results[1] is None
    assert isinstance(results[2], StaleWrite)
    assert isinstance(results[3], UnstorableValue)
    for failed in (insts[1], insts[3]):
        assert await pg.snapshots.load(failed.id) == (failed, [])
        assert await pg.outputs.list_for_instance(failed.id) == []
    done = await pg.instances.get(insts[2].id)
    assert done is not None
    assert done.state is S.COMPLETED


async def test_node_errors_keep_any_text(pg: PostgresStorage) -> None:
    [inst] = await _scheduled(pg, 1, at(0))
    node = make_node("greet", state=NodeState.FAILED, error="bad byte \x00 and \u2603")
    await pg.snapshots.commit(make_write(inst, expected_state=S.SCHEDULED, nodes=(node,)))
    loaded = await pg.snapshots.load(inst.id)
    assert loaded is not None
    assert loaded[1] == [node]


async def test_output_of_another_instance_is_refused(pg: PostgresStorage) -> None:
    [inst] = await _scheduled(pg, 1, at(0))
    with pytest.raises(ValueError, match="belongs to instance"):
        await pg.snapshots.commit(
            make_write(inst, expected_state=S.SCHEDULED, outputs=(make_output("elsewhere"),))
        )


async def test_a_cancelled_committer_does_not_break_the_storage(pg: PostgresStorage) -> None:
    insts = await _scheduled(pg, 20, at(0))
    tasks = [
        asyncio.create_task(
            pg.snapshots.commit(make_write(i, expected_state=S.SCHEDULED, state=S.WAITING))
        )
        for i in insts
    ]
    await asyncio.sleep(0)
    for task in tasks[::2]:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await pg._snapshots.drain()
    assert await pg.instances.claim_due(at(0), 100) == []  # every write landed
    states = {(await pg.instances.get(i.id)).state for i in insts}  # type: ignore[union-attr]
    assert states == {S.WAITING}


async def test_close_waits_for_queued_commits(postgres_schema_url: str) -> None:
    store = PostgresStorage(postgres_schema_url)
    await store.migrate()
    insts = await _scheduled(store, 50, at(0))
    pending = [
        asyncio.create_task(
            store.snapshots.commit(make_write(i, expected_state=S.SCHEDULED, state=S.WAITING))
        )
        for i in insts
    ]
    await asyncio.sleep(0)
    await store.close()
    await asyncio.gather(*pending)
    rows = await _fetch(postgres_schema_url, "SELECT DISTINCT state FROM task_instances")
    assert [r[0] for r in rows] == ["waiting"]


async def test_closed_storage_refuses_work(postgres_schema_url: str) -> None:
    store = PostgresStorage(postgres_schema_url)
    await store.migrate()
    await store.close()
    with pytest.raises(RuntimeError, match="closed"):
        await store.ping()


async def test_the_pool_holds_at_most_max_connections(postgres_schema_url: str) -> None:
    tag = "orch8-pool-size-test"
    store = PostgresStorage(f"{postgres_schema_url}&application_name={tag}", max_connections=3)
    seen: list[int] = []

    async def count() -> None:
        rows = await store._db.fetch(
            "SELECT (SELECT count(*) FROM pg_stat_activity WHERE application_name = $1) "
            "FROM pg_sleep(0.02)",
            tag,
        )
        seen.append(rows[0][0])

    await asyncio.gather(*(count() for _ in range(20)))
    await store.close()
    assert max(seen) == 3


async def test_deadlock_victims_are_run_again() -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise asyncpg.DeadlockDetectedError("deadlock detected")
        return "done"

    assert await retry_rollbacks(flaky) == "done"
    assert calls == 3


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "PostgreSQL"])
async def test_postgres_urls_select_this_adapter(scheme: str) -> None:
    store = build_storage(f"{scheme}://orch8:secret@db.invalid:5432/orch8", max_connections=7)
    assert isinstance(store, PostgresStorage)
    await store.close()  # never connected: nothing to do


async def test_two_pools_never_exceed_a_concurrency_cap(
    pg: PostgresStorage, postgres_schema_url: str
) -> None:
    other = PostgresStorage(postgres_schema_url, max_connections=4)
    seq = make_sequence()
    await pg.sequences.create(seq)
    capped = [
        make_instance(seq, next_fire_at=at(0), concurrency_key=f"k{n % 3}", max_concurrency=2)
        for n in range(60)
    ]
    await pg.instances.create(capped)
    taken = 0
    try:
        for round_ in range(6):
            now = at(10 * (round_ + 1))
            batches = await asyncio.gather(
                *(store.instances.claim_due(now, 5) for _ in range(6) for store in (pg, other))
            )
            claimed = [i for batch in batches for i in batch]
            assert len(claimed) == len({i.id for i in claimed}), round_
            for key in ("k0", "k1", "k2"):
                assert sum(i.concurrency_key == key for i in claimed) <= 2, (round_, key)
            taken += len(claimed)
            for inst in claimed:
                await pg.instances.update_state(inst.id, S.RUNNING, S.COMPLETED, None, now)
    finally:
        await other.close()
    assert taken >= 12  # the caps let work through, two per key at a time
