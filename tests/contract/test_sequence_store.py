"""SequenceStore contract, run against every backend."""

from __future__ import annotations

import pytest

from orch8.application.errors import Conflict
from orch8.application.ports.storage import Page, SequenceFilter, Storage
from tests.contract.builders import at, make_instance, make_sequence


async def test_create_then_get_round_trips(storage: Storage) -> None:
    seq = make_sequence(deprecated=False)
    await storage.sequences.create(seq)
    assert await storage.sequences.get(seq.id) == seq


async def test_get_unknown_is_none(storage: Storage) -> None:
    assert await storage.sequences.get("nope") is None


async def test_duplicate_id_conflicts(storage: Storage) -> None:
    seq = make_sequence()
    await storage.sequences.create(seq)
    with pytest.raises(Conflict):
        await storage.sequences.create(make_sequence("other", id=seq.id))


async def test_duplicate_name_and_version_conflicts(storage: Storage) -> None:
    await storage.sequences.create(make_sequence("welcome", 1))
    with pytest.raises(Conflict):
        await storage.sequences.create(make_sequence("welcome", 1))


async def test_same_name_and_version_in_other_tenant_or_namespace_is_fine(
    storage: Storage,
) -> None:
    first = make_sequence("welcome", 1)
    other_tenant = make_sequence("welcome", 1, tenant_id="globex")
    other_namespace = make_sequence("welcome", 1, namespace="marketing")
    for seq in (first, other_tenant, other_namespace):
        await storage.sequences.create(seq)
    for seq in (first, other_tenant, other_namespace):
        assert await storage.sequences.get(seq.id) == seq


async def test_get_by_name_without_version_is_latest_non_deprecated(storage: Storage) -> None:
    v1 = make_sequence("welcome", 1)
    v2 = make_sequence("welcome", 2)
    v3 = make_sequence("welcome", 3, deprecated=True)
    for seq in (v2, v3, v1):
        await storage.sequences.create(seq)
    assert await storage.sequences.get_by_name("acme", "default", "welcome") == v2


async def test_get_by_name_with_version_returns_it_even_deprecated(storage: Storage) -> None:
    v1 = make_sequence("welcome", 1)
    v2 = make_sequence("welcome", 2, deprecated=True)
    await storage.sequences.create(v1)
    await storage.sequences.create(v2)
    assert await storage.sequences.get_by_name("acme", "default", "welcome", 2) == v2
    assert await storage.sequences.get_by_name("acme", "default", "welcome", 1) == v1
    assert await storage.sequences.get_by_name("acme", "default", "welcome", 9) is None


async def test_get_by_name_is_none_when_every_version_is_deprecated(storage: Storage) -> None:
    await storage.sequences.create(make_sequence("welcome", 1, deprecated=True))
    assert await storage.sequences.get_by_name("acme", "default", "welcome") is None


async def test_get_by_name_respects_tenant_and_namespace(storage: Storage) -> None:
    await storage.sequences.create(make_sequence("welcome", 1, tenant_id="globex"))
    await storage.sequences.create(make_sequence("welcome", 2, namespace="marketing"))
    assert await storage.sequences.get_by_name("acme", "default", "welcome") is None
    found = await storage.sequences.get_by_name("globex", "default", "welcome")
    assert found is not None
    assert found.version == 1


async def test_versions_are_highest_first_and_only_that_name(storage: Storage) -> None:
    seqs = [make_sequence("welcome", v, deprecated=v == 2) for v in (2, 5, 1)]
    for seq in seqs:
        await storage.sequences.create(seq)
    await storage.sequences.create(make_sequence("other", 3))
    await storage.sequences.create(make_sequence("welcome", 4, tenant_id="globex"))
    found = await storage.sequences.versions("acme", "default", "welcome")
    assert [s.version for s in found] == [5, 2, 1]
    assert found == sorted(seqs, key=lambda s: -s.version)


async def test_versions_of_unknown_name_is_empty(storage: Storage) -> None:
    assert await storage.sequences.versions("acme", "default", "nope") == []


async def test_query_filters(storage: Storage) -> None:
    a = make_sequence("a", tenant_id="acme", namespace="default", created_at=at(1))
    b = make_sequence("b", tenant_id="acme", namespace="ops", created_at=at(2))
    c = make_sequence("a", tenant_id="globex", namespace="default", created_at=at(3))
    for seq in (a, b, c):
        await storage.sequences.create(seq)
    query = storage.sequences.query
    assert await query(SequenceFilter(), Page()) == [c, b, a]
    assert await query(SequenceFilter(tenant_id="acme"), Page()) == [b, a]
    assert await query(SequenceFilter(namespace="default"), Page()) == [c, a]
    assert await query(SequenceFilter(name="a"), Page()) == [c, a]
    assert await query(SequenceFilter(tenant_id="acme", name="a"), Page()) == [a]
    assert await query(SequenceFilter(tenant_id="initech"), Page()) == []


async def test_query_orders_newest_first_then_id_descending_and_pages(storage: Storage) -> None:
    seqs = [make_sequence(f"s{i}", id=f"seq-{i:02d}", created_at=at(i // 2)) for i in range(7)]
    for seq in seqs:
        await storage.sequences.create(seq)
    expected = sorted(seqs, key=lambda s: (s.created_at, s.id), reverse=True)
    assert await storage.sequences.query(SequenceFilter(), Page()) == expected
    pages = [
        await storage.sequences.query(SequenceFilter(), Page(offset=o, limit=3))
        for o in (0, 3, 6, 9)
    ]
    assert pages == [expected[0:3], expected[3:6], expected[6:7], []]


async def test_deprecate(storage: Storage) -> None:
    seq = make_sequence()
    await storage.sequences.create(seq)
    assert await storage.sequences.deprecate(seq.id) is True
    found = await storage.sequences.get(seq.id)
    assert found is not None
    assert found.deprecated is True
    assert await storage.sequences.deprecate(seq.id) is True
    assert await storage.sequences.deprecate("nope") is False


async def test_delete(storage: Storage) -> None:
    seq = make_sequence()
    await storage.sequences.create(seq)
    assert await storage.sequences.delete(seq.id) is True
    assert await storage.sequences.get(seq.id) is None
    assert await storage.sequences.delete(seq.id) is False
    await storage.sequences.create(make_sequence(seq.name, seq.version))


async def test_delete_conflicts_while_instances_use_it(storage: Storage) -> None:
    seq = make_sequence()
    await storage.sequences.create(seq)
    await storage.instances.create([make_instance(seq)])
    with pytest.raises(Conflict):
        await storage.sequences.delete(seq.id)
    assert await storage.sequences.get(seq.id) == seq
