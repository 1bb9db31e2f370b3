-- orch8 schema for PostgreSQL, version 1.
--
-- Times are timestamptz (microseconds, UTC on the wire); JSON documents are
-- JSONB. Identifiers and the text columns that lookups sort on use the "C"
-- collation, so ordering is by code point whatever the database's locale (the
-- same order as Python's and SQLite's). Every table carries tenant_id (and
-- namespace where the domain object has one) so tenancy filters never join.
--
-- `insert_order` identity columns record insertion order, which the ports use
-- to break ties (claim order, node order, output order), as SQLite's rowid does.

CREATE TABLE sequences (
    id          TEXT COLLATE "C"  PRIMARY KEY,
    tenant_id   TEXT COLLATE "C"  NOT NULL,
    namespace   TEXT COLLATE "C"  NOT NULL,
    name        TEXT COLLATE "C"  NOT NULL,
    version     BIGINT            NOT NULL,
    deprecated  BOOLEAN           NOT NULL DEFAULT FALSE,
    definition  JSONB             NOT NULL,
    created_at  TIMESTAMPTZ       NOT NULL,
    CONSTRAINT sequences_name_version_key UNIQUE (tenant_id, namespace, name, version)
);

CREATE INDEX idx_sequences_created ON sequences (created_at DESC, id DESC);

CREATE TABLE task_instances (
    id                  TEXT COLLATE "C"  PRIMARY KEY,
    sequence_id         TEXT COLLATE "C"  NOT NULL REFERENCES sequences (id),
    tenant_id           TEXT COLLATE "C"  NOT NULL,
    namespace           TEXT COLLATE "C"  NOT NULL,
    state               TEXT              NOT NULL,
    next_fire_at        TIMESTAMPTZ,
    priority            SMALLINT          NOT NULL,
    timezone            TEXT              NOT NULL,
    metadata            JSONB             NOT NULL,
    context             JSONB             NOT NULL,
    concurrency_key     TEXT,
    max_concurrency     BIGINT,
    idempotency_key     TEXT,
    parent_instance_id  TEXT,
    created_at          TIMESTAMPTZ       NOT NULL,
    updated_at          TIMESTAMPTZ       NOT NULL,
    insert_order        BIGINT            GENERATED ALWAYS AS IDENTITY
);

-- The claim: scheduled rows only, in exactly the claim's ORDER BY, so the claim
-- is an index scan that stops after `limit` due rows (FOR UPDATE SKIP LOCKED on top).
CREATE INDEX idx_task_instances_due
    ON task_instances (priority DESC, next_fire_at ASC NULLS FIRST, insert_order ASC)
    WHERE state = 'scheduled';

-- Stale-claim recovery: running rows by last heartbeat.
CREATE INDEX idx_task_instances_running
    ON task_instances (updated_at)
    WHERE state = 'running';

CREATE INDEX idx_task_instances_tenant_state
    ON task_instances (tenant_id, state, created_at DESC, id DESC);

CREATE INDEX idx_task_instances_created
    ON task_instances (created_at DESC, id DESC);

CREATE INDEX idx_task_instances_sequence
    ON task_instances (sequence_id, created_at DESC, id DESC);

CREATE UNIQUE INDEX idx_task_instances_idempotency
    ON task_instances (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE execution_tree (
    instance_id   TEXT COLLATE "C"  NOT NULL REFERENCES task_instances (id) ON DELETE CASCADE,
    tenant_id     TEXT COLLATE "C"  NOT NULL,
    block_id      TEXT COLLATE "C"  NOT NULL,
    block_type    TEXT              NOT NULL,
    parent_id     TEXT,
    branch_index  BIGINT,
    state         TEXT              NOT NULL,
    attempts      BIGINT            NOT NULL,
    not_before    TIMESTAMPTZ,
    started_at    TIMESTAMPTZ,
    completed_at  TIMESTAMPTZ,
    -- UTF-8 bytes: handler errors are arbitrary text, and PostgreSQL text cannot hold NUL.
    error         BYTEA,
    insert_order  BIGINT            GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (instance_id, block_id)
);

CREATE TABLE block_outputs (
    id            TEXT COLLATE "C"  PRIMARY KEY,
    instance_id   TEXT COLLATE "C"  NOT NULL REFERENCES task_instances (id) ON DELETE CASCADE,
    tenant_id     TEXT COLLATE "C"  NOT NULL,
    block_id      TEXT COLLATE "C"  NOT NULL,
    output        JSONB             NOT NULL,
    output_ref    TEXT,
    output_size   BIGINT            NOT NULL,
    attempt       BIGINT            NOT NULL,
    created_at    TIMESTAMPTZ       NOT NULL,
    insert_order  BIGINT            GENERATED ALWAYS AS IDENTITY
);

CREATE INDEX idx_block_outputs_instance
    ON block_outputs (instance_id, created_at, insert_order);
