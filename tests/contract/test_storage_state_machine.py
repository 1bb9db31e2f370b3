"""Model-based test: random operations on a real store and on the memory reference
must agree, for SQLite and for PostgreSQL.

The memory adapter is the model. Each rule runs the same call on both stores
(through an event loop owned by the machine, since hypothesis drives it
synchronously) and checks the two answers match; invariants compare every
instance, its nodes and its outputs after each step.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from orch8.adapters.memory import MemoryStorage
from orch8.application.errors import ApplicationError
from orch8.application.ports.storage import InstanceFilter, Page, SnapshotWrite, Storage
from orch8.domain.context import ExecutionContext
from orch8.domain.instance import Instance, InstanceState, Priority
from orch8.domain.outputs import ERROR_REF
from orch8.domain.tree import Node, NodeState
from tests.contract.backends import REAL, Backend, backend_id
from tests.contract.builders import T0, at, make_instance, make_output, make_sequence

T = TypeVar("T")
S = InstanceState
# Opens the store under test (unmigrated) in a fresh temporary directory.
OpenStore = Callable[[Path], AbstractAsyncContextManager[Storage]]

states = st.sampled_from(list(InstanceState))
priorities = st.sampled_from(list(Priority))
offsets = st.integers(min_value=-30, max_value=30)
block_ids = st.sampled_from(["a", "b", "c"])
# What a waiting node may wait for: instance ids the machine creates ("i…"),
# children it inserts ("c…"), and one that never exists.
refs = st.sampled_from(["i000", "i001", "i002", "i003", "c000", "c001", "nowhere"])
nodes = st.builds(
    Node,
    block_id=block_ids,
    block_type=st.just("step"),
    state=st.sampled_from(list(NodeState)),
    attempts=st.integers(0, 3),
    error=st.none() | st.text(max_size=5),
    iteration=st.integers(0, 3),
    branch=st.none() | st.integers(0, 2),
    ref=st.none() | refs,
    reserved_at=st.none() | offsets.map(at),
)
contexts = st.none() | st.builds(
    ExecutionContext, data=st.dictionaries(st.sampled_from(["x", "y"]), st.integers(-5, 5))
)


class StorageAgreement(RuleBasedStateMachine):
    def __init__(self, open_store: OpenStore) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp(prefix="orch8-sm-"))
        self.model: Storage = MemoryStorage()
        self.opened = open_store(self.dir)
        self.real: Storage = self.loop.run_until_complete(self.opened.__aenter__())
        self.now = T0
        self.ids: list[str] = []
        self.sequence = make_sequence()
        self.outputs = 0
        self.children = 0
        self.run(lambda s: s.migrate())
        self.run(lambda s: s.sequences.create(self.sequence))

    def run(self, call: Callable[[Storage], Awaitable[T]]) -> tuple[Any, Any]:
        """The same call on both stores; an ApplicationError is an answer too."""

        async def attempt(store: Storage) -> Any:
            try:
                return await call(store)
            except ApplicationError as exc:
                return type(exc)

        return (
            self.loop.run_until_complete(attempt(self.model)),
            self.loop.run_until_complete(attempt(self.real)),
        )

    def agree(self, call: Callable[[Storage], Awaitable[T]]) -> Any:
        expected, actual = self.run(call)
        assert actual == expected
        return actual

    @rule(
        specs=st.lists(st.tuples(states, priorities, st.none() | offsets), min_size=1, max_size=4)
    )
    def create_instances(self, specs: list[tuple[InstanceState, Priority, int | None]]) -> None:
        batch = []
        for state, priority, fire in specs:
            self.now += timedelta(microseconds=1)
            batch.append(
                make_instance(
                    self.sequence,
                    id=f"i{len(self.ids) + len(batch):03d}",
                    state=state,
                    priority=priority,
                    next_fire_at=None if fire is None else self.now + timedelta(seconds=fire),
                    created_at=self.now,
                )
            )
        self.agree(lambda s: s.instances.create(batch))
        self.ids.extend(i.id for i in batch)

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def create_duplicate(self, data: st.DataObject) -> None:
        existing = data.draw(st.sampled_from(self.ids))
        dup = make_instance(self.sequence, id=existing, created_at=self.now)
        fresh = make_instance(self.sequence, id="never-stored", created_at=self.now)
        self.agree(lambda s: s.instances.create([fresh, dup]))

    @rule(seconds=st.integers(0, 40))
    def advance_clock(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)

    @rule(limit=st.integers(0, 5))
    def claim(self, limit: int) -> None:
        self.agree(lambda s: s.instances.claim_due(self.now, limit))

    @rule(age=st.integers(0, 60))
    def recover(self, age: int) -> None:
        stale_before = self.now - timedelta(seconds=age)
        self.agree(lambda s: s.instances.recover_stale(stale_before, self.now))

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def heartbeat(self, data: st.DataObject) -> None:
        chosen = data.draw(st.lists(st.sampled_from(self.ids), max_size=3))
        self.agree(lambda s: s.instances.heartbeat(chosen, self.now))

    def draw_write(self, data: st.DataObject, projected: dict[str, InstanceState]) -> SnapshotWrite:
        """A random write; half the time it expects the state the instance will be in
        once the writes drawn before it apply (`projected`), so most such writes land."""
        iid = data.draw(st.sampled_from(self.ids))
        if iid not in projected:
            current = self.loop.run_until_complete(self.model.instances.get(iid))
            assert current is not None
            projected[iid] = current.state
        guess = data.draw(st.none() | states)
        expected = projected[iid] if guess is None else guess
        new_state = data.draw(states)
        if expected is projected[iid]:
            projected[iid] = new_state
        fire = data.draw(st.none() | offsets)
        outputs = []
        for _ in range(data.draw(st.integers(0, 2))):
            self.outputs += 1
            outputs.append(
                make_output(
                    iid,
                    data.draw(block_ids),
                    id=f"o{self.outputs:04d}",
                    output=self.outputs,
                    created_at=self.now,
                    output_ref=data.draw(st.none() | st.just(ERROR_REF)),
                )
            )
        children = [self.draw_child(data) for _ in range(data.draw(st.integers(0, 2)))]
        wake = self.ids + [c.id for c in children]
        return SnapshotWrite(
            instance_id=iid,
            expected_state=expected,
            state=new_state,
            next_fire_at=None if fire is None else self.now + timedelta(seconds=fire),
            updated_at=self.now,
            context=data.draw(contexts),
            nodes=tuple(data.draw(st.lists(nodes, max_size=3))),
            outputs=tuple(outputs),
            children=tuple(children),
            wake_parent=data.draw(st.none() | st.sampled_from(wake)),
        )

    def draw_child(self, data: st.DataObject) -> Instance:
        """A new instance, or now and then one whose id is taken (the write conflicts)."""
        if data.draw(st.integers(0, 3)) == 0:
            child_id = data.draw(st.sampled_from(self.ids))
        else:
            child_id = f"c{self.children:03d}"
            self.children += 1
        fire = data.draw(st.none() | offsets)
        return make_instance(
            self.sequence,
            id=child_id,
            state=data.draw(states),
            next_fire_at=None if fire is None else self.now + timedelta(seconds=fire),
            created_at=self.now,
        )

    def remember_children(self, writes: list[SnapshotWrite]) -> None:
        """Track the children that were stored (by both stores, as invariants check)."""
        for write in writes:
            for child in write.children:
                stored = self.loop.run_until_complete(self.model.instances.get(child.id))
                if stored is not None and child.id not in self.ids:
                    self.ids.append(child.id)

    @precondition(lambda self: self.ids)
    @rule(data=st.data())
    def commit(self, data: st.DataObject) -> None:
        write = self.draw_write(data, {})
        self.agree(lambda s: s.snapshots.commit(write))
        self.remember_children([write])

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), count=st.integers(2, 8))
    def commit_concurrently(self, data: st.DataObject, count: int) -> None:
        """Concurrent commits: SQLite groups them into one transaction; the memory
        model applies them one by one in call order. Each outcome must match."""
        projected: dict[str, InstanceState] = {}
        writes = [self.draw_write(data, projected) for _ in range(count)]

        async def commit_all(store: Storage) -> list[object]:
            results = await asyncio.gather(
                *(store.snapshots.commit(w) for w in writes), return_exceptions=True
            )
            return [None if r is None else type(r) for r in results]

        self.agree(commit_all)
        self.remember_children(writes)

    @precondition(lambda self: self.ids)
    @rule(data=st.data(), wanted=st.lists(block_ids, max_size=4))
    def latest_outputs(self, data: st.DataObject, wanted: list[str]) -> None:
        iid = data.draw(st.sampled_from(self.ids))
        self.agree(lambda s: s.outputs.latest(iid, wanted))

    @rule()
    def wake_parents(self) -> None:
        self.agree(lambda s: s.instances.wake_parents_of_finished_children(self.now))

    @invariant()
    def stores_agree(self) -> None:
        self.agree(lambda s: s.instances.query(InstanceFilter(), Page(limit=1000)))
        for iid in self.ids:
            self.agree(lambda s, iid=iid: s.snapshots.load(iid))
            self.agree(lambda s, iid=iid: s.outputs.list_for_instance(iid))

    def teardown(self) -> None:
        try:
            self.loop.run_until_complete(self.model.close())
            self.loop.run_until_complete(self.opened.__aexit__(None, None, None))
        finally:
            self.loop.close()
            shutil.rmtree(self.dir, ignore_errors=True)


SETTINGS = settings(max_examples=25, stateful_step_count=20)


@pytest.mark.parametrize("backend", REAL, ids=backend_id)
def test_agrees_with_the_memory_model(request: pytest.FixtureRequest, backend: Backend) -> None:
    def open_store(directory: Path) -> AbstractAsyncContextManager[Storage]:
        return backend.store(request, directory, pool=4, migrate=False)

    run_state_machine_as_test(lambda: StorageAgreement(open_store), settings=SETTINGS)
