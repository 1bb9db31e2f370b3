-- orch8 schema for PostgreSQL, version 5: rate limits (an exact sliding log per key).
--
-- One row per configured (tenant, key). `window_seconds` is the value as given;
-- `window_us` is the same window to the microsecond, the one every decision uses.

CREATE TABLE rate_limits (
    tenant_id       TEXT             NOT NULL,
    resource_key    TEXT             NOT NULL,
    max_count       INTEGER          NOT NULL CHECK (max_count > 0),
    window_seconds  DOUBLE PRECISION NOT NULL CHECK (window_seconds > 0),
    window_us       BIGINT           NOT NULL CHECK (window_us > 0),
    created_at      TIMESTAMPTZ      NOT NULL,
    updated_at      TIMESTAMPTZ      NOT NULL,
    PRIMARY KEY (tenant_id, resource_key)
);

-- The admission log: one row per admitted use, pruned as new ones are recorded
-- (rows older than `p_kept` windows go), so it holds about two windows per key.
CREATE TABLE rate_limit_admissions (
    tenant_id     TEXT        NOT NULL,
    resource_key  TEXT        NOT NULL,
    admitted_at   TIMESTAMPTZ NOT NULL
);

-- The newest admissions of a key (the window's count) and the oldest (pruning).
CREATE INDEX idx_rate_limit_admissions
    ON rate_limit_admissions (tenant_id, resource_key, admitted_at);

-- Admit one use of a key at p_now, or return when it will be admitted (NULL:
-- admitted, or no limit configured). One call is one round trip and one short
-- transaction. The limit row's lock (FOR UPDATE) serialises the uses of a key
-- across every connection; each later statement of a PL/pgSQL function takes a
-- fresh snapshot, so once the lock is held the count sees every admission
-- committed by the previous holder. (A single plain statement could not: its
-- one snapshot predates the wait for the lock.)
CREATE FUNCTION orch8_rate_limit_acquire(
    p_tenant TEXT, p_key TEXT, p_now TIMESTAMPTZ, p_kept INTEGER
) RETURNS TIMESTAMPTZ
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_max     INTEGER;
    v_window  INTERVAL;
    v_full    TIMESTAMPTZ;
BEGIN
    SELECT max_count, window_us * INTERVAL '1 microsecond'
    INTO v_max, v_window
    FROM rate_limits
    WHERE tenant_id = p_tenant AND resource_key = p_key
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    -- The max_count-th newest admission in the window: while it exists the
    -- window is full, until it leaves at its instant + window.
    SELECT admitted_at INTO v_full
    FROM rate_limit_admissions
    WHERE tenant_id = p_tenant AND resource_key = p_key AND admitted_at > p_now - v_window
    ORDER BY admitted_at DESC
    OFFSET v_max - 1 LIMIT 1;
    IF FOUND THEN
        RETURN v_full + v_window;
    END IF;
    INSERT INTO rate_limit_admissions (tenant_id, resource_key, admitted_at)
    VALUES (p_tenant, p_key, p_now);
    DELETE FROM rate_limit_admissions
    WHERE tenant_id = p_tenant AND resource_key = p_key
      AND admitted_at <= p_now - p_kept * v_window;
    RETURN NULL;
END
$$;
