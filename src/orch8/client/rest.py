"""A thin async REST client for orch8 (and Orch8, whose API it is wire-compatible with).

Thin on purpose: each method is one request, returns the server's JSON (typed), and
raises `Orch8Error` for anything that is not a 2xx, so a caller never has to inspect
status codes for the happy path and always can for the unhappy one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Iterable, Mapping
from types import TracebackType
from typing import Any, cast

import aiohttp

from orch8.client.errors import Orch8Error, error_text
from orch8.client.sse import ServerEvent, read_events
from orch8.client.types import (
    JSON,
    TERMINAL_STATES,
    BlockOutput,
    CreatedInstance,
    Instance,
    InstancePage,
    Priority,
    SequencePage,
    SignalType,
    Task,
    TreeNode,
)

DEFAULT_TIMEOUT_S = 30.0
# A long-poll is held open by the server for `wait_ms`; the HTTP timeout must outlive it
# by enough that a slow answer at the deadline is not mistaken for a dead server.
LONG_POLL_SLACK_S = 10.0
# The stream sends a keep-alive after 15 s of silence; four missed ones mean it is gone.
STREAM_READ_TIMEOUT_S = 60.0
MAX_POLL_LIMIT = 1000  # the server's cap on `limit`


class Orch8Client:
    """Async client for the orch8 REST API.

    Use it as an async context manager (or call `close()`); the HTTP session is opened on
    first use, inside the running event loop, as aiohttp requires.

    `base_url` is the server root (`http://host:8080`) or the versioned prefix
    (`http://host:8080/api/v1`); both serve the same routes. `api_key` and `tenant_id`
    become the `x-api-key` / `x-tenant-id` headers of every request.
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        tenant_id: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_connections: int = 100,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.tenant_id = tenant_id
        self.timeout_s = timeout_s
        self._headers: dict[str, str] = {"accept": "application/json"}
        if api_key is not None:
            self._headers["x-api-key"] = api_key
        if tenant_id is not None:
            self._headers["x-tenant-id"] = tenant_id
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Orch8Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session; the client may be used again afterwards (it reopens)."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                connector=aiohttp.TCPConnector(limit=self._max_connections),
            )
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: JSON = None,
        params: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> JSON:
        """One request; the decoded JSON body (None when empty) or `Orch8Error`."""
        timeout = aiohttp.ClientTimeout(total=timeout_s or self.timeout_s)
        try:
            async with self._http().request(
                method, self.base_url + path, json=json, params=params, timeout=timeout
            ) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    raise Orch8Error(resp.status, error_text(text, resp.reason))
                if not text:
                    return None
                try:
                    return await resp.json(content_type=None)
                except ValueError as exc:
                    raise Orch8Error(0, f"malformed JSON from {method} {path}: {exc}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Orch8Error(0, f"{method} {path}: {type(exc).__name__}: {exc}") from exc

    # -- sequences ----------------------------------------------------------------

    async def create_sequence(self, definition: Mapping[str, Any]) -> str:
        """Register a sequence (`{tenant_id, namespace, name, blocks, ...}`); its id.

        An invalid definition is a 400 naming the offending block and field."""
        body = await self.request("POST", "/sequences", json=dict(definition))
        return str(body["id"])

    async def get_sequence(self, sequence_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], await self.request("GET", f"/sequences/{sequence_id}"))

    async def get_sequence_by_name(
        self, tenant_id: str, name: str, *, namespace: str = "default", version: int | None = None
    ) -> dict[str, Any]:
        """The given version, or the latest non-deprecated one."""
        params = {"tenant_id": tenant_id, "namespace": namespace, "name": name}
        if version is not None:
            params["version"] = str(version)
        return cast(dict[str, Any], await self.request("GET", "/sequences/by-name", params=params))

    async def list_sequences(
        self,
        *,
        tenant_id: str | None = None,
        namespace: str | None = None,
        offset: int = 0,
        limit: int = 200,
    ) -> SequencePage:
        """A page of sequence versions, newest first (`GET /sequences`)."""
        params = {"offset": str(offset), "limit": str(limit)}
        tenant = tenant_id if tenant_id is not None else self.tenant_id
        for key, value in (("tenant_id", tenant), ("namespace", namespace)):
            if value is not None:
                params[key] = value
        return cast(SequencePage, await self.request("GET", "/sequences", params=params))

    # -- instances ----------------------------------------------------------------

    async def create_instance(
        self,
        sequence_id: str,
        *,
        tenant_id: str | None = None,
        namespace: str = "default",
        data: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        priority: Priority | None = None,
        timezone: str | None = None,
        idempotency_key: str | None = None,
        next_fire_at: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> CreatedInstance:
        """Start an instance of a sequence. `data` becomes `context.data`.

        `tenant_id` defaults to the client's; `extra` carries any other field of the
        create body (`concurrency_key`, `max_concurrency`, ...) unchanged."""
        tenant = tenant_id if tenant_id is not None else self.tenant_id
        if tenant is None:
            raise ValueError("tenant_id is required (pass it here or to Orch8Client)")
        body: dict[str, Any] = {
            "sequence_id": sequence_id,
            "tenant_id": tenant,
            "namespace": namespace,
            "context": {"data": dict(data or {}), "config": dict(config or {})},
        }
        optional = {
            "metadata": None if metadata is None else dict(metadata),
            "priority": priority,
            "timezone": timezone,
            "idempotency_key": idempotency_key,
            "next_fire_at": next_fire_at,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        body.update(extra or {})
        created = await self.request("POST", "/instances", json=body)
        return CreatedInstance(str(created["id"]), bool(created.get("deduplicated", False)))

    async def get_instance(self, instance_id: str) -> Instance:
        return cast(Instance, await self.request("GET", f"/instances/{instance_id}"))

    async def list_instances(
        self,
        *,
        tenant_id: str | None = None,
        namespace: str | None = None,
        sequence_id: str | None = None,
        states: Iterable[str] = (),
        offset: int = 0,
        limit: int = 100,
    ) -> InstancePage:
        params = {"offset": str(offset), "limit": str(limit)}
        tenant = tenant_id if tenant_id is not None else self.tenant_id
        for key, value in (("tenant_id", tenant), ("namespace", namespace)):
            if value is not None:
                params[key] = value
        if sequence_id is not None:
            params["sequence_id"] = sequence_id
        wanted = ",".join(states)
        if wanted:
            params["state"] = wanted
        return cast(InstancePage, await self.request("GET", "/instances", params=params))

    async def get_outputs(self, instance_id: str) -> list[BlockOutput]:
        """Every block output of the instance, oldest first."""
        return cast(
            list[BlockOutput], await self.request("GET", f"/instances/{instance_id}/outputs")
        )

    async def get_tree(self, instance_id: str) -> list[TreeNode]:
        """The execution tree: one node per block (blocks not reached yet are pending)."""
        return cast(list[TreeNode], await self.request("GET", f"/instances/{instance_id}/tree"))

    def stream_instance(
        self,
        instance_id: str,
        *,
        poll_ms: int | None = None,
        read_timeout_s: float = STREAM_READ_TIMEOUT_S,
    ) -> AsyncGenerator[ServerEvent, None]:
        """Follow `GET /instances/{id}/stream`: each Server-Sent Event as it arrives.

        The server sends `state`, `output`, then `done` and closes (or `error` for an
        unknown instance); the iterator ends when the connection does (close it early with
        `contextlib.aclosing`). An error status, a dropped connection, or `read_timeout_s`
        without even a keep-alive raise `Orch8Error`."""
        params = {} if poll_ms is None else {"poll_ms": str(poll_ms)}
        return read_events(
            self._http(),
            self.base_url,
            f"/instances/{instance_id}/stream",
            params=params,
            connect_timeout_s=self.timeout_s,
            read_timeout_s=read_timeout_s,
        )

    async def send_signal(
        self, instance_id: str, signal_type: SignalType | str, payload: JSON = None
    ) -> str:
        """Send `pause`, `resume`, `cancel`, `update_context` (payload `{"data": {...}}`)
        or a custom signal (any other name, sent as `{"custom": name}`); the signal id."""
        wire: JSON = (
            signal_type
            if signal_type in ("pause", "resume", "cancel", "update_context")
            else {"custom": signal_type}
        )
        body = await self.request(
            "POST",
            f"/instances/{instance_id}/signals",
            json={"signal_type": wire, "payload": payload},
        )
        return str(body.get("signal_id", "")) if isinstance(body, dict) else ""

    async def wait_for_instance(
        self,
        instance_id: str,
        *,
        states: Iterable[str] = TERMINAL_STATES,
        timeout_s: float = 60.0,
        interval_s: float = 0.2,
    ) -> Instance:
        """Poll until the instance reaches one of `states` (by default a terminal one).

        Raises `TimeoutError` with the last state seen when it does not in time."""
        wanted = frozenset(states)
        deadline = time.monotonic() + timeout_s
        while True:
            instance = await self.get_instance(instance_id)
            if instance.get("state") in wanted:
                return instance
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"instance {instance_id} still {instance.get('state')!r} after {timeout_s}s"
                )
            await asyncio.sleep(interval_s)

    # -- the worker protocol --------------------------------------------------------

    async def poll_tasks(
        self,
        handler_name: str,
        worker_id: str,
        limit: int = 1,
        *,
        wait_ms: int | None = None,
        queue_name: str | None = None,
        version: str | None = None,
    ) -> list[Task]:
        """Claim up to `limit` pending tasks of `handler_name`.

        With `wait_ms` the server holds the request until a task appears or the wait
        ends (long-poll). Accepts both the bare array orch8 answers and the
        `{"tasks": [...]}` envelope newer Orch8 servers answer."""
        body: dict[str, Any] = {
            "handler_name": handler_name,
            "worker_id": worker_id,
            "limit": max(1, min(limit, MAX_POLL_LIMIT)),
        }
        if wait_ms is not None:
            body["wait_ms"] = wait_ms
        if version is not None:
            body["version"] = version
        path = "/workers/tasks/poll"
        if queue_name is not None:
            body["queue_name"] = queue_name
            path = "/workers/tasks/poll/queue"
        timeout = self.timeout_s + (wait_ms or 0) / 1000 + LONG_POLL_SLACK_S
        answer = await self.request("POST", path, json=body, timeout_s=timeout)
        items = answer.get("tasks") if isinstance(answer, dict) else answer
        if not isinstance(items, list):
            raise Orch8Error(0, f"malformed poll answer: {answer!r}")
        return [Task.from_json(item) for item in items]

    async def heartbeat_task(self, task_id: str, worker_id: str, claim_epoch: int | None) -> None:
        """Keep the claim alive. 409: the claim was lost; 404: the task is gone."""
        await self.request(
            "POST",
            f"/workers/tasks/{task_id}/heartbeat",
            json=_with_epoch({"worker_id": worker_id}, claim_epoch),
        )

    async def complete_task(
        self, task_id: str, worker_id: str, output: JSON, claim_epoch: int | None
    ) -> None:
        """Report success; object outputs merge into the instance's `context.data`.

        Repeating the same worker's completion is harmless (idempotent on the server)."""
        await self.request(
            "POST",
            f"/workers/tasks/{task_id}/complete",
            json=_with_epoch({"worker_id": worker_id, "output": output}, claim_epoch),
        )

    async def fail_task(
        self,
        task_id: str,
        worker_id: str,
        message: str,
        *,
        retryable: bool,
        claim_epoch: int | None,
    ) -> None:
        """Report failure; `retryable` asks for another attempt under the step's policy."""
        await self.request(
            "POST",
            f"/workers/tasks/{task_id}/fail",
            json=_with_epoch(
                {"worker_id": worker_id, "message": message, "retryable": retryable},
                claim_epoch,
            ),
        )

    async def list_tasks(
        self,
        *,
        handler_name: str | None = None,
        state: str | None = None,
        instance_id: str | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """Worker tasks, newest first (`GET /workers/tasks`); state is one of pending,
        claimed, completed, failed, cancelled."""
        params = {"offset": str(offset), "limit": str(limit)}
        filters = {"handler_name": handler_name, "state": state, "instance_id": instance_id}
        params.update({k: v for k, v in filters.items() if v is not None})
        if self.tenant_id is not None:
            params["tenant_id"] = self.tenant_id
        return cast(
            list[dict[str, Any]], await self.request("GET", "/workers/tasks", params=params)
        )

    async def task_stats(self) -> dict[str, Any]:
        """Task counts per state and handler, and the workers holding claims."""
        return cast(dict[str, Any], await self.request("GET", "/workers/tasks/stats"))


def _with_epoch(body: dict[str, Any], claim_epoch: int | None) -> dict[str, Any]:
    if claim_epoch is not None:
        body["claim_epoch"] = claim_epoch
    return body
