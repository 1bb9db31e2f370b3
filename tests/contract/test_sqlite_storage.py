"""What only the SQLite adapter promises: its schema, migrations, query plans,
pragmas, several connections on one file, and group-commit isolation."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from datetime import datetime
from pathlib import Path

import pytest

from orch8.adapters.sqlite import SqliteStorage
from orch8.adapters.sqlite.claim import CLAIM_SELECT, RUNNING_PER_KEY
from orch8.adapters.sqlite.instances import WAKE_PARENTS
from orch8.adapters.sqlite.migrate import available_migrations, split_statements
from orch8.adapters.sqlite.outputs import LATEST
from orch8.adapters.sqlite.signals import PENDING
from orch8.application.errors import Conflict, StaleWrite, UnstorableValue
from orch8.domain.instance import Instance, InstanceState
from orch8.domain.tree import Node, NodeState
from tests.contract.builders import (
    at,
    make_context,
    make_instance,
    make_output,
    make_sequence,
    make_write,
)

S = InstanceState
DB_NAME = "orch8.db"


def _query(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql, params).fetchall()


def _schema(path: Path) -> list[tuple[object, ...]]:
    return _query(path, "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[SqliteStorage]:
    store = SqliteStorage(str(tmp_path / DB_NAME))
    await store.migrate()
    yield store
    await store.close()


async def _scheduled(store: SqliteStorage, count: int, now: datetime) -> list[Instance]:
    seq = make_sequence()
    await store.sequences.create(seq)
    insts = [make_instance(seq, next_fire_at=now) for _ in range(count)]
    await store.instances.create(insts)
    return insts


async def test_migrate_is_idempotent_and_records_every_version(tmp_path: Path) -> None:
    once, twice = tmp_path / "once.db", tmp_path / "twice.db"
    for path, runs in ((once, 1), (twice, 2)):
        store = SqliteStorage(str(path))
        for _ in range(runs):
            await store.migrate()
        await store.close()
    assert _schema(once) == _schema(twice)
    expected = [m.version for m in available_migrations()]
    assert expected[0] == 1
    assert [v for (v,) in _query(twice, "SELECT version FROM schema_migrations")] == expected


async def test_fresh_schema_equals_one_migrated_step_by_step(tmp_path: Path) -> None:
    fresh, stepped = tmp_path / "fresh.db", tmp_path / "stepped.db"
    store = SqliteStorage(str(fresh))
    await store.migrate()
    await store.close()
    store = SqliteStorage(str(stepped))
    for migration in available_migrations():
        await store.migrate(target=migration.version)
        await store.close()
        store = SqliteStorage(str(stepped))
    await store.migrate()
    await store.close()
    assert _schema(fresh) == _schema(stepped)


async def test_migrate_refuses_a_database_from_a_newer_release(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    store = SqliteStorage(str(path))
    await store.migrate()
    await store.close()
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("INSERT INTO schema_migrations VALUES (9999, 0)")
    store = SqliteStorage(str(path))
    with pytest.raises(RuntimeError, match="newer"):
        await store.migrate()
    await store.close()


async def test_every_table_carries_tenant_and_namespace_where_due(
    sqlite: SqliteStorage, tmp_path: Path
) -> None:
    path = tmp_path / DB_NAME
    for table in ("sequences", "task_instances", "execution_tree", "block_outputs"):
        columns = {row[1] for row in _query(path, f"PRAGMA table_info({table})")}
        assert "tenant_id" in columns, table
    for table in ("sequences", "task_instances"):
        columns = {row[1] for row in _query(path, f"PRAGMA table_info({table})")}
        assert "namespace" in columns, table


async def test_database_is_in_wal_mode(sqlite: SqliteStorage, tmp_path: Path) -> None:
    await sqlite.ping()
    assert _query(tmp_path / DB_NAME, "PRAGMA journal_mode") == [("wal",)]


async def test_claim_query_uses_the_partial_index_without_sorting(
    sqlite: SqliteStorage, tmp_path: Path
) -> None:
    await sqlite.ping()
    plan = _query(tmp_path / DB_NAME, "EXPLAIN QUERY PLAN " + CLAIM_SELECT, (0, 10))
    details = " | ".join(str(row[3]) for row in plan)
    assert "idx_task_instances_due" in details
    assert "TEMP B-TREE" not in details


async def test_nodes_written_before_version_2_load_with_default_composite_fields(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.db"
    store = SqliteStorage(str(path))
    await store.migrate(target=1)
    [inst] = await _scheduled(store, 1, at(0))
    await store.close()
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "INSERT INTO execution_tree (instance_id, tenant_id, block_id, block_type, state, "
            "attempts) VALUES (?, ?, 'greet', 'step', 'completed', 1)",
            (inst.id, inst.tenant_id),
        )
    store = SqliteStorage(str(path))
    await store.migrate()
    loaded = await store.snapshots.load(inst.id)
    await store.close()
    assert loaded is not None
    assert loaded[1] == [Node("greet", "step", state=NodeState.COMPLETED, attempts=1)]


async def test_latest_output_is_one_index_seek_per_block(
    sqlite: SqliteStorage, tmp_path: Path
) -> None:
    await sqlite.ping()
    plan = _query(tmp_path / DB_NAME, "EXPLAIN QUERY PLAN " + LATEST, ("i", '["a", "b"]'))
    details = " | ".join(str(row[3]) for row in plan)
    assert "SEARCH block_outputs USING INDEX idx_block_outputs_latest" in details
    assert "SCAN block_outputs" not in details
    assert "TEMP B-TREE" not in details


async def test_wake_sweep_reads_only_waiting_nodes(sqlite: SqliteStorage, tmp_path: Path) -> None:
    await sqlite.ping()
    plan = _query(tmp_path / DB_NAME, "EXPLAIN QUERY PLAN " + WAKE_PARENTS, (0,))
    details = " | ".join(str(row[3]) for row in plan)
    assert "SEARCH node USING INDEX idx_execution_tree_waiting_ref" in details
    assert "SCAN" not in details  # every table is reached through an index


def test_rejects_unknown_synchronous_mode() -> None:
    with pytest.raises(ValueError, match="synchronous"):
        SqliteStorage("x.db", synchronous="SOMETIMES")


async def test_text_the_driver_cannot_encode_is_unstorable(sqlite: SqliteStorage) -> None:
    [inst] = await _scheduled(sqlite, 1, at(0))
    with pytest.raises(UnstorableValue, match="surrogates not allowed"):
        await sqlite.instances.replace_context(inst.id, make_context(text="\ud800"), at(1))
    assert await sqlite.instances.get(inst.id) == inst


async def test_naive_datetimes_are_refused(sqlite: SqliteStorage) -> None:
    with pytest.raises(ValueError, match="naive"):
        await sqlite.instances.claim_due(datetime(2026, 1, 1), 1)


async def test_duplicate_idempotency_key_conflicts(sqlite: SqliteStorage) -> None:
    seq = make_sequence()
    await sqlite.sequences.create(seq)
    await sqlite.instances.create([make_instance(seq, idempotency_key="k")])
    await sqlite.instances.create([make_instance(seq, idempotency_key="k", tenant_id="globex")])
    with pytest.raises(Conflict):
        await sqlite.instances.create([make_instance(seq, idempotency_key="k")])


async def test_instance_of_unknown_sequence_conflicts(sqlite: SqliteStorage) -> None:
    with pytest.raises(Conflict):
        await sqlite.instances.create([make_instance(make_sequence())])


async def test_two_storages_on_one_file_claim_disjoint_work(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    first, second = SqliteStorage(path), SqliteStorage(path)
    await first.migrate()
    await second.migrate()
    insts = await _scheduled(first, 80, at(0))
    batches = await asyncio.gather(
        *(store.instances.claim_due(at(0), 9) for _ in range(6) for store in (first, second))
    )
    ids = [i.id for batch in batches for i in batch]
    assert len(ids) == len(set(ids)) == len(insts)
    await first.close()
    await second.close()


async def test_a_failing_write_in_a_group_leaves_the_others_applied(sqlite: SqliteStorage) -> None:
    seq = make_sequence()
    await sqlite.sequences.create(seq)
    insts = [make_instance(seq, state=S.RUNNING) for _ in range(3)]
    await sqlite.instances.create(insts)
    taken = make_output(insts[0].id, id="out-taken")
    await sqlite.snapshots.commit(make_write(insts[0], state=S.RUNNING, outputs=(taken,)))
    dup = make_output(insts[1].id, id="out-taken")
    results = await asyncio.gather(
        sqlite.snapshots.commit(make_write(insts[1], outputs=(make_output(insts[1].id), dup))),
        sqlite.snapshots.commit(make_write(insts[2], outputs=(make_output(insts[2].id),))),
        sqlite.snapshots.commit(make_write(insts[0], expected_state=S.WAITING)),
        return_exceptions=True,
    )
    assert isinstance(results[0], Conflict)
    assert results[1] is None
    assert isinstance(results[2], StaleWrite)
    assert await sqlite.snapshots.load(insts[1].id) == (insts[1], [])
    assert await sqlite.outputs.list_for_instance(insts[1].id) == []
    done = await sqlite.instances.get(insts[2].id)
    assert done is not None
    assert done.state is S.COMPLETED


async def test_output_of_another_instance_is_refused(sqlite: SqliteStorage) -> None:
    [inst] = await _scheduled(sqlite, 1, at(0))
    with pytest.raises(ValueError, match="belongs to instance"):
        await sqlite.snapshots.commit(
            make_write(inst, expected_state=S.SCHEDULED, outputs=(make_output("elsewhere"),))
        )


async def test_a_cancelled_committer_does_not_break_the_storage(sqlite: SqliteStorage) -> None:
    insts = await _scheduled(sqlite, 20, at(0))
    tasks = [
        asyncio.create_task(
            sqlite.snapshots.commit(make_write(i, expected_state=S.SCHEDULED, state=S.WAITING))
        )
        for i in insts
    ]
    await asyncio.sleep(0)
    for task in tasks[::2]:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    claimed_later = await sqlite.instances.claim_due(at(0), 100)
    assert claimed_later == []  # every write landed, cancelled callers or not
    states = {(await sqlite.instances.get(i.id)).state for i in insts}  # type: ignore[union-attr]
    assert states == {S.WAITING}


async def test_close_waits_for_queued_commits(tmp_path: Path) -> None:
    path = str(tmp_path / "drain.db")
    store = SqliteStorage(path)
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
    assert _query(Path(path), "SELECT DISTINCT state FROM task_instances") == [("waiting",)]


async def test_closed_storage_refuses_work(tmp_path: Path) -> None:
    store = SqliteStorage(str(tmp_path / "closed.db"))
    await store.migrate()
    await store.close()
    with pytest.raises(RuntimeError, match="closed"):
        await store.ping()


async def test_in_memory_database_works_on_one_connection() -> None:
    store = SqliteStorage(":memory:")
    await store.migrate()
    [inst] = await _scheduled(store, 1, at(0))
    [claimed] = await store.instances.claim_due(at(0), 1)
    await store.snapshots.commit(make_write(claimed))
    loaded = await store.snapshots.load(inst.id)
    assert loaded is not None
    assert loaded[0].state is S.COMPLETED
    await store.close()


def test_split_statements_handles_comments_and_quotes() -> None:
    script = "-- head\nCREATE TABLE a (x TEXT DEFAULT ';');\n\n-- tail\nCREATE INDEX i ON a (x);\n"
    assert split_statements(script) == [
        "-- head\nCREATE TABLE a (x TEXT DEFAULT ';');",
        "-- tail\nCREATE INDEX i ON a (x);",
    ]
    with pytest.raises(ValueError, match="incomplete"):
        split_statements("CREATE TABLE b (x)")


async def test_two_storages_on_one_file_never_exceed_a_concurrency_cap(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    first, second = SqliteStorage(path), SqliteStorage(path)
    await first.migrate()
    seq = make_sequence()
    await first.sequences.create(seq)
    await first.instances.create(
        [
            make_instance(seq, next_fire_at=at(0), concurrency_key=f"k{n % 3}", max_concurrency=2)
            for n in range(30)
        ]
    )
    try:
        batches = await asyncio.gather(
            *(store.instances.claim_due(at(1), 4) for _ in range(6) for store in (first, second))
        )
    finally:
        await first.close()
        await second.close()
    claimed = [i for batch in batches for i in batch]
    assert len(claimed) == len({i.id for i in claimed})
    for key in ("k0", "k1", "k2"):
        assert sum(i.concurrency_key == key for i in claimed) == 2, key


async def test_pending_signals_and_running_keys_are_read_through_their_indexes(
    sqlite: SqliteStorage, tmp_path: Path
) -> None:
    await sqlite.ping()
    path = tmp_path / DB_NAME
    pending = _query(path, "EXPLAIN QUERY PLAN " + PENDING, ("i",))
    assert "idx_signal_inbox_pending" in " | ".join(str(row[3]) for row in pending)
    assert "TEMP B-TREE" not in " | ".join(str(row[3]) for row in pending)
    counted = _query(path, "EXPLAIN QUERY PLAN " + RUNNING_PER_KEY, ('["a"]',))
    assert "idx_task_instances_running_key" in " | ".join(str(row[3]) for row in counted)
