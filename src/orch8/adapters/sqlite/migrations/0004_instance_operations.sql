-- orch8 schema, version 4: instance operations.
--
-- Concurrency caps: the claim counts the running instances of each capped key
-- among its candidates; only running instances that carry a key sit in this index.
-- (Idempotency lookups use idx_task_instances_idempotency from version 1.)

CREATE INDEX idx_task_instances_running_key
    ON task_instances (concurrency_key)
    WHERE state = 'running' AND concurrency_key IS NOT NULL;
