-- orch8 schema, version 2: progress of composite blocks, and sub_sequence children.
--
-- A node keeps a loop's or for_each's count in `iteration`, the chosen route,
-- variant or phase in `branch`, and in `ref` what a waiting node waits for (a
-- child instance's id). Existing nodes read as iteration 0, no branch, no ref.

ALTER TABLE execution_tree ADD COLUMN iteration INTEGER NOT NULL DEFAULT 0;

ALTER TABLE execution_tree ADD COLUMN branch INTEGER;

ALTER TABLE execution_tree ADD COLUMN ref TEXT;

-- The sweep that wakes parents of finished children: only nodes waiting for
-- something sit in this index, so its size is the number of parents waiting
-- now, not the history of every child ever started. Covers the parent's id.
CREATE INDEX idx_execution_tree_waiting_ref
    ON execution_tree (ref, instance_id)
    WHERE state = 'waiting' AND ref IS NOT NULL;

-- outputs.<block_id> for templates: the newest successful output of one block
-- is the last entry of its (instance_id, block_id) range, one seek per block.
-- The index's implicit trailing rowid breaks created_at ties in insertion order.
CREATE INDEX idx_block_outputs_latest
    ON block_outputs (instance_id, block_id, created_at)
    WHERE output_ref IS NULL;
