"""orch8's Python client: an async worker for external steps and a small REST client.

This package sits outside the engine's hexagon: it talks to a server over HTTP only and
imports nothing from the engine's layers, so it can be vendored or installed on worker
hosts that never run the engine.
"""

from orch8.client.errors import Orch8Error, PermanentError, RetryableError, TaskError
from orch8.client.rest import Orch8Client
from orch8.client.sse import ServerEvent
from orch8.client.types import (
    TERMINAL_STATES,
    BlockOutput,
    CreatedInstance,
    Instance,
    InstancePage,
    Sequence,
    SequencePage,
    Task,
    TreeNode,
)
from orch8.client.worker import Handler, Worker, WorkerStats, default_worker_id

__all__ = [
    "TERMINAL_STATES",
    "BlockOutput",
    "CreatedInstance",
    "Handler",
    "Instance",
    "InstancePage",
    "Orch8Client",
    "Orch8Error",
    "PermanentError",
    "RetryableError",
    "Sequence",
    "SequencePage",
    "ServerEvent",
    "Task",
    "TaskError",
    "TreeNode",
    "Worker",
    "WorkerStats",
    "default_worker_id",
]
