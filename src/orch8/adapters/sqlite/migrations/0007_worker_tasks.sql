-- orch8 schema, version 7: worker tasks and worker registrations.
--
-- A step whose handler lives in an external worker becomes a worker task,
-- inserted in the same transaction as the snapshot write that parks the step
-- (`waiting`). One row per (instance, block, attempt); a repeat is ignored.
-- `state` is pending -> claimed -> completed | failed (or cancelled);
-- `claim_epoch` grows at every claim and fences workers that lost theirs.
-- Times are INTEGER microseconds since the epoch; params, context and output
-- are JSON text. The implicit rowid breaks created_at ties (insertion order).

CREATE TABLE worker_tasks (
    id               TEXT    PRIMARY KEY,
    instance_id      TEXT    NOT NULL REFERENCES task_instances (id) ON DELETE CASCADE,
    tenant_id        TEXT    NOT NULL,
    block_id         TEXT    NOT NULL,
    handler_name     TEXT    NOT NULL,
    queue_name       TEXT,
    params           TEXT    NOT NULL,
    context          TEXT    NOT NULL,
    attempt          INTEGER NOT NULL,
    timeout_ms       INTEGER,
    state            TEXT    NOT NULL,
    worker_id        TEXT,
    claimed_at       INTEGER,
    heartbeat_at     INTEGER,
    claim_epoch      INTEGER NOT NULL DEFAULT 0,
    output           TEXT,
    error_message    TEXT,
    error_retryable  INTEGER,
    created_at       INTEGER NOT NULL,
    completed_at     INTEGER,
    UNIQUE (instance_id, block_id, attempt)
);

-- The poll: pending tasks of one handler, oldest first (then rowid).
CREATE INDEX idx_worker_tasks_pending
    ON worker_tasks (handler_name, created_at)
    WHERE state = 'pending';

-- The reaper: claimed tasks by last heartbeat (also what in-flight counts read).
CREATE INDEX idx_worker_tasks_claimed
    ON worker_tasks (heartbeat_at)
    WHERE state = 'claimed';

-- The timeout sweep: open tasks that have a timeout.
CREATE INDEX idx_worker_tasks_timeouts
    ON worker_tasks (created_at)
    WHERE state IN ('pending', 'claimed') AND timeout_ms IS NOT NULL;

-- Listing, newest first, per tenant.
CREATE INDEX idx_worker_tasks_tenant
    ON worker_tasks (tenant_id, created_at);

-- Who polls for what: one row per (worker, handler, tenant; '' when unscoped).
CREATE TABLE worker_registrations (
    worker_id     TEXT    NOT NULL,
    handler_name  TEXT    NOT NULL,
    tenant_id     TEXT    NOT NULL DEFAULT '',
    queue_name    TEXT,
    last_seen_at  INTEGER NOT NULL,
    PRIMARY KEY (worker_id, handler_name, tenant_id)
);
