"""API keys: authenticating a request's key, and minting, listing and revoking tenant keys.

With no root key configured, authentication is off: every request acts as the
root (its tenant, if any, from `x-tenant-id`), as Orch8's `--insecure` mode
does. With one, a request must present the root key (compared in constant
time) or an active tenant key, looked up in the store by the hash of its
secret on every request, so that a key revoked by any process is refused by
every process at once. Only the root may manage keys (Forbidden otherwise,
as Orch8 answers).
"""

from __future__ import annotations

import builtins
import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta

from attrs import frozen

from orch8.application.errors import Forbidden, NotFound, Unauthorized
from orch8.application.ports.clock import Clock, IdGenerator
from orch8.application.ports.storage import ApiKeyStore
from orch8.domain.api_keys import (
    DEFAULT_CAPABILITIES,
    KEY_ID_PREFIX,
    ROOT,
    SECRET_PREFIX,
    ApiKey,
    Capability,
    Principal,
    hash_secret,
)
from orch8.domain.errors import ValidationError

# A key's last_used_at is refreshed at most this often (one write per key per interval).
TOUCH_INTERVAL = timedelta(seconds=60)
MAX_NAME_LENGTH = 255
MISSING_KEY = "API key required: send it in the x-api-key header"
BAD_KEY = "invalid, expired or revoked API key"
ROOT_ONLY = "API key management requires the root API key"


def new_secret() -> str:
    """A fresh secret: `sk_` and 256 random bits in hex."""
    return SECRET_PREFIX + secrets.token_hex(32)


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


@frozen
class NewApiKey:
    """`POST /api-keys`: the tenant the key acts for, and optionally its label,
    capabilities (none: `operator`) and expiry."""

    tenant_id: str
    name: str = ""
    capabilities: tuple[Capability, ...] = ()
    expires_at: datetime | None = None


@frozen
class MintedKey:
    """A key just minted, with its secret: the only time the secret is known."""

    key: ApiKey
    secret: str


class ApiKeyService:
    def __init__(
        self,
        keys: ApiKeyStore,
        clock: Clock,
        ids: IdGenerator,
        *,
        root_key: str | None,
        make_secret: Callable[[], str] = new_secret,
    ) -> None:
        self._keys = keys
        self._clock = clock
        self._ids = ids
        self._root = _digest(root_key) if root_key else None
        self._make_secret = make_secret

    @property
    def enabled(self) -> bool:
        """Whether requests must present a key (a root key is configured)."""
        return self._root is not None

    async def authenticate(self, presented: str | None) -> Principal:
        """Who a request presenting `presented` (its x-api-key, None when absent) acts
        as; Unauthorized when authentication is on and the key is missing, unknown,
        expired or revoked."""
        if self._root is None:
            return ROOT
        if not presented:
            raise Unauthorized(MISSING_KEY)
        # Digests of equal length, compared in constant time: neither the root key's
        # content nor its length shows in the answer's timing.
        if hmac.compare_digest(_digest(presented), self._root):
            return ROOT
        if not presented.startswith(SECRET_PREFIX):
            raise Unauthorized(BAD_KEY)
        key = await self._keys.by_hash(hash_secret(presented))
        now = self._clock.now()
        if key is None or not key.active(now):
            raise Unauthorized(BAD_KEY)
        if key.last_used_at is None or now - key.last_used_at >= TOUCH_INTERVAL:
            await self._keys.touch(key.id, now, unless_after=now - TOUCH_INTERVAL)
        return Principal.of(key)

    async def mint(self, cmd: NewApiKey, *, principal: Principal) -> MintedKey:
        _require_root(principal)
        if not cmd.tenant_id.strip():
            raise ValidationError("must be a non-empty string", path="tenant_id")
        if len(cmd.name) > MAX_NAME_LENGTH:
            raise ValidationError(f"must be at most {MAX_NAME_LENGTH} characters", path="name")
        capabilities = tuple(dict.fromkeys(cmd.capabilities)) or DEFAULT_CAPABILITIES
        secret = self._make_secret()
        key = ApiKey(
            id=KEY_ID_PREFIX + self._ids.new_id().replace("-", ""),
            tenant_id=cmd.tenant_id,
            name=cmd.name,
            capabilities=capabilities,
            key_hash=hash_secret(secret),
            created_at=self._clock.now(),
            expires_at=cmd.expires_at,
        )
        await self._keys.create(key)
        return MintedKey(key, secret)

    async def list(self, tenant_id: str | None, *, principal: Principal) -> builtins.list[ApiKey]:
        """Every key (of `tenant_id` when given), oldest first, without secrets."""
        _require_root(principal)
        return await self._keys.list(tenant_id)

    async def revoke(self, key_id: str, *, principal: Principal) -> None:
        """Revoke at once: the next request with the key, to any process, is refused."""
        _require_root(principal)
        if not await self._keys.revoke(key_id, self._clock.now()):
            raise NotFound("api key", key_id)


def _require_root(principal: Principal) -> None:
    if not principal.is_root:
        raise Forbidden(ROOT_ONLY)
