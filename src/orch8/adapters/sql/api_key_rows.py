"""Row <-> domain conversions for API keys.

The columns match in the two schemas; capabilities are a JSON array of names
(TEXT in both: they are read with the key, never queried), and times are
stored as `Values` says.
"""

from __future__ import annotations

import json
from typing import Any

from attrs import frozen

from orch8.adapters.sql.rows import Row
from orch8.adapters.sql.values import Values, dump_json
from orch8.domain.api_keys import ApiKey, Capability


@frozen
class ApiKeyRows:
    """The API key mappers of one dialect."""

    values: Values

    def key_params(self, key: ApiKey) -> tuple[Any, ...]:
        """api_keys columns id .. revoked_at, in table order (`columns.API_KEY`)."""
        v = self.values
        return (
            key.id,
            key.tenant_id,
            key.name,
            dump_json([c.value for c in key.capabilities]),
            key.key_hash,
            v.time(key.created_at),
            v.time_or_none(key.expires_at),
            v.time_or_none(key.last_used_at),
            v.time_or_none(key.revoked_at),
        )

    def key_from_row(self, row: Row) -> ApiKey:
        """The same columns as `key_params`, in its order."""
        (
            key_id,
            tenant_id,
            name,
            capabilities,
            key_hash,
            created_at,
            expires_at,
            last_used_at,
            revoked_at,
        ) = row
        v = self.values
        return ApiKey(
            id=key_id,
            tenant_id=tenant_id,
            name=name,
            capabilities=tuple(Capability(c) for c in json.loads(capabilities)),
            key_hash=key_hash,
            created_at=v.read_time(created_at),
            expires_at=v.read_time_or_none(expires_at),
            last_used_at=v.read_time_or_none(last_used_at),
            revoked_at=v.read_time_or_none(revoked_at),
        )
