"""ApiKeyService on a simulated clock, the startup exposure check, and the settings."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from orch8.adapters.memory import MemoryStorage
from orch8.application.errors import Forbidden, NotFound, Unauthorized
from orch8.application.use_cases.api_keys import ApiKeyService, NewApiKey, new_secret
from orch8.bootstrap.settings import Settings, load_settings
from orch8.domain.api_keys import ROOT, Capability, Principal, hash_secret
from orch8.domain.errors import ValidationError
from orch8.entrypoints.http.auth import allows
from orch8.entrypoints.serve import check_exposure, is_loopback
from tests.unit.fakes import CountingIds, FakeClock

ROOT_KEY = "the-root-key"


def service(root_key: str | None = ROOT_KEY) -> tuple[ApiKeyService, MemoryStorage, FakeClock]:
    storage = MemoryStorage()
    clock = FakeClock()
    return ApiKeyService(storage.api_keys, clock, CountingIds(), root_key=root_key), storage, clock


async def test_without_a_root_key_everyone_is_root() -> None:
    keys, _, _ = service(None)
    assert not keys.enabled
    assert await keys.authenticate(None) == ROOT
    assert await keys.authenticate("anything") == ROOT


async def test_the_root_key_and_nothing_like_it() -> None:
    keys, _, _ = service()
    assert keys.enabled
    assert await keys.authenticate(ROOT_KEY) == ROOT
    for wrong in (None, "", ROOT_KEY + "x", ROOT_KEY[:-1], ROOT_KEY.upper(), "sk_" + ROOT_KEY):
        with pytest.raises(Unauthorized):
            await keys.authenticate(wrong)


async def test_a_tenant_key_until_it_expires() -> None:
    keys, _, clock = service()
    expires = clock.now() + timedelta(hours=1)
    minted = await keys.mint(
        NewApiKey("acme", "ci", (Capability.WORKER, Capability.WORKER), expires), principal=ROOT
    )
    assert minted.key.capabilities == (Capability.WORKER,)
    assert minted.key.key_hash == hash_secret(minted.secret)
    principal = await keys.authenticate(minted.secret)
    assert principal == Principal("acme", minted.key.id, (Capability.WORKER,))
    assert not principal.is_root
    clock.current = expires - timedelta(microseconds=1)
    assert await keys.authenticate(minted.secret) == principal
    clock.current = expires
    with pytest.raises(Unauthorized, match="expired"):
        await keys.authenticate(minted.secret)


async def last_used(storage: MemoryStorage, key_id: str) -> datetime | None:
    key = await storage.api_keys.get(key_id)
    assert key is not None
    return key.last_used_at


async def test_last_used_is_written_at_most_once_a_minute() -> None:
    keys, storage, clock = service()
    minted = await keys.mint(NewApiKey("acme"), principal=ROOT)
    assert minted.key.capabilities == (Capability.OPERATOR,)
    first = clock.now()
    await keys.authenticate(minted.secret)
    clock.advance(seconds=59)
    await keys.authenticate(minted.secret)
    assert await last_used(storage, minted.key.id) == first
    clock.advance(seconds=1)
    await keys.authenticate(minted.secret)
    assert await last_used(storage, minted.key.id) == clock.now()


async def test_only_the_root_manages_keys() -> None:
    keys, _, _ = service()
    minted = await keys.mint(NewApiKey("acme"), principal=ROOT)
    tenant = await keys.authenticate(minted.secret)
    with pytest.raises(Forbidden, match="root API key"):
        await keys.mint(NewApiKey("acme"), principal=tenant)
    with pytest.raises(Forbidden):
        await keys.list(None, principal=tenant)
    with pytest.raises(Forbidden):
        await keys.revoke(minted.key.id, principal=tenant)
    await keys.revoke(minted.key.id, principal=ROOT)
    with pytest.raises(Unauthorized):
        await keys.authenticate(minted.secret)
    with pytest.raises(NotFound):
        await keys.revoke("ak_nobody", principal=ROOT)


def test_secrets_are_fresh_and_long() -> None:
    made = {new_secret() for _ in range(100)}
    assert len(made) == 100
    assert all(s.startswith("sk_") and len(s) == 3 + 64 for s in made)


def test_capabilities_open_orch8s_route_families() -> None:
    worker = (Capability.WORKER,)
    assert allows(worker, "POST", "/api/v1/workers/tasks/poll")
    assert allows(worker, "GET", "/workers")
    assert not allows(worker, "GET", "/api/v1/instances")
    approver = (Capability.APPROVER,)
    assert allows(approver, "POST", "/api/v1/instances/x/signals")
    assert allows(approver, "GET", "/approvals")
    assert not allows(approver, "GET", "/api/v1/instances/x")
    assert allows((Capability.AUDITOR,), "GET", "/api/v1/cron")
    assert not allows((Capability.AUDITOR,), "DELETE", "/api/v1/cron/x")
    assert allows((Capability.PUBLISHER,), "POST", "/sequences")
    assert not allows((Capability.DEVICE,), "POST", "/sequences")
    assert allows((Capability.OPERATOR,), "DELETE", "/api/v1/rate-limits/k")
    assert not allows((), "GET", "/api/v1/sequences")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "localhost", "LocalHost"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("addr", ["0.0.0.0:8080", "[::]:8080", "10.1.2.3:80", "orch8.internal:80"])
def test_serving_beyond_loopback_needs_a_key_or_insecure(addr: str) -> None:
    with pytest.raises(ValidationError) as caught:
        check_exposure(Settings(http_addr=addr))
    message = str(caught.value)
    assert "ORCH8_API_KEY" in message
    assert "ORCH8_INSECURE" in message
    check_exposure(Settings(http_addr=addr, api_key="k"))
    check_exposure(Settings(http_addr=addr, insecure=True))


@pytest.mark.parametrize("addr", ["127.0.0.1:8080", "[::1]:8080", "localhost:8080", ":8080"])
def test_loopback_needs_nothing(addr: str) -> None:
    check_exposure(Settings(http_addr=addr))


def test_insecure_and_api_key_settings() -> None:
    assert load_settings(env={}).insecure is False
    assert load_settings(env={}).api_key is None
    settings = load_settings(env={"ORCH8_INSECURE": "true", "ORCH8_API_KEY": "k"})
    assert (settings.insecure, settings.api_key) == (True, "k")
    assert load_settings(env={"ORCH8_API_KEY": ""}).api_key is None
    with pytest.raises(ValidationError, match="ORCH8_INSECURE"):
        load_settings(env={"ORCH8_INSECURE": "maybe"})
