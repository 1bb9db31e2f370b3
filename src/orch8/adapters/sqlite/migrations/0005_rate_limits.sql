-- orch8 schema, version 5: rate limits (an exact sliding log per key).
--
-- One row per configured (tenant, key). `window_seconds` is the value as given;
-- `window_us` is the same window to the microsecond, the one every decision uses.
-- Times are microseconds since the epoch, as everywhere in this schema.

CREATE TABLE rate_limits (
    tenant_id       TEXT    NOT NULL,
    resource_key    TEXT    NOT NULL,
    max_count       INTEGER NOT NULL CHECK (max_count > 0),
    window_seconds  REAL    NOT NULL CHECK (window_seconds > 0),
    window_us       INTEGER NOT NULL CHECK (window_us > 0),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, resource_key)
);

-- The admission log: one row per admitted use, pruned as new ones are recorded
-- (rows older than two windows go), so it holds about two windows per key.
CREATE TABLE rate_limit_admissions (
    tenant_id     TEXT    NOT NULL,
    resource_key  TEXT    NOT NULL,
    admitted_at   INTEGER NOT NULL
);

-- The newest admissions of a key (the window's count) and the oldest (pruning).
CREATE INDEX idx_rate_limit_admissions
    ON rate_limit_admissions (tenant_id, resource_key, admitted_at);
