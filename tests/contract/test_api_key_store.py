"""ApiKeyStore contract, run against every backend."""

from __future__ import annotations

from typing import Any

import pytest
from attrs import evolve

from orch8.application.errors import Conflict
from orch8.application.ports.storage import Storage
from orch8.domain.api_keys import ApiKey, Capability, hash_secret
from tests.contract.builders import at, new_id


def make_key(tenant_id: str = "acme", **fields: Any) -> ApiKey:
    key_id = fields.pop("id", None) or "ak_" + new_id("k").replace("-", "")
    values: dict[str, Any] = {
        "id": key_id,
        "tenant_id": tenant_id,
        "name": "ci",
        "capabilities": (Capability.OPERATOR,),
        "key_hash": hash_secret("sk_" + key_id),
        "created_at": at(0),
        **fields,
    }
    return ApiKey(**values)


async def test_create_then_read_by_hash_and_id_round_trips(storage: Storage) -> None:
    key = make_key(
        capabilities=(Capability.WORKER, Capability.AUDITOR),
        created_at=at(1.000001),
        expires_at=at(3600.5),
    )
    await storage.api_keys.create(key)
    assert await storage.api_keys.by_hash(key.key_hash) == key
    assert await storage.api_keys.get(key.id) == key


async def test_unknown_hash_and_id_are_none(storage: Storage) -> None:
    assert await storage.api_keys.by_hash(hash_secret("sk_nobody")) is None
    assert await storage.api_keys.get("ak_nobody") is None


async def test_duplicate_id_or_hash_conflicts(storage: Storage) -> None:
    key = make_key()
    await storage.api_keys.create(key)
    with pytest.raises(Conflict):
        await storage.api_keys.create(evolve(key, key_hash=hash_secret("sk_other")))
    with pytest.raises(Conflict):
        await storage.api_keys.create(evolve(key, id="ak_other"))
    assert await storage.api_keys.list(None) == [key]


async def test_list_is_oldest_first_and_filters_by_tenant(storage: Storage) -> None:
    late = make_key(created_at=at(20))
    early = make_key(created_at=at(10))
    other = make_key("globex", created_at=at(15))
    for key in (late, other, early):
        await storage.api_keys.create(key)
    assert await storage.api_keys.list("acme") == [early, late]
    assert await storage.api_keys.list("globex") == [other]
    assert await storage.api_keys.list("nobody") == []
    assert await storage.api_keys.list(None) == [early, other, late]


async def test_revoke_marks_the_key_once_and_unknown_is_false(storage: Storage) -> None:
    key = make_key()
    await storage.api_keys.create(key)
    assert await storage.api_keys.revoke(key.id, at(30)) is True
    revoked = await storage.api_keys.by_hash(key.key_hash)
    assert revoked == evolve(key, revoked_at=at(30))
    assert revoked is not None
    assert revoked.revoked
    assert not revoked.active(at(31))
    # Revoking again keeps the first instant.
    assert await storage.api_keys.revoke(key.id, at(40)) is True
    assert await storage.api_keys.get(key.id) == evolve(key, revoked_at=at(30))
    assert await storage.api_keys.revoke("ak_nobody", at(40)) is False


async def test_touch_sets_last_used_unless_recent(storage: Storage) -> None:
    key = make_key()
    await storage.api_keys.create(key)
    await storage.api_keys.touch(key.id, at(100), unless_after=at(40))
    assert (await storage.api_keys.get(key.id)) == evolve(key, last_used_at=at(100))
    # Used at 100, later than 90: left alone.
    await storage.api_keys.touch(key.id, at(150), unless_after=at(90))
    assert (await storage.api_keys.get(key.id)) == evolve(key, last_used_at=at(100))
    await storage.api_keys.touch(key.id, at(170), unless_after=at(110))
    assert (await storage.api_keys.get(key.id)) == evolve(key, last_used_at=at(170))
    await storage.api_keys.touch("ak_nobody", at(170), unless_after=at(110))


async def test_a_revocation_is_seen_at_once_by_another_process(
    two_stores: tuple[Storage, Storage],
) -> None:
    first, second = two_stores
    key = make_key()
    await first.api_keys.create(key)
    seen = await second.api_keys.by_hash(key.key_hash)
    assert seen is not None
    assert seen.active(at(1))
    assert await second.api_keys.revoke(key.id, at(5))
    after = await first.api_keys.by_hash(key.key_hash)
    assert after is not None
    assert not after.active(at(6))
