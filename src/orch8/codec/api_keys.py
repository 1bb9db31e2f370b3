"""The API key wire format, Orch8's (`orch8-api/src/api_keys.rs`).

`POST /api-keys` takes `{tenant_id, name?, capabilities?, expires_at?}`; it
answers the key with its one-time `secret`. Listings never carry the secret
or its hash. Capabilities are snake_case names; an unknown one is refused
(a typo never mints a key with other grants than meant).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orch8.application.use_cases.api_keys import MintedKey, NewApiKey
from orch8.codec.fields import obj, string
from orch8.codec.times import format_time, parse_time
from orch8.domain.api_keys import ApiKey, Capability
from orch8.domain.errors import ValidationError

_NAMES = ", ".join(c.value for c in Capability)


def _capabilities(data: Mapping[str, Any]) -> tuple[Capability, ...]:
    raw = data.get("capabilities")
    if raw is None:  # absent, or null: an optional field sent as null counts as absent
        return ()
    if not isinstance(raw, list):
        raise ValidationError("must be an array of capability names", path="capabilities")
    found = []
    for index, item in enumerate(raw):
        try:
            found.append(Capability(item))
        except ValueError:
            raise ValidationError(
                f"must be one of {_NAMES}", path=f"capabilities[{index}]"
            ) from None
    return tuple(found)


def new_api_key_from_json(value: object) -> NewApiKey:
    data = obj(value, "body")
    tenant_id = string(data, "tenant_id", "", required=True)
    assert tenant_id is not None
    expires = data.get("expires_at")
    return NewApiKey(
        tenant_id=tenant_id,
        name=string(data, "name", "") or "",
        capabilities=_capabilities(data),
        expires_at=None if expires is None else parse_time(expires, "expires_at"),
    )


def _capability_names(key: ApiKey) -> list[str]:
    return [c.value for c in key.capabilities]


def api_key_to_json(key: ApiKey) -> dict[str, Any]:
    """A listed key (Orch8's `ApiKeyInfo`): never the secret, never its hash."""
    return {
        "id": key.id,
        "tenant_id": key.tenant_id,
        "name": key.name,
        "capabilities": _capability_names(key),
        "created_at": format_time(key.created_at),
        "last_used_at": format_time(key.last_used_at),
        "expires_at": format_time(key.expires_at),
        "revoked": key.revoked,
    }


def minted_to_json(minted: MintedKey) -> dict[str, Any]:
    """A key just minted (Orch8's `CreatedApiKey`): the only answer with the secret."""
    key = minted.key
    return {
        "id": key.id,
        "tenant_id": key.tenant_id,
        "name": key.name,
        "capabilities": _capability_names(key),
        "secret": minted.secret,
        "created_at": format_time(key.created_at),
        "expires_at": format_time(key.expires_at),
    }
