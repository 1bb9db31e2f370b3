"""Starting instances and reading what they did."""

from __future__ import annotations

from attrs import frozen

from orch8.application.commands import NewInstance
from orch8.application.errors import NotFound
from orch8.application.ports.clock import Clock, IdGenerator
from orch8.application.ports.storage import InstanceFilter, Page, Storage
from orch8.application.use_cases.tenancy import effective_tenant, visible
from orch8.domain.errors import ValidationError
from orch8.domain.instance import Instance, InstanceState
from orch8.domain.outputs import BlockOutput
from orch8.domain.tree import Node
from orch8.domain.tree_view import full_tree


@frozen
class InstancePage:
    items: list[Instance]
    has_more: bool


@frozen
class Started:
    instance: Instance
    deduplicated: bool = False


class InstanceService:
    def __init__(self, storage: Storage, clock: Clock, ids: IdGenerator) -> None:
        self._storage = storage
        self._clock = clock
        self._ids = ids

    async def create(self, cmd: NewInstance, *, caller: str | None) -> Started:
        return (await self.create_many([cmd], caller=caller))[0]

    async def create_many(self, cmds: list[NewInstance], *, caller: str | None) -> list[Started]:
        now = self._clock.now()
        instances = []
        for index, cmd in enumerate(cmds):
            if cmd.tenant_id is not None:
                # Orch8 answers 403 when the body names another tenant than the header.
                effective_tenant(cmd.tenant_id, caller, default=None)
            seq = await self._storage.sequences.get(cmd.sequence_id)
            tenant = cmd.tenant_id or caller
            if (
                seq is None
                or not visible(seq.tenant_id, caller)
                or (tenant is not None and tenant != seq.tenant_id)
            ):
                raise NotFound("sequence", cmd.sequence_id)
            if cmd.namespace != seq.namespace and cmd.namespace != "default":
                where = "namespace" if len(cmds) == 1 else f"instances[{index}].namespace"
                raise ValidationError(f"sequence lives in namespace '{seq.namespace}'", path=where)
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
        await self._storage.instances.create(instances)
        return [Started(i) for i in instances]

    async def get(self, instance_id: str, *, caller: str | None) -> Instance:
        inst = await self._storage.instances.get(instance_id)
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
        found = await self._storage.instances.query(flt, Page(page.offset, page.limit + 1))
        return InstancePage(found[: page.limit], has_more=len(found) > page.limit)

    async def outputs(self, instance_id: str, *, caller: str | None) -> list[BlockOutput]:
        await self.get(instance_id, caller=caller)
        return await self._storage.outputs.list_for_instance(instance_id)

    async def tree(self, instance_id: str, *, caller: str | None) -> list[Node]:
        loaded = await self._storage.snapshots.load(instance_id)
        if loaded is None or not visible(loaded[0].tenant_id, caller):
            raise NotFound("instance", instance_id)
        instance, nodes = loaded
        seq = await self._storage.sequences.get(instance.sequence_id)
        if seq is None:
            return nodes
        return full_tree(seq, {n.block_id: n for n in nodes})
