"""Building the guarded write of a run (no storage: the write is only built)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from attrs import evolve

from orch8.application.engine.pending_write import PendingWrite
from orch8.domain.context import ExecutionContext
from orch8.domain.evaluator import Snapshot
from orch8.domain.instance import Instance, InstanceState, Priority
from orch8.domain.outputs import BlockOutput
from orch8.domain.tasks import WorkerTask
from orch8.domain.tree import Node, NodeState

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
INSTANCE = Instance(
    id="i-1",
    sequence_id="s",
    tenant_id="t",
    namespace="default",
    state=InstanceState.RUNNING,
    next_fire_at=None,
    priority=Priority.NORMAL,
    timezone="UTC",
    created_at=T0,
    updated_at=T0,
    parent_instance_id="parent-1",
)
ROW = BlockOutput("o-1", "i-1", "a", {"x": 1}, 1, T0)
TASK = WorkerTask("task-1", "i-1", "t", "a", "remote", 1, T0)
CHILD = evolve(INSTANCE, id="c-1", state=InstanceState.SCHEDULED, parent_instance_id="i-1")


def committed() -> Snapshot:
    return Snapshot(
        ExecutionContext(data={"a": 1}),
        {"a": Node("a", "step", NodeState.RUNNING, attempts=1)},
    )


def test_a_running_write_that_changes_nothing_is_skipped() -> None:
    snap = committed()
    pending = PendingWrite(INSTANCE, snap)
    assert pending.build(snap, InstanceState.RUNNING, None, T0) is None
    # An equal snapshot (not the same object) changes nothing either.
    copy = Snapshot(ExecutionContext(data={"a": 1}), dict(snap.nodes))
    assert pending.build(copy, InstanceState.RUNNING, None, T0) is None


@pytest.mark.parametrize(
    "state", [s for s in InstanceState if s is not InstanceState.RUNNING], ids=str
)
def test_a_transition_is_written_even_with_nothing_else_changed(state: InstanceState) -> None:
    snap = committed()
    write = PendingWrite(INSTANCE, snap).build(snap, state, T0, T0)
    assert write is not None
    assert (write.state, write.expected_state, write.next_fire_at) == (
        state,
        InstanceState.RUNNING,
        T0,
    )
    assert (write.nodes, write.context, write.outputs) == ((), None, ())


def gathered(kind: str) -> tuple[PendingWrite, Snapshot]:
    snap = committed()
    pending = PendingWrite(INSTANCE, snap)
    if kind == "node":
        snap = snap.with_node(Node("a", "step", NodeState.COMPLETED, attempts=1))
    elif kind == "context":
        snap = evolve(snap, context=ExecutionContext(data={"a": 2}))
    elif kind == "row":
        pending.rows.append(ROW)
    elif kind == "child":
        pending.children.append(CHILD)
    elif kind == "task":
        pending.tasks.append(TASK)
    elif kind == "signal":
        pending.delivered.append("sig-1")
    return pending, snap


@pytest.mark.parametrize("kind", ["node", "context", "row", "child", "task", "signal"])
def test_any_one_change_makes_a_running_write(kind: str) -> None:
    pending, snap = gathered(kind)
    write = pending.build(snap, InstanceState.RUNNING, None, T0)
    assert write is not None
    got: dict[str, Any] = {
        "node": write.nodes,
        "context": write.context,
        "row": write.outputs,
        "child": write.children,
        "task": write.tasks,
        "signal": write.delivered_signals,
    }
    assert [k for k, v in got.items() if v] == [kind]
    assert write.updated_at == T0
    assert write.wake_parent is None


def test_the_write_carries_only_the_changed_nodes_and_wakes_the_parent_when_asked() -> None:
    snap = committed().with_node(Node("b", "step", NodeState.RUNNING, attempts=1))
    write = PendingWrite(INSTANCE, committed()).build(
        snap, InstanceState.COMPLETED, None, T0, wake_parent=True
    )
    assert write is not None
    assert [n.block_id for n in write.nodes] == ["b"]
    assert write.wake_parent == "parent-1"


def test_a_commit_starts_the_gathering_afresh() -> None:
    pending, snap = gathered("row")
    pending.children.append(CHILD)
    pending.tasks.append(TASK)
    pending.delivered.append("sig-1")
    write = pending.build(snap, InstanceState.RUNNING, None, T0)
    assert write is not None
    pending.committed_as(snap)
    assert pending.committed is snap
    assert pending.build(snap, InstanceState.RUNNING, None, T0) is None
    assert (pending.rows, pending.children, pending.tasks, pending.delivered) == ([], [], [], [])
    # The built write kept what it was built with.
    assert write.outputs == (ROW,)


def node(
    block_id: str, state: NodeState, *, ref: str | None = "task-1", kind: str = "step"
) -> Node:
    return Node(block_id, kind, state, attempts=1, ref=ref)


def test_steps_cancelled_while_waiting_on_a_worker_abandon_their_task() -> None:
    before = Snapshot(
        ExecutionContext(),
        {
            "waited": node("waited", NodeState.WAITING),
            "gate": node("gate", NodeState.WAITING, ref=None),  # a person's input, no task
            "child": node("child", NodeState.WAITING, ref="c-1", kind="sub_sequence"),
            "ran": node("ran", NodeState.RUNNING),
        },
    )
    after = before
    for block_id in ("waited", "gate", "child", "ran", "fresh"):
        old = before.nodes.get(block_id) or node(block_id, NodeState.PENDING)
        after = after.with_node(evolve(old, state=NodeState.CANCELLED))
    pending = PendingWrite(INSTANCE, before)
    write = pending.build(after, InstanceState.CANCELLED, None, T0)
    assert write is not None
    assert pending.abandoned(write) == ["waited"]
    # A task that ended on its own (the node completed) is not abandoned.
    done = before.with_node(node("waited", NodeState.COMPLETED))
    finished = pending.build(done, InstanceState.RUNNING, None, T0)
    assert finished is not None
    assert pending.abandoned(finished) == []
