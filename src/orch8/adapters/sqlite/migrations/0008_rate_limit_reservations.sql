-- orch8 schema, version 8: rate limits hand out reservations.
--
-- A step whose rate limit is full is given a place in the key's admission log
-- at the instant it will run, and waits for it. The place is kept on the step's
-- node (`reserved_at`, INTEGER microseconds) until the step starts or the
-- place lapses, so the deferred step is not counted a second time.

ALTER TABLE execution_tree ADD COLUMN reserved_at INTEGER;
