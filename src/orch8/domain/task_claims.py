"""Who may report on a worker task: the claim fence every store applies the same way."""

from __future__ import annotations

from orch8.domain.tasks import TaskState, WorkerTask

# What an expired task's error_message says (Orch8's wording).
TIMED_OUT = "task timed out (timeout_ms exceeded)"
# The tenant of a worker registration made without a tenant.
UNSCOPED = ""


def holds(task: WorkerTask, worker_id: str, claim_epoch: int | None) -> bool:
    """Whether `worker_id` (at `claim_epoch`; None: at any epoch) is the task's last claimer."""
    return task.worker_id == worker_id and (claim_epoch is None or claim_epoch == task.claim_epoch)


def repeated(task: WorkerTask, final: TaskState, worker_id: str, claim_epoch: int | None) -> bool:
    """Whether a report is a repeat of the one that already moved the task to `final`."""
    return task.state is final and holds(task, worker_id, claim_epoch)


def lost_claim(task: WorkerTask, worker_id: str, claim_epoch: int | None) -> str:
    """Why a report from `worker_id` is refused (the message of the Conflict)."""
    if task.state is not TaskState.CLAIMED:
        return f"worker task {task.id} is {task.state.value}, not claimed; the lease is gone"
    if task.worker_id != worker_id:
        return f"worker task {task.id} is claimed by another worker; the lease is gone"
    return (
        f"worker task {task.id} was claimed again (claim_epoch {task.claim_epoch}, "
        f"not {claim_epoch}); the lease is stale"
    )
