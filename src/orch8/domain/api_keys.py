"""API keys and the principal a request acts as.

A request proves who it is with the `x-api-key` header. The root key (the
`api_key` setting) is unscoped: it may act for any tenant (named by
`x-tenant-id`) and is the only key that manages other keys. A tenant key is
minted by the root key, bound to one tenant, and stored only as the SHA-256 of
its secret: the secret is shown once, when minted. A request made with a
tenant key acts for that tenant whatever the request names.

Capabilities narrow what a tenant key may call, as Orch8's do: `operator` is
the whole tenant API; the others each open one family of routes (which ones is
the HTTP entrypoint's table).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import Enum

from attrs import frozen

SECRET_PREFIX = "sk_"  # noqa: S105 - the prefix every secret starts with, not a secret
KEY_ID_PREFIX = "ak_"


class Capability(Enum):
    OPERATOR = "operator"
    WORKER = "worker"
    DEVICE = "device"
    PUBLISHER = "publisher"
    APPROVER = "approver"
    AUDITOR = "auditor"


# What a key minted without capabilities may do (Orch8's default).
DEFAULT_CAPABILITIES = (Capability.OPERATOR,)


def hash_secret(secret: str) -> str:
    """The stored form of a secret: lowercase hex SHA-256 of its UTF-8 bytes.

    A fast hash is enough: secrets are 256 random bits, not passwords, so there
    is nothing to guess; the hash is also the lookup key.
    """
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@frozen
class ApiKey:
    """A stored tenant key: everything but its secret."""

    id: str
    tenant_id: str
    name: str
    capabilities: tuple[Capability, ...]
    key_hash: str
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def active(self, now: datetime) -> bool:
        """Whether the key may authenticate at `now`: not revoked, not expired."""
        return not self.revoked and (self.expires_at is None or now < self.expires_at)


@frozen
class Principal:
    """Who a request acts as: the root (`tenant_id` None: any tenant, key
    management) or one tenant key (its tenant, id and capabilities)."""

    tenant_id: str | None = None
    key_id: str | None = None
    capabilities: tuple[Capability, ...] = ()

    @property
    def is_root(self) -> bool:
        return self.tenant_id is None

    @staticmethod
    def of(key: ApiKey) -> Principal:
        return Principal(key.tenant_id, key.id, key.capabilities)


ROOT = Principal()
