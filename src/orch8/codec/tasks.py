"""The worker protocol's wire format (Orch8's `WorkerTask` JSON and request bodies)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import frozen

from orch8.application.ports.storage import TaskStats
from orch8.application.use_cases.workers import WorkerInfo
from orch8.codec.fields import boolean, integer, obj, string
from orch8.codec.times import format_time
from orch8.domain.errors import ValidationError
from orch8.domain.tasks import TaskState, WorkerTask

DEFAULT_POLL_LIMIT = 1


def task_to_json(task: WorkerTask) -> dict[str, Any]:
    return {
        "id": task.id,
        "instance_id": task.instance_id,
        "block_id": task.block_id,
        "handler_name": task.handler_name,
        "queue_name": task.queue_name,
        "params": dict(task.params),
        "context": dict(task.context),
        "attempt": task.attempt,
        "timeout_ms": task.timeout_ms,
        "state": task.state.value,
        "worker_id": task.worker_id,
        "claimed_at": format_time(task.claimed_at),
        "heartbeat_at": format_time(task.heartbeat_at),
        "claim_epoch": task.claim_epoch,
        "output": task.output,
        "error_message": task.error_message,
        "error_retryable": task.error_retryable,
        "created_at": format_time(task.created_at),
        "completed_at": format_time(task.completed_at),
    }


@frozen
class PollRequest:
    handler_name: str
    worker_id: str
    limit: int = DEFAULT_POLL_LIMIT
    wait_ms: int | None = None
    queue_name: str | None = None


@frozen
class Report:
    """Who reports on a task: the worker and, optionally, the claim it holds."""

    worker_id: str
    claim_epoch: int | None = None


@frozen
class FailRequest:
    report: Report
    message: str
    retryable: bool = False


def _non_negative(data: Mapping[str, Any], key: str) -> int | None:
    value = integer(data, key, "")
    if value is not None and value < 0:
        raise ValidationError("must not be negative", path=key)
    return value


def _name(data: Mapping[str, Any], key: str) -> str:
    value = string(data, key, "", required=True)
    if not value or not value.strip():
        raise ValidationError("must be a non-empty string", path=key)
    return value


def poll_request_from_json(value: object) -> PollRequest:
    """`{handler_name, worker_id, limit?=1, wait_ms?, queue_name?}`."""
    data = obj(value, "body")
    limit = _non_negative(data, "limit")
    return PollRequest(
        handler_name=_name(data, "handler_name"),
        worker_id=_name(data, "worker_id"),
        limit=DEFAULT_POLL_LIMIT if limit is None else limit,
        wait_ms=_non_negative(data, "wait_ms"),
        queue_name=string(data, "queue_name", "") or None,
    )


def queue_poll_request_from_json(value: object) -> PollRequest:
    """Orch8's queue poll: the same body as a poll, with `queue_name` required."""
    req = poll_request_from_json(value)
    if req.queue_name is None:
        raise ValidationError("is required", path="queue_name")
    return req


def _report(data: Mapping[str, Any]) -> Report:
    return Report(
        worker_id=_name(data, "worker_id"), claim_epoch=_non_negative(data, "claim_epoch")
    )


def report_from_json(value: object) -> Report:
    """A heartbeat: `{worker_id, claim_epoch?}`."""
    return _report(obj(value, "body"))


def complete_from_json(value: object) -> tuple[Report, Any]:
    """`{worker_id, output, claim_epoch?}`; `output` may be any JSON value, null too."""
    data = obj(value, "body")
    report = _report(data)
    if "output" not in data:
        raise ValidationError("is required (any JSON value, null included)", path="output")
    return report, data["output"]


def fail_from_json(value: object) -> FailRequest:
    """`{worker_id, message, retryable?=false, claim_epoch?}`."""
    data = obj(value, "body")
    message = string(data, "message", "", required=True)
    assert message is not None
    return FailRequest(_report(data), message, boolean(data, "retryable", "", False))


def task_state_from_json(value: str, path: str) -> TaskState:
    try:
        return TaskState(value)
    except ValueError:
        allowed = ", ".join(s.value for s in TaskState)
        raise ValidationError(f"must be one of {allowed}", path=path) from None


def stats_to_json(stats: TaskStats) -> dict[str, Any]:
    """Orch8's WorkerTaskStats: `{by_state, by_handler: {handler: {state: n}}, active_workers}`."""
    by_state: dict[str, int] = {}
    by_handler: dict[str, dict[str, int]] = {}
    for handler, state, count in stats.counts:
        by_state[state.value] = by_state.get(state.value, 0) + count
        by_handler.setdefault(handler, {})[state.value] = count
    return {
        "by_state": by_state,
        "by_handler": by_handler,
        "active_workers": list(stats.active_workers),
    }


def worker_to_json(info: WorkerInfo) -> dict[str, Any]:
    return {
        "worker_id": info.worker_id,
        "handlers": list(info.handlers),
        "queues": list(info.queues),
        "version": None,
        "last_seen_at": format_time(info.last_seen_at),
        "alive": info.alive,
        "in_flight": info.in_flight,
    }
