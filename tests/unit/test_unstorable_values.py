"""A value the store cannot hold (UnstorableValue) is the caller's bad input: the use
cases that write caller-given values answer it as a ValidationError with the
store's own message, naming the part of the request that held it."""

from __future__ import annotations

from typing import Any, NoReturn

import pytest

from orch8.adapters.memory import MemoryStorage
from orch8.application.commands import NewInstance
from orch8.application.engine.task_bell import TaskBell
from orch8.application.errors import UnstorableValue
from orch8.application.ports.storage import SnapshotWrite
from orch8.application.use_cases.workers import WorkerService
from orch8.domain.context import ExecutionContext
from orch8.domain.errors import ValidationError
from orch8.domain.instance import InstanceState
from orch8.domain.tasks import WorkerTask
from tests.contract.builders import make_instance, make_sequence
from tests.unit.fakes import CountingIds, FakeClock, build_process

REFUSAL = "PostgreSQL cannot store this value: \\u0000 cannot be converted to text"


async def _refuse(*_: Any, **__: Any) -> NoReturn:
    raise UnstorableValue(REFUSAL)


async def test_creating_an_instance_refuses_it_as_the_body(monkeypatch: pytest.MonkeyPatch) -> None:
    storage = MemoryStorage()
    seq = make_sequence()
    await storage.sequences.create(seq)
    monkeypatch.setattr(storage.instances, "create", _refuse)
    service = build_process(storage, FakeClock(), CountingIds()).use_cases.instances
    with pytest.raises(ValidationError) as caught:
        await service.create(NewInstance(sequence_id=seq.id), caller=None)
    assert (caught.value.path, caught.value.message) == ("body", REFUSAL)


async def test_replacing_a_context_refuses_it_as_the_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    storage = MemoryStorage()
    seq = make_sequence()
    await storage.sequences.create(seq)
    inst = make_instance(seq)
    await storage.instances.create([inst])
    monkeypatch.setattr(storage.instances, "replace_context", _refuse)
    ops = build_process(storage, FakeClock(), CountingIds()).use_cases.instance_ops
    with pytest.raises(ValidationError) as caught:
        await ops.replace_context(inst.id, ExecutionContext(), caller=None)
    assert (caught.value.path, caught.value.message) == ("context", REFUSAL)


async def test_completing_a_task_refuses_it_as_the_output(monkeypatch: pytest.MonkeyPatch) -> None:
    storage, clock = MemoryStorage(), FakeClock()
    seq = make_sequence()
    await storage.sequences.create(seq)
    inst = make_instance(seq, state=InstanceState.RUNNING)
    await storage.instances.create([inst])
    task = WorkerTask(
        id="task-1",
        instance_id=inst.id,
        tenant_id=inst.tenant_id,
        block_id="charge",
        handler_name="email",
        attempt=1,
        created_at=clock.now(),
    )
    await storage.snapshots.commit(
        SnapshotWrite(
            inst.id, InstanceState.RUNNING, InstanceState.WAITING, None, clock.now(), tasks=(task,)
        )
    )
    [claimed] = await storage.tasks.poll("email", "w1", 1, clock.now())
    monkeypatch.setattr(storage.tasks, "complete", _refuse)
    service = WorkerService(storage.tasks, clock, TaskBell())
    with pytest.raises(ValidationError) as caught:
        await service.complete(claimed.id, "w1", claimed.claim_epoch, {"ok": 1}, caller=None)
    assert (caught.value.path, caught.value.message) == ("output", REFUSAL)
