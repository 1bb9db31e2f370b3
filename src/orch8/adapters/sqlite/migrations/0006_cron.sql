-- orch8 schema, version 6: cron schedules.
--
-- A schedule fires its `next_fire_at` occurrence once: `claim_due` holds a due
-- schedule (`held_until`, so no other claimer takes it) while its holder fires
-- and settles it; a holder that dies lets the hold lapse and the next one fires
-- the same occurrence (the instance's idempotency key makes that a no-op).

CREATE TABLE cron_schedules (
    id                 TEXT    PRIMARY KEY,
    tenant_id          TEXT    NOT NULL,
    namespace          TEXT    NOT NULL,
    sequence_id        TEXT    NOT NULL,
    cron_expr          TEXT    NOT NULL,
    timezone           TEXT    NOT NULL,
    metadata           TEXT    NOT NULL,
    enabled            INTEGER NOT NULL,
    overlap_policy     TEXT    NOT NULL,
    next_fire_at       INTEGER,
    last_triggered_at  INTEGER,
    skipped_fires      INTEGER NOT NULL DEFAULT 0,
    last_skipped_at    INTEGER,
    held_until         INTEGER,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
);

-- The claim: enabled schedules by fire time.
CREATE INDEX idx_cron_schedules_due
    ON cron_schedules (next_fire_at)
    WHERE enabled = 1;

CREATE INDEX idx_cron_schedules_tenant
    ON cron_schedules (tenant_id, created_at);

-- Overlap policies look up a schedule's runs still going; only instances a
-- schedule started sit in this index.
CREATE INDEX idx_task_instances_cron
    ON task_instances (json_extract(metadata, '$.cron_schedule_id'), tenant_id)
    WHERE json_extract(metadata, '$.cron_schedule_id') IS NOT NULL;
