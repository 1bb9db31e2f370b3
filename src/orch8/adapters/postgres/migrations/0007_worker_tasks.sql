-- orch8 schema for PostgreSQL, version 7: worker tasks and worker registrations.
--
-- A step whose handler lives in an external worker becomes a worker task,
-- inserted by the same statement as the snapshot write that parks the step
-- (`waiting`). One row per (instance, block, attempt); a repeat is ignored.
-- `state` is pending -> claimed -> completed | failed (or cancelled);
-- `claim_epoch` grows at every claim and fences workers that lost theirs.
-- Polls claim with FOR UPDATE SKIP LOCKED, so processes sharing the database
-- take disjoint tasks; inserting tasks sends NOTIFY orch8_tasks, '<handler>'.

CREATE TABLE worker_tasks (
    id               TEXT COLLATE "C"  PRIMARY KEY,
    instance_id      TEXT COLLATE "C"  NOT NULL REFERENCES task_instances (id) ON DELETE CASCADE,
    tenant_id        TEXT COLLATE "C"  NOT NULL,
    block_id         TEXT COLLATE "C"  NOT NULL,
    handler_name     TEXT COLLATE "C"  NOT NULL,
    queue_name       TEXT COLLATE "C",
    params           JSONB             NOT NULL,
    context          JSONB             NOT NULL,
    attempt          BIGINT            NOT NULL,
    timeout_ms       BIGINT,
    state            TEXT              NOT NULL,
    worker_id        TEXT COLLATE "C",
    claimed_at       TIMESTAMPTZ,
    heartbeat_at     TIMESTAMPTZ,
    claim_epoch      BIGINT            NOT NULL DEFAULT 0,
    output           JSONB,
    -- UTF-8 bytes: worker messages are arbitrary text, and PostgreSQL text cannot hold NUL.
    error_message    BYTEA,
    error_retryable  BOOLEAN,
    created_at       TIMESTAMPTZ       NOT NULL,
    completed_at     TIMESTAMPTZ,
    insert_order     BIGINT            GENERATED ALWAYS AS IDENTITY,
    CONSTRAINT worker_tasks_attempt_key UNIQUE (instance_id, block_id, attempt)
);

-- The poll: pending tasks of one handler in claim order (the ORDER BY's exact shape).
CREATE INDEX idx_worker_tasks_pending
    ON worker_tasks (handler_name, created_at, insert_order)
    WHERE state = 'pending';

-- The reaper: claimed tasks by last heartbeat (also what in-flight counts read).
CREATE INDEX idx_worker_tasks_claimed
    ON worker_tasks (heartbeat_at)
    WHERE state = 'claimed';

-- The timeout sweep: open tasks that have a timeout.
CREATE INDEX idx_worker_tasks_timeouts
    ON worker_tasks (created_at)
    WHERE state IN ('pending', 'claimed') AND timeout_ms IS NOT NULL;

-- Listing, newest first (all, and per tenant).
CREATE INDEX idx_worker_tasks_created
    ON worker_tasks (created_at DESC, insert_order DESC);

CREATE INDEX idx_worker_tasks_tenant
    ON worker_tasks (tenant_id, created_at DESC, insert_order DESC);

-- Who polls for what: one row per (worker, handler, tenant; '' when unscoped).
CREATE TABLE worker_registrations (
    worker_id     TEXT COLLATE "C"  NOT NULL,
    handler_name  TEXT COLLATE "C"  NOT NULL,
    tenant_id     TEXT COLLATE "C"  NOT NULL DEFAULT '',
    queue_name    TEXT COLLATE "C",
    last_seen_at  TIMESTAMPTZ       NOT NULL,
    PRIMARY KEY (worker_id, handler_name, tenant_id)
);
