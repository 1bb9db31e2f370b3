-- orch8 schema, version 1.
--
-- Times are INTEGER microseconds since the Unix epoch (UTC): ordering and the
-- claim comparison are integer comparisons, and no text format can drift.
-- JSON documents are TEXT. Every table carries tenant_id (and namespace where
-- the domain object has one) so tenancy filters never need a join.

CREATE TABLE sequences (
    id          TEXT    PRIMARY KEY,
    tenant_id   TEXT    NOT NULL,
    namespace   TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    deprecated  INTEGER NOT NULL DEFAULT 0,
    definition  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (tenant_id, namespace, name, version)
);

CREATE TABLE task_instances (
    id                  TEXT    PRIMARY KEY,
    sequence_id         TEXT    NOT NULL REFERENCES sequences (id),
    tenant_id           TEXT    NOT NULL,
    namespace           TEXT    NOT NULL,
    state               TEXT    NOT NULL,
    next_fire_at        INTEGER,
    priority            INTEGER NOT NULL,
    timezone            TEXT    NOT NULL,
    metadata            TEXT    NOT NULL,
    context             TEXT    NOT NULL,
    concurrency_key     TEXT,
    max_concurrency     INTEGER,
    idempotency_key     TEXT,
    parent_instance_id  TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);

-- The claim: scheduled rows only, in claim order, so the scan stops after `limit` due rows.
CREATE INDEX idx_task_instances_due
    ON task_instances (priority DESC, next_fire_at)
    WHERE state = 'scheduled';

-- Stale-claim recovery: running rows by last heartbeat.
CREATE INDEX idx_task_instances_running
    ON task_instances (updated_at)
    WHERE state = 'running';

CREATE INDEX idx_task_instances_tenant_state
    ON task_instances (tenant_id, state, created_at);

CREATE INDEX idx_task_instances_sequence
    ON task_instances (sequence_id, created_at);

CREATE UNIQUE INDEX idx_task_instances_idempotency
    ON task_instances (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE execution_tree (
    instance_id   TEXT    NOT NULL REFERENCES task_instances (id) ON DELETE CASCADE,
    tenant_id     TEXT    NOT NULL,
    block_id      TEXT    NOT NULL,
    block_type    TEXT    NOT NULL,
    parent_id     TEXT,
    branch_index  INTEGER,
    state         TEXT    NOT NULL,
    attempts      INTEGER NOT NULL,
    not_before    INTEGER,
    started_at    INTEGER,
    completed_at  INTEGER,
    error         TEXT,
    PRIMARY KEY (instance_id, block_id)
);

CREATE TABLE block_outputs (
    id           TEXT    PRIMARY KEY,
    instance_id  TEXT    NOT NULL REFERENCES task_instances (id) ON DELETE CASCADE,
    tenant_id    TEXT    NOT NULL,
    block_id     TEXT    NOT NULL,
    output       TEXT    NOT NULL,
    output_ref   TEXT,
    output_size  INTEGER NOT NULL,
    attempt      INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
);

CREATE INDEX idx_block_outputs_instance
    ON block_outputs (instance_id, created_at);
