"""Snapshot writes turned into statement parameters, and cut into batchable segments.

A group commit applies many writes together. Encoding each write before it
joins the batch (`prepare`) keeps its encoding errors with its own caller,
never in the shared transaction. Writes within one segment touch different
instances, so applying a segment at once gives the same result as applying
its writes one by one in order; a write that reaches beyond its own instance
(it inserts children or wakes a parent) is a segment of its own, so the writes
after it see what it did. How a segment becomes statements is the dialect's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from attrs import field, frozen

from orch8.adapters.sql import columns
from orch8.adapters.sql.rows import Rows
from orch8.adapters.sql.task_rows import TaskRows
from orch8.adapters.sql.values import dump_context
from orch8.application.errors import StaleWrite
from orch8.application.ports.storage import SnapshotWrite

# A node written again replaces its stored version (its key: instance_id, block_id).
NODE_UPDATE = columns.set_from_excluded(columns.NODE, key=("block_id",))


@frozen
class PreparedWrite:
    """A SnapshotWrite as statement parameters, in the dialect's column values."""

    instance_id: str
    expected_state: str
    guard: tuple[Any, ...]  # id, expected_state, state, next_fire_at, updated_at, context
    nodes: list[tuple[Any, ...]]  # Rows.node_params
    outputs: list[tuple[Any, ...]]  # Rows.output_params
    children: list[tuple[Any, ...]]  # Rows.instance_params
    wake_parent: tuple[str, Any] | None  # (parent id, the write's updated_at)
    delivered: list[tuple[Any, ...]]  # (signal id, instance id, the write's updated_at)
    tasks: list[tuple[Any, ...]] = field(factory=list)  # TaskRows.task_params

    @property
    def alone(self) -> bool:
        """Whether the write touches rows beyond its own instance's."""
        return bool(self.children) or self.wake_parent is not None


def prepare(write: SnapshotWrite, rows: Rows, task_rows: TaskRows) -> PreparedWrite:
    """`write` encoded; ValueError for an output that names another instance."""
    for out in write.outputs:
        if out.instance_id != write.instance_id:
            raise ValueError(
                f"output {out.id} belongs to instance {out.instance_id}, "
                f"not to the written instance {write.instance_id}"
            )
    values = rows.values
    updated_at = values.time(write.updated_at)
    # A block written twice in one write: the last version wins, in the place of the
    # first (one INSERT ... ON CONFLICT cannot touch a row twice).
    nodes = {node.block_id: node for node in write.nodes}
    return PreparedWrite(
        instance_id=write.instance_id,
        expected_state=write.expected_state.value,
        guard=(
            write.instance_id,
            write.expected_state.value,
            write.state.value,
            values.time_or_none(write.next_fire_at),
            updated_at,
            None if write.context is None else dump_context(write.context),
        ),
        nodes=[rows.node_params(n) for n in nodes.values()],
        outputs=[rows.output_params(o) for o in write.outputs],
        children=[rows.instance_params(c) for c in write.children],
        wake_parent=None if write.wake_parent is None else (write.wake_parent, updated_at),
        delivered=[(sid, write.instance_id, updated_at) for sid in write.delivered_signals],
        tasks=[task_rows.task_params(t) for t in write.tasks],
    )


def stale(write: PreparedWrite) -> StaleWrite:
    return StaleWrite(f"instance {write.instance_id} is no longer {write.expected_state}")


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
