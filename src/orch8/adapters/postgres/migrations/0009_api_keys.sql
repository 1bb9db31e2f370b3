-- orch8 schema for PostgreSQL, version 9: tenant API keys.
--
-- A key is stored as the SHA-256 (hex) of its secret, never the secret; every
-- authenticated request looks its key up by that hash (the unique index), so
-- a revocation committed by one process is seen by the next request to any
-- process. `capabilities` is a JSON array of names, read with the key and
-- never queried, so plain text.

CREATE TABLE api_keys (
    id            TEXT COLLATE "C"  PRIMARY KEY,
    tenant_id     TEXT COLLATE "C"  NOT NULL,
    name          TEXT              NOT NULL,
    capabilities  TEXT              NOT NULL,
    key_hash      TEXT COLLATE "C"  NOT NULL UNIQUE,
    created_at    TIMESTAMPTZ       NOT NULL,
    expires_at    TIMESTAMPTZ,
    last_used_at  TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ
);

CREATE INDEX idx_api_keys_tenant ON api_keys (tenant_id, created_at, id);
