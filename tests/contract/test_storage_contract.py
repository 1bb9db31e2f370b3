"""Storage-level contract (migrate, ping, close), run against every backend.

The per-port scenarios live beside this file: test_sequence_store.py,
test_instance_store.py, test_snapshot_store.py, test_api_key_store.py, and the model-based
test_storage_state_machine.py.
"""

from __future__ import annotations

from orch8.application.ports.storage import InstanceFilter, Page, SequenceFilter, Storage
from tests.contract.builders import make_sequence


async def test_a_migrated_storage_is_empty_and_ready(storage: Storage) -> None:
    await storage.ping()
    assert await storage.sequences.query(SequenceFilter(), Page()) == []
    assert await storage.instances.query(InstanceFilter(), Page()) == []
    assert await storage.instances.claim_due(make_sequence().created_at, 10) == []
    assert await storage.api_keys.list(None) == []


async def test_migrate_again_keeps_the_data(storage: Storage) -> None:
    seq = make_sequence()
    await storage.sequences.create(seq)
    await storage.migrate()
    await storage.migrate()
    assert await storage.sequences.get(seq.id) == seq
    await storage.ping()


async def test_close_is_idempotent(storage: Storage) -> None:
    await storage.close()
    await storage.close()
