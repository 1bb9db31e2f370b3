"""Applying what became of a step attempt to the snapshot (pure: no engine, no clock)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from attrs import evolve
from hypothesis import given
from hypothesis import strategies as st

from orch8.domain.context import ExecutionContext
from orch8.domain.context_changes import DELETE
from orch8.domain.context_keys import STATE_KEY
from orch8.domain.evaluator import Advance, RunStep, Snapshot
from orch8.domain.evaluator.attempts import (
    AttemptResult,
    Deferred,
    Dispatched,
    Ending,
    Failed,
    Stamp,
    Succeeded,
    apply_attempt,
    apply_task_result,
    apply_task_results,
    result_row,
)
from orch8.domain.instance import InstanceState
from orch8.domain.outputs import ERROR_REF
from orch8.domain.sequence import RetryPolicy, StepBlock
from orch8.domain.tasks import TaskState, WorkerTask
from orch8.domain.tree import Node, NodeState

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SEND = StepBlock("send", "send")
RETRIED = StepBlock("send", "send", retry=RetryPolicy(max_attempts=3))


class Ids:
    """Counts the ids asked for: a row is stamped only when it is made."""

    def __init__(self) -> None:
        self.asked = 0
        self._n = itertools.count(1)

    def new_id(self) -> str:
        self.asked += 1
        return f"row-{next(self._n)}"


def stamp(ids: Ids, now: datetime = T0) -> Stamp:
    return Stamp("i-1", now, ids.new_id)


def running(attempts: int = 1, **context: Any) -> Snapshot:
    node = Node("send", "step", NodeState.RUNNING, attempts=attempts, started_at=T0)
    return Snapshot(ExecutionContext(**context), {"send": node})


def task(state: TaskState = TaskState.COMPLETED, **fields: Any) -> WorkerTask:
    return WorkerTask(
        id="task-1",
        instance_id="i-1",
        tenant_id="t",
        block_id="send",
        handler_name="send",
        attempt=1,
        created_at=T0,
        state=state,
        **fields,
    )


def test_a_success_completes_the_node_records_one_row_and_merges_its_changes() -> None:
    ids = Ids()
    snap = running(data={"a": 1}, runtime={STATE_KEY: {"k": 1, "gone": 2}})
    result = Succeeded({"ok": True}, 11, data={"b": 2}, state={"k": 3, "gone": DELETE})
    applied = apply_attempt(snap, RunStep(SEND, 1), result, stamp(ids, T0 + timedelta(seconds=1)))
    node = applied.snapshot.nodes["send"]
    assert node.state is NodeState.COMPLETED
    assert node.completed_at == T0 + timedelta(seconds=1)
    (row,) = applied.rows
    assert (row.id, row.instance_id, row.block_id, row.output, row.attempt) == (
        "row-1",
        "i-1",
        "send",
        {"ok": True},
        1,
    )
    assert (row.output_size, row.output_ref, row.created_at) == (
        11,
        None,
        T0 + timedelta(seconds=1),
    )
    assert applied.snapshot.context.data == {"a": 1, "b": 2}
    assert applied.snapshot.context.runtime[STATE_KEY] == {"k": 3}
    assert applied.task is None
    assert ids.asked == 1


def test_a_failure_records_its_error_and_retries_as_the_policy_allows() -> None:
    ids = Ids()
    applied = apply_attempt(running(), RunStep(RETRIED, 1), Failed("down", True), stamp(ids))
    node = applied.snapshot.nodes["send"]
    assert node.state is NodeState.PENDING
    assert node.not_before is not None and node.not_before > T0
    assert node.error == "down"
    (row,) = applied.rows
    assert row.output == {"error": "down", "retryable": True}
    assert row.output_ref == ERROR_REF
    # Not retryable: the node fails for good, and the row says so.
    final = apply_attempt(running(), RunStep(RETRIED, 1), Failed("bad", False), stamp(ids))
    assert final.snapshot.nodes["send"].state is NodeState.FAILED
    assert [r.output for r in final.rows] == [{"error": "bad", "retryable": False}]


def test_a_deferred_attempt_gives_the_attempt_back_and_keeps_its_place() -> None:
    ids = Ids()
    place = T0 + timedelta(seconds=30)
    until = place - timedelta(milliseconds=500)
    applied = apply_attempt(running(2), RunStep(SEND, 2), Deferred(until, place), stamp(ids))
    node = applied.snapshot.nodes["send"]
    assert (node.state, node.attempts, node.not_before, node.reserved_at) == (
        NodeState.PENDING,
        1,
        until,
        place,
    )
    assert applied.rows == ()
    assert ids.asked == 0


def test_a_dispatched_attempt_parks_the_node_on_its_task() -> None:
    ids = Ids()
    handed = task(TaskState.PENDING)
    applied = apply_attempt(running(), RunStep(SEND, 1), Dispatched(handed), stamp(ids))
    node = applied.snapshot.nodes["send"]
    assert (node.state, node.ref) == (NodeState.WAITING, "task-1")
    assert applied.task == handed
    assert applied.rows == ()
    # A node no longer running (cancelled meanwhile) takes no task.
    cancelled = running().with_node(Node("send", "step", NodeState.CANCELLED, attempts=1))
    dropped = apply_attempt(cancelled, RunStep(SEND, 1), Dispatched(handed), stamp(ids))
    assert dropped.snapshot is cancelled
    assert dropped.task is None


RESULTS: st.SearchStrategy[AttemptResult] = st.one_of(
    st.builds(Succeeded, st.integers(), st.integers(0, 100), st.none()),
    st.builds(Failed, st.text(max_size=5), st.booleans()),
    st.builds(Deferred, st.just(T0 + timedelta(seconds=5)), st.just(T0 + timedelta(seconds=6))),
    st.builds(Dispatched, st.builds(task, st.just(TaskState.PENDING))),
)
STATES = st.sampled_from(list(NodeState))


@given(
    result=RESULTS,
    state=STATES,
    attempts=st.integers(0, 4),
    step_attempt=st.integers(1, 4),
    present=st.booleans(),
)
def test_a_result_for_a_stale_attempt_leaves_the_snapshot_unchanged(
    result: AttemptResult, state: NodeState, attempts: int, step_attempt: int, present: bool
) -> None:
    """Stale: the node is gone, no longer running, or running another attempt (a
    dispatch only asks that the node still runs)."""
    node = Node("send", "step", state, attempts=attempts)
    snap = Snapshot(ExecutionContext(), {"send": node} if present else {})
    stale = not present or state is not NodeState.RUNNING
    if not isinstance(result, Dispatched):
        stale = stale or attempts != step_attempt
    ids = Ids()
    applied = apply_attempt(snap, RunStep(RETRIED, step_attempt), result, stamp(ids))
    if stale:
        assert applied.snapshot == snap
        assert applied.rows == ()
        assert applied.task is None
        assert ids.asked == 0
    else:
        assert applied.snapshot != snap
        # Only a made attempt leaves a row, exactly one, stamped with one id.
        made = isinstance(result, Succeeded | Failed)
        assert len(applied.rows) == ids.asked == (1 if made else 0)
        assert all(r.attempt == step_attempt and r.block_id == "send" for r in applied.rows)


@given(attempt=st.integers(1, 5), output=st.integers() | st.text(max_size=5))
def test_a_success_of_the_running_attempt_records_exactly_one_output_row(
    attempt: int, output: Any
) -> None:
    ids = Ids()
    applied = apply_attempt(
        running(attempt), RunStep(SEND, attempt), Succeeded(output, 1), stamp(ids)
    )
    assert [(r.output, r.attempt, r.output_ref) for r in applied.rows] == [(output, attempt, None)]
    assert ids.asked == 1


def waiting_on_task(attempts: int = 1) -> Snapshot:
    node = Node("send", "step", NodeState.WAITING, attempts=attempts, ref="task-1")
    return Snapshot(ExecutionContext(data={"a": 1}), {"send": node})


def test_a_completed_task_succeeds_its_step_and_merges_an_object_output() -> None:
    ids = Ids()
    applied = apply_task_result(
        waiting_on_task(), SEND, task(output={"b": 2}), stamp(ids, T0 + timedelta(seconds=1))
    )
    assert applied is not None
    assert applied.snapshot.nodes["send"].state is NodeState.COMPLETED
    assert applied.snapshot.context.data == {"a": 1, "b": 2}
    assert [(r.output, r.output_size) for r in applied.rows] == [({"b": 2}, len('{"b": 2}'))]
    # A plain output is recorded but not merged.
    plain = apply_task_result(waiting_on_task(), SEND, task(output=[1]), stamp(ids))
    assert plain is not None
    assert plain.snapshot.context.data == {"a": 1}


def test_a_failed_task_fails_its_attempt_under_the_retry_policy() -> None:
    failed = task(TaskState.FAILED, error_message="boom", error_retryable=True)
    applied = apply_task_result(waiting_on_task(), RETRIED, failed, stamp(Ids()))
    assert applied is not None
    assert applied.snapshot.nodes["send"].state is NodeState.PENDING
    assert [r.output for r in applied.rows] == [{"error": "boom", "retryable": True}]
    silent = apply_task_result(waiting_on_task(), SEND, task(TaskState.FAILED), stamp(Ids()))
    assert silent is not None
    assert [r.output for r in silent.rows] == [
        {"error": "worker reported a failure", "retryable": False}
    ]


def test_a_task_not_ended_cancelled_or_not_waited_on_changes_nothing() -> None:
    at = stamp(Ids())
    for state in (TaskState.PENDING, TaskState.CLAIMED, TaskState.CANCELLED):
        assert apply_task_result(waiting_on_task(), SEND, task(state), at) is None
    assert apply_task_result(waiting_on_task(), SEND, evolve(task(), id="task-2"), at) is None
    assert apply_task_result(running(), SEND, task(), at) is None
    assert apply_task_result(Snapshot(), SEND, task(), at) is None


def test_task_results_apply_in_turn_and_count_the_steps_that_ended() -> None:
    snap = waiting_on_task().with_node(
        Node("other", "step", NodeState.WAITING, attempts=1, ref="t-9")
    )
    steps = {"send": SEND, "other": StepBlock("other", "x")}
    results = {"send": task(output=1), "other": task(TaskState.CLAIMED), "gone": task()}
    applied, ended = apply_task_results(snap, steps, results, stamp(Ids()))
    assert ended == 1
    assert applied.snapshot.nodes["send"].state is NodeState.COMPLETED
    assert applied.snapshot.nodes["other"] == snap.nodes["other"]
    assert [r.block_id for r in applied.rows] == ["send"]


def test_a_cleanup_attempt_leaves_a_row_only_when_made() -> None:
    ids = Ids()
    assert result_row(Succeeded("x", 3), "undo", 1, stamp(ids)) is not None
    failed = result_row(Failed("no", False), "undo", 1, stamp(ids))
    assert failed is not None and failed.output_ref == ERROR_REF
    assert result_row(Deferred(T0), "undo", 1, stamp(ids)) is None
    assert result_row(Dispatched(task()), "undo", 1, stamp(ids)) is None
    assert ids.asked == 2


def test_an_unfinished_advance_parks_as_its_wake_up_and_waiting_say() -> None:
    later = T0 + timedelta(minutes=1)
    step = RunStep(SEND, 1)
    assert Advance(Snapshot(), run=(step,)).parked(T0) == (InstanceState.SCHEDULED, T0)
    assert Advance(Snapshot(), waiting=True, wake_at=later).parked(T0) == (
        InstanceState.WAITING,
        later,
    )
    assert Advance(Snapshot(), wake_at=later).parked(T0) == (InstanceState.SCHEDULED, later)
    assert Advance(Snapshot()).parked(T0) == (InstanceState.WAITING, None)


def test_each_recorded_attempt_says_how_it_ended() -> None:
    """What the step counters count: a retry is a failed attempt that will be made again."""

    def ends(block: StepBlock, attempt: int, result: AttemptResult) -> tuple[Ending, ...]:
        return apply_attempt(running(attempt), RunStep(block, attempt), result, stamp(Ids())).ends

    assert ends(SEND, 1, Succeeded({}, 2)) == (Ending.SUCCEEDED,)
    assert ends(RETRIED, 1, Failed("boom", retryable=True)) == (Ending.RETRYING,)
    assert ends(RETRIED, 2, Failed("boom", retryable=True)) == (Ending.RETRYING,)
    assert ends(RETRIED, 3, Failed("boom", retryable=True)) == (Ending.FAILED,)  # the last
    assert ends(RETRIED, 1, Failed("boom", retryable=False)) == (Ending.FAILED,)
    assert ends(SEND, 1, Failed("boom", retryable=True)) == (Ending.FAILED,)  # no policy
    assert ends(SEND, 1, Deferred(T0 + timedelta(seconds=5))) == ()  # not made yet
    assert ends(SEND, 1, Dispatched(task(TaskState.PENDING))) == ()  # a worker's, later
    stale = apply_attempt(running(2), RunStep(SEND, 1), Succeeded({}, 2), stamp(Ids()))
    assert stale.ends == ()


def test_worker_results_say_how_their_attempts_ended() -> None:
    waiting = waiting_on_task()
    ok, _ = apply_task_results(waiting, {"send": SEND}, {"send": task()}, stamp(Ids()))
    assert ok.ends == (Ending.SUCCEEDED,)
    failed = task(TaskState.FAILED, error_message="down", error_retryable=True)
    retried, _ = apply_task_results(waiting, {"send": RETRIED}, {"send": failed}, stamp(Ids()))
    assert retried.ends == (Ending.RETRYING,)
