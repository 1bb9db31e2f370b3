"""Starting instances and reading what they did."""

from __future__ import annotations

from datetime import datetime

from attrs import frozen

from orch8.application.commands import NewInstance
from orch8.application.errors import (
    Conflict,
    ContextTooLarge,
    Forbidden,
    NotFound,
    UnstorableValue,
)
from orch8.application.ports.clock import Clock, IdGenerator
from orch8.application.ports.storage import (
    InstanceFilter,
    InstanceStore,
    OutputStore,
    Page,
    SequenceStore,
    SnapshotStore,
)
from orch8.application.use_cases.tenancy import effective_tenant, visible
from orch8.domain.context import ExecutionContext, serialized_size
from orch8.domain.errors import ValidationError
from orch8.domain.instance import Instance, InstanceState
from orch8.domain.outputs import BlockOutput
from orch8.domain.sequence import Sequence
from orch8.domain.tree import Node
from orch8.domain.tree_view import full_tree

# A create that lost an idempotency race reads the winner back and tries again;
# more than a couple of rounds means a key is being fought over, not raced.
_INSERT_ATTEMPTS = 3
# Orch8's `max_context_bytes` default: the largest context an instance starts with.
DEFAULT_MAX_CONTEXT_BYTES = 256 * 1024


def check_context_size(context: ExecutionContext, limit: int, path: str) -> None:
    """Raise ContextTooLarge (413) when the context is over `limit` bytes (0: no limit)."""
    if limit > 0:
        size = serialized_size(context)
        if size > limit:
            raise ContextTooLarge(path, size, limit)


@frozen
class InstancePage:
    items: list[Instance]
    has_more: bool


@frozen
class Started:
    instance: Instance
    deduplicated: bool = False


