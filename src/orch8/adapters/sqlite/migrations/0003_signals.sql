-- orch8 schema, version 3: the signal inbox.
--
-- A signal is stored atomically with a check of its instance and delivered in
-- enqueue order, exactly once: the snapshot write that acts on it stamps
-- `delivered_at` in the same transaction. The implicit rowid is the enqueue
-- order that breaks created_at ties. `payload` is JSON text.

CREATE TABLE signal_inbox (
    id            TEXT    PRIMARY KEY,
    instance_id   TEXT    NOT NULL REFERENCES task_instances (id) ON DELETE CASCADE,
    tenant_id     TEXT    NOT NULL,
    kind          TEXT    NOT NULL,
    name          TEXT,
    payload       TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    delivered_at  INTEGER
);

-- What an instance has still to act on: only undelivered signals sit in this
-- index, in delivery order (created_at, then the implicit trailing rowid).
CREATE INDEX idx_signal_inbox_pending
    ON signal_inbox (instance_id, created_at)
    WHERE delivered_at IS NULL;

-- The sweep that wakes waits whose timeout has come (wake_due_waiting): only
-- waiting instances with a deadline sit in this index.
CREATE INDEX idx_task_instances_waiting_due
    ON task_instances (next_fire_at)
    WHERE state = 'waiting' AND next_fire_at IS NOT NULL;
