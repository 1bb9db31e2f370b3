"""The insert that snapshot writes use for new worker tasks."""

from __future__ import annotations

from orch8.adapters.sql.task_rows import COLUMNS, RERUN_SET

# A task already stored under its (instance, block, attempt) is left alone while it is
# open; a finished one is replaced (a loop's next iteration runs the step afresh, with
# its attempt count starting again). A task stored under the same id is left alone.
INSERT = f"""
INSERT INTO worker_tasks ({COLUMNS})
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (instance_id, block_id, attempt) DO UPDATE SET
    {RERUN_SET}
WHERE worker_tasks.state IN ('completed', 'failed', 'cancelled')
ON CONFLICT DO NOTHING
"""  # noqa: S608 - constant fragments
