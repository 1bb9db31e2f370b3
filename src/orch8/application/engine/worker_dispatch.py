"""Steps whose handler lives in an external worker: the task handed out, and the
results read back.

A step is dispatched when no handler of its name is registered in this
process. The task is inserted in the same write that parks its node, and the
result is read when the instance is next run, so a worker that finishes while
the engine is down loses nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from orch8.application.ports.clock import IdGenerator
from orch8.application.ports.storage import TaskQueue
from orch8.domain.context import ExecutionContext
from orch8.domain.evaluator import RunStep
from orch8.domain.evaluator.attempts import Dispatched, waits_on_task
from orch8.domain.instance import Instance
from orch8.domain.tasks import WorkerTask
from orch8.domain.tree import Node


def dispatch(
    ids: IdGenerator,
    instance: Instance,
    step: RunStep,
    params: Any,
    context: ExecutionContext,
    now: datetime,
) -> Dispatched:
    """The task for one attempt: workers see the rendered params and the instance's
    data and config, never its engine bookkeeping."""
    return Dispatched(
        WorkerTask(
            id=ids.new_id(),
            instance_id=instance.id,
            tenant_id=instance.tenant_id,
            block_id=step.block.id,
            handler_name=step.block.handler,
            attempt=step.attempt,
            created_at=now,
            params=params,
            context={"data": dict(context.data), "config": dict(context.config)},
            queue_name=step.block.queue_name,
            timeout_ms=step.block.timeout_ms,
        )
    )


async def task_results(
    tasks: TaskQueue, instance_id: str, nodes: Iterable[Node]
) -> dict[str, WorkerTask]:
    """The tasks of the steps that wait on a worker, by block id (none read when no
    step waits)."""
    external = [n.block_id for n in nodes if waits_on_task(n)]
    if not external:
        return {}
    return await tasks.results(instance_id, external)
