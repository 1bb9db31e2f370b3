-- orch8 schema for PostgreSQL, version 6: cron schedules.
--
-- A schedule fires its `next_fire_at` occurrence once: `claim_due` takes due
-- schedules with FOR UPDATE SKIP LOCKED and, in the same statement, holds them
-- (`held_until`) while their holder fires and settles them; a holder that dies
-- lets the hold lapse and the next one fires the same occurrence (the
-- instance's idempotency key makes that a no-op).

CREATE TABLE cron_schedules (
    id                 TEXT COLLATE "C"  PRIMARY KEY,
    tenant_id          TEXT COLLATE "C"  NOT NULL,
    namespace          TEXT COLLATE "C"  NOT NULL,
    sequence_id        TEXT COLLATE "C"  NOT NULL,
    cron_expr          TEXT              NOT NULL,
    timezone           TEXT              NOT NULL,
    metadata           JSONB             NOT NULL,
    enabled            BOOLEAN           NOT NULL,
    overlap_policy     TEXT              NOT NULL,
    next_fire_at       TIMESTAMPTZ,
    last_triggered_at  TIMESTAMPTZ,
    skipped_fires      BIGINT            NOT NULL DEFAULT 0,
    last_skipped_at    TIMESTAMPTZ,
    held_until         TIMESTAMPTZ,
    created_at         TIMESTAMPTZ       NOT NULL,
    updated_at         TIMESTAMPTZ       NOT NULL
);

-- The claim: enabled schedules by fire time.
CREATE INDEX idx_cron_schedules_due
    ON cron_schedules (next_fire_at, id)
    WHERE enabled;

CREATE INDEX idx_cron_schedules_tenant
    ON cron_schedules (tenant_id, created_at, id);

-- Overlap policies look up a schedule's runs still going; only instances a
-- schedule started sit in this index.
CREATE INDEX idx_task_instances_cron
    ON task_instances ((metadata ->> 'cron_schedule_id'), tenant_id)
    WHERE (metadata ->> 'cron_schedule_id') IS NOT NULL;