class InstanceService:
    def __init__(
        self,
        sequences: SequenceStore,
        instances: InstanceStore,
        snapshots: SnapshotStore,
        outputs: OutputStore,
        clock: Clock,
        ids: IdGenerator,
        *,
        max_context_bytes: int = DEFAULT_MAX_CONTEXT_BYTES,
    ) -> None:
        self._sequences = sequences
        self._instances = instances
        self._snapshots = snapshots
        self._outputs = outputs
        self._clock = clock
        self._ids = ids
        self.max_context_bytes = max_context_bytes

    async def create(self, cmd: NewInstance, *, caller: str | None) -> Started:
        return (await self.create_many([cmd], caller=caller))[0]

    async def create_many(
        self, cmds: list[NewInstance], *, caller: str | None, chunk_size: int | None = None
    ) -> list[Started]:
        """Validate every request, then insert: all at once, or `chunk_size` per
        transaction (each chunk whole or not at all; a later chunk's failure
        leaves earlier chunks stored).

        A request whose (tenant, idempotency_key) is taken (stored already, or
        earlier in the same call) starts nothing: it answers the existing
        instance with `deduplicated`. Concurrent creates with one key are
        settled by the store's unique index: the losers read the winner back.
        """
        now = self._clock.now()
        instances = await self._build(cmds, caller, now)
        size = chunk_size or len(instances) or 1
        started: list[Started] = []
        for start in range(0, len(instances), size):
            started += await self._insert(instances[start : start + size])
        return started

    async def _build(
        self, cmds: list[NewInstance], caller: str | None, now: datetime
    ) -> list[Instance]:
        sequences: dict[str, Sequence | None] = {}
        instances = []
        for index, cmd in enumerate(cmds):
            where = "" if len(cmds) == 1 else f"instances[{index}]"
            if cmd.tenant_id is not None:
                # Orch8 answers 403 when the body names another tenant than the header.
                try:
                    effective_tenant(cmd.tenant_id, caller, default=None)
                except Forbidden as exc:
                    raise Forbidden(f"{where}: {exc}" if where else str(exc)) from None
            if cmd.sequence_id not in sequences:
                sequences[cmd.sequence_id] = await self._sequences.get(cmd.sequence_id)
            seq = sequences[cmd.sequence_id]
            tenant = cmd.tenant_id or caller
            if (
                seq is None
                or not visible(seq.tenant_id, caller)
                or (tenant is not None and tenant != seq.tenant_id)
            ):
                raise NotFound(
                    "sequence", f"{cmd.sequence_id} ({where})" if where else cmd.sequence_id
                )
            if cmd.namespace != seq.namespace and cmd.namespace != "default":
                path = f"{where}.namespace" if where else "namespace"
                raise ValidationError(f"sequence lives in namespace '{seq.namespace}'", path=path)
            if cmd.idempotency_key == "":
                path = f"{where}.idempotency_key" if where else "idempotency_key"
                raise ValidationError("must not be empty", path=path)
            check_context_size(
                cmd.context, self.max_context_bytes, f"{where}.context" if where else "context"
            )
            instances.append(
                Instance(
                    id=self._ids.new_id(),
                    sequence_id=seq.id,
                    tenant_id=seq.tenant_id,
                    namespace=seq.namespace,
                    state=InstanceState.SCHEDULED,
                    next_fire_at=cmd.next_fire_at or now,
                    priority=cmd.priority,
                    timezone=cmd.timezone,
                    created_at=now,
                    updated_at=now,
                    metadata=cmd.metadata,
                    context=cmd.context,
                    concurrency_key=cmd.concurrency_key,
                    max_concurrency=cmd.max_concurrency,
                    idempotency_key=cmd.idempotency_key,
                )
            )
        return instances

    async def _insert(self, instances: list[Instance]) -> list[Started]:
        """Insert in one transaction, answering taken idempotency keys with the
        instance that holds them. A concurrent create may take a key between the
        lookup and the insert: the insert then conflicts as a whole, and is
        retried once the winners can be read back."""
        for attempt in range(_INSERT_ATTEMPTS):
            started, fresh = await self._deduplicate(instances)
            try:
                await self._instances.create(fresh)
            except UnstorableValue as exc:  # e.g. a NUL character in PostgreSQL text
                raise ValidationError(str(exc), path="body") from None
            except Conflict:
                keyed = any(i.idempotency_key is not None for i in fresh)
                if not keyed or attempt == _INSERT_ATTEMPTS - 1:
                    raise
                continue
            return started
        raise AssertionError("unreachable")  # pragma: no cover

    async def _deduplicate(self, instances: list[Instance]) -> tuple[list[Started], list[Instance]]:
        """(what each request gets, the instances still to insert)."""
        started: list[Started] = []
        fresh: list[Instance] = []
        claimed: dict[tuple[str, str], Instance] = {}
        for inst in instances:
            key = inst.idempotency_key
            if key is None:
                started.append(Started(inst))
                fresh.append(inst)
                continue
            holder = claimed.get((inst.tenant_id, key))
            if holder is None:
                holder = await self._instances.find_by_idempotency_key(inst.tenant_id, key)
            if holder is not None:
                started.append(Started(holder, deduplicated=True))
                continue
            claimed[(inst.tenant_id, key)] = inst
            started.append(Started(inst))
            fresh.append(inst)
        return started, fresh

    async def get(self, instance_id: str, *, caller: str | None) -> Instance:
        inst = await self._instances.get(instance_id)
        if inst is None or not visible(inst.tenant_id, caller):
            raise NotFound("instance", instance_id)
        return inst

    async def query(self, flt: InstanceFilter, page: Page, *, caller: str | None) -> InstancePage:
        if caller is not None:
            if flt.tenant_id not in (None, caller):
                return InstancePage([], has_more=False)
            flt = InstanceFilter(
                tenant_id=caller,
                namespace=flt.namespace,
                sequence_id=flt.sequence_id,
                states=flt.states,
            )
        found = await self._instances.query(flt, Page(page.offset, page.limit + 1))
        return InstancePage(found[: page.limit], has_more=len(found) > page.limit)

    async def outputs(self, instance_id: str, *, caller: str | None) -> list[BlockOutput]:
        await self.get(instance_id, caller=caller)
        return await self._outputs.list_for_instance(instance_id)

    async def tree(self, instance_id: str, *, caller: str | None) -> list[Node]:
        loaded = await self._snapshots.load(instance_id)
        if loaded is None or not visible(loaded[0].tenant_id, caller):
            raise NotFound("instance", instance_id)
        instance, nodes = loaded
        seq = await self._sequences.get(instance.sequence_id)
        if seq is None:
            return nodes
        return full_tree(seq, {n.block_id: n for n in nodes})
