"""`has_due_higher_priority`: the probe behind cooperative preemption."""

from __future__ import annotations

from orch8.application.ports.storage import Storage
from orch8.domain.instance import InstanceState, Priority
from tests.contract.builders import T0, at, make_instance, make_sequence


async def test_only_due_scheduled_instances_of_a_higher_priority_count(storage: Storage) -> None:
    seq = make_sequence()
    await storage.sequences.create(seq)
    await storage.instances.create(
        [
            make_instance(seq, priority=Priority.CRITICAL, next_fire_at=at(60)),  # not due
            make_instance(seq, priority=Priority.CRITICAL, state=InstanceState.PAUSED),
            make_instance(seq, priority=Priority.NORMAL, next_fire_at=T0),  # not higher
        ]
    )
    assert not await storage.instances.has_due_higher_priority(Priority.NORMAL, T0)
    assert await storage.instances.has_due_higher_priority(Priority.LOW, T0)
    assert await storage.instances.has_due_higher_priority(Priority.NORMAL, at(61))
    assert not await storage.instances.has_due_higher_priority(Priority.CRITICAL, at(61))
