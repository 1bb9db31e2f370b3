"""Wire shapes of the REST API, typed for callers.

Tasks become a frozen dataclass because handlers read them and should not have to
guess keys; instances, sequences and outputs stay the server's JSON objects (typed as
`TypedDict`s) so that fields the server adds later reach the caller unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from orch8.client.errors import Orch8Error

JSON = Any
"""Any JSON value (what `json.loads` returns)."""

Priority = Literal["Low", "Normal", "High", "Critical"]
SignalType = Literal["pause", "resume", "cancel", "update_context"]


@dataclass(frozen=True, slots=True)
class Task:
    """One claimed worker task: one attempt of one step of one instance.

    `claim_epoch` proves this worker still owns the task; the worker echoes it in every
    heartbeat and report, and the server answers 409 once the task was re-offered.
    `raw` keeps the whole JSON object for fields this class does not name.
    """

    id: str
    instance_id: str
    block_id: str
    handler_name: str
    params: dict[str, Any]
    context: dict[str, Any]
    attempt: int
    claim_epoch: int | None
    timeout_ms: int | None = None
    queue_name: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def data(self) -> dict[str, Any]:
        """`context.data` of the instance, the usual input of a handler."""
        value = self.context.get("data")
        return value if isinstance(value, dict) else {}

    @classmethod
    def from_json(cls, value: JSON) -> Task:
        """Read one task object; a malformed one is a protocol error (status 0)."""
        if not isinstance(value, dict):
            raise Orch8Error(0, f"malformed task (not an object): {value!r}")
        try:
            params = value.get("params")
            context = value.get("context")
            timeout = value.get("timeout_ms")
            epoch = value.get("claim_epoch")
            queue = value.get("queue_name")
            return cls(
                id=str(value["id"]),
                instance_id=str(value["instance_id"]),
                block_id=str(value["block_id"]),
                handler_name=str(value["handler_name"]),
                params=params if isinstance(params, dict) else {},
                context=context if isinstance(context, dict) else {},
                attempt=int(value.get("attempt") or 1),
                claim_epoch=None if epoch is None else int(epoch),
                timeout_ms=None if timeout is None else int(timeout),
                queue_name=None if queue is None else str(queue),
                raw=value,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise Orch8Error(0, f"malformed task {value!r}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class CreatedInstance:
    """The answer to `POST /instances`: `deduplicated` is true when an instance with the
    same idempotency key already existed and `id` is that instance."""

    id: str
    deduplicated: bool


class InstanceContext(TypedDict, total=False):
    data: dict[str, Any]
    config: dict[str, Any]
    audit: list[Any]
    runtime: dict[str, Any]


class Instance(TypedDict, total=False):
    """`GET /instances/{id}`. States: scheduled, running, waiting, paused, completed,
    failed, cancelled (the last three are terminal)."""

    id: str
    sequence_id: str
    tenant_id: str
    namespace: str
    state: str
    next_fire_at: str | None
    priority: Priority
    timezone: str
    metadata: dict[str, Any]
    context: InstanceContext
    concurrency_key: str | None
    max_concurrency: int | None
    idempotency_key: str | None
    parent_instance_id: str | None
    created_at: str
    updated_at: str


class BlockOutput(TypedDict, total=False):
    """One entry of `GET /instances/{id}/outputs`."""

    id: str
    instance_id: str
    block_id: str
    output: Any
    output_ref: str | None
    output_size: int
    attempt: int
    created_at: str


class InstancePage(TypedDict):
    """A page of `GET /instances`."""

    items: list[Instance]
    has_more: bool


class Sequence(TypedDict, total=False):
    """`GET /sequences/{id}`: one version of a sequence."""

    id: str
    tenant_id: str
    namespace: str
    name: str
    version: int
    deprecated: bool
    status: str
    blocks: list[Any]
    input_schema: Any
    on_failure: Any
    on_cancel: Any
    created_at: str


class SequencePage(TypedDict):
    """A page of `GET /sequences`."""

    items: list[Sequence]
    has_more: bool


class TreeNode(TypedDict, total=False):
    """One node of `GET /instances/{id}/tree`; `parent_id` is the parent block's node."""

    id: str
    instance_id: str
    block_id: str
    parent_id: str | None
    block_type: str
    branch_index: int | None
    state: str
    started_at: str | None
    completed_at: str | None


TERMINAL_STATES = frozenset({"completed", "failed", "cancelled"})
