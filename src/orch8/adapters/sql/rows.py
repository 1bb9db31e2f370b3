"""Row <-> domain conversions for instances, nodes, outputs, signals and sequences.

Both SQL schemas hold these tables with the same columns in the same order;
only the storage of times, flags and error text differs, which `Values` states
per dialect. Rows are read by position (a driver's row may carry more columns
after the ones named here), so every query that feeds a mapper selects its
columns in table order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from itertools import islice
from typing import Any

from attrs import frozen

from orch8.adapters.sql import columns
from orch8.adapters.sql.values import Values, dump_context, dump_json, load_context
from orch8.codec.wire import sequence_definition, sequence_from_stored
from orch8.domain.instance import Instance, InstanceState, Priority
from orch8.domain.outputs import BlockOutput
from orch8.domain.sequence import Sequence
from orch8.domain.signals import Signal, SignalKind
from orch8.domain.tree import Node, NodeState

Row = Iterable[Any]
INSTANCE_WIDTH = len(columns.names(columns.INSTANCE))


@frozen
class Rows:
    """The mappers of one dialect, given how it stores times, flags and error text."""

    values: Values

    def instance_params(self, inst: Instance) -> tuple[Any, ...]:
        """Parameters in task_instances column order."""
        v = self.values
        return (
            inst.id,
            inst.sequence_id,
            inst.tenant_id,
            inst.namespace,
            inst.state.value,
            v.time_or_none(inst.next_fire_at),
            int(inst.priority),
            inst.timezone,
            dump_json(dict(inst.metadata)),
            dump_context(inst.context),
            inst.concurrency_key,
            inst.max_concurrency,
            inst.idempotency_key,
            inst.parent_instance_id,
            v.time(inst.created_at),
            v.time(inst.updated_at),
        )

    def instance_from_row(self, row: Row) -> Instance:
        """A task_instances row: id .. updated_at, in table order (then maybe more)."""
        (
            iid,
            sequence_id,
            tenant_id,
            namespace,
            state,
            next_fire_at,
            priority,
            timezone,
            metadata,
            context,
            concurrency_key,
            max_concurrency,
            idempotency_key,
            parent_instance_id,
            created_at,
            updated_at,
        ) = islice(row, INSTANCE_WIDTH)
        v = self.values
        return Instance(
            id=iid,
            sequence_id=sequence_id,
            tenant_id=tenant_id,
            namespace=namespace,
            state=InstanceState(state),
            next_fire_at=v.read_time_or_none(next_fire_at),
            priority=Priority(priority),
            timezone=timezone,
            metadata=json.loads(metadata),
            context=load_context(context),
            concurrency_key=concurrency_key,
            max_concurrency=max_concurrency,
            idempotency_key=idempotency_key,
            parent_instance_id=parent_instance_id,
            created_at=v.read_time(created_at),
            updated_at=v.read_time(updated_at),
        )

    def node_params(self, node: Node) -> tuple[Any, ...]:
        """execution_tree columns block_id .. error, then iteration, branch, ref, reserved_at."""
        v = self.values
        return (
            node.block_id,
            node.block_type,
            node.state.value,
            node.parent_id,
            node.branch_index,
            node.attempts,
            v.time_or_none(node.not_before),
            v.time_or_none(node.started_at),
            v.time_or_none(node.completed_at),
            v.error_text_or_none(node.error),
            node.iteration,
            node.branch,
            node.ref,
            v.time_or_none(node.reserved_at),
        )

    def node_from_row(self, row: Row) -> Node:
        """The same columns as `node_params`, in its order."""
        (
            block_id,
            block_type,
            state,
            parent_id,
            branch_index,
            attempts,
            not_before,
            started_at,
            completed_at,
            error,
            iteration,
            branch,
            ref,
            reserved_at,
        ) = row
        v = self.values
        return Node(
            block_id=block_id,
            block_type=block_type,
            state=NodeState(state),
            parent_id=parent_id,
            branch_index=branch_index,
            attempts=attempts,
            not_before=v.read_time_or_none(not_before),
            started_at=v.read_time_or_none(started_at),
            completed_at=v.read_time_or_none(completed_at),
            error=v.read_error_text_or_none(error),
            iteration=iteration,
            branch=branch,
            ref=ref,
            reserved_at=v.read_time_or_none(reserved_at),
        )

    def output_params(self, out: BlockOutput) -> tuple[Any, ...]:
        """block_outputs columns id .. created_at (all but tenant_id), in table order."""
        return (
            out.id,
            out.instance_id,
            out.block_id,
            dump_json(out.output),
            out.output_ref,
            out.output_size,
            out.attempt,
            self.values.time(out.created_at),
        )

    def output_from_row(self, row: Row) -> BlockOutput:
        """The same columns as `output_params`, in its order."""
        oid, instance_id, block_id, output, output_ref, output_size, attempt, created_at = row
        return BlockOutput(
            id=oid,
            instance_id=instance_id,
            block_id=block_id,
            output=json.loads(output),
            output_ref=output_ref,
            output_size=output_size,
            attempt=attempt,
            created_at=self.values.read_time(created_at),
        )

    def signal_params(self, signal: Signal) -> tuple[Any, ...]:
        """signal_inbox columns id .. delivered_at, in table order."""
        return (
            signal.id,
            signal.instance_id,
            signal.tenant_id,
            signal.kind.value,
            signal.name,
            dump_json(signal.payload),
            self.values.time(signal.created_at),
            self.values.time_or_none(signal.delivered_at),
        )

    def signal_from_row(self, row: Row) -> Signal:
        """The same columns as `signal_params`, in its order."""
        sid, instance_id, tenant_id, kind, name, payload, created_at, delivered_at = row
        return Signal(
            id=sid,
            instance_id=instance_id,
            tenant_id=tenant_id,
            kind=SignalKind(kind),
            created_at=self.values.read_time(created_at),
            payload=json.loads(payload),
            name=name,
            delivered_at=self.values.read_time_or_none(delivered_at),
        )

    def sequence_params(self, sequence: Sequence) -> tuple[Any, ...]:
        """sequences columns, in table order; the definition is the wire codec's document."""
        return (
            sequence.id,
            sequence.tenant_id,
            sequence.namespace,
            sequence.name,
            sequence.version,
            self.values.flag(sequence.deprecated),
            dump_json(sequence_definition(sequence)),
            self.values.time(sequence.created_at),
        )

    def sequence_from_row(self, row: Row) -> Sequence:
        """The same columns as `sequence_params`, in its order."""
        sid, tenant_id, namespace, name, version, deprecated, definition, created_at = row
        stored: dict[str, Any] = {
            "id": sid,
            "tenant_id": tenant_id,
            "namespace": namespace,
            "name": name,
            "version": version,
            "deprecated": bool(deprecated),
            "created_at": self.values.read_time(created_at),
            "definition": json.loads(definition),
        }
        return sequence_from_stored(stored)
