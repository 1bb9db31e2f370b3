-- orch8 schema, version 9: tenant API keys.
--
-- A key is stored as the SHA-256 (hex) of its secret, never the secret; every
-- authenticated request looks its key up by that hash (the unique index), so
-- a revocation is seen at once by every process sharing the file.
-- `capabilities` is a JSON array of names; times are INTEGER microseconds.

CREATE TABLE api_keys (
    id            TEXT    PRIMARY KEY,
    tenant_id     TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    capabilities  TEXT    NOT NULL,
    key_hash      TEXT    NOT NULL UNIQUE,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    last_used_at  INTEGER,
    revoked_at    INTEGER
);

CREATE INDEX idx_api_keys_tenant ON api_keys (tenant_id, created_at, id);
