"""The Python worker library against a tiny fake of the worker protocol on loopback.

The fake keeps tasks in memory and records every request, so each test can check what
the worker sent (poll limits, heartbeats, reports) and when.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from orch8.client import (
    Orch8Client,
    Orch8Error,
    PermanentError,
    RetryableError,
    Task,
    Worker,
)


@dataclass
class Fake:
    """The server side of the protocol, with knobs for misbehaving."""

    pending: list[dict[str, Any]] = field(default_factory=list)
    polls: list[tuple[float, int]] = field(default_factory=list)  # (time, limit)
    heartbeats: list[tuple[float, str, str, int | None]] = field(default_factory=list)
    completed: list[tuple[str, str, Any, int | None]] = field(default_factory=list)
    failed: list[tuple[str, str, bool]] = field(default_factory=list)
    poll_failures: int = 0  # answer this many polls with 500 first
    complete_status: dict[str, int] = field(default_factory=dict)  # task id -> status
    heartbeat_status: dict[str, int] = field(default_factory=dict)
    envelope: bool = False  # answer polls as {"tasks": [...]} (newer Orch8)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    next_id: int = 0

    def add(self, count: int = 1, **extra: Any) -> list[str]:
        ids = []
        handler = extra.pop("handler_name", "work")
        for _ in range(count):
            self.next_id += 1
            task = {
                "id": f"t{self.next_id}",
                "instance_id": f"i{self.next_id}",
                "block_id": "step",
                "handler_name": handler,
                "params": {"n": self.next_id},
                "context": {"data": {}, "config": {}},
                "attempt": 1,
                "timeout_ms": None,
                "claim_epoch": 0,
                **extra,
            }
            self.pending.append(task)
            ids.append(task["id"])
        self.arrived.set()
        return ids

    async def poll(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.polls.append((time.monotonic(), body["limit"]))
        if self.poll_failures > 0:
            self.poll_failures -= 1
            return web.json_response({"error": "database unavailable"}, status=500)
        deadline = time.monotonic() + body.get("wait_ms", 0) / 1000
        while True:
            mine = [t for t in self.pending if t["handler_name"] == body["handler_name"]]
            if mine or time.monotonic() >= deadline:
                break
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), deadline - time.monotonic())
        taken = mine[: body["limit"]]
        for task in taken:
            self.pending.remove(task)
            task["claim_epoch"] += 1
            task["worker_id"] = body["worker_id"]
        return web.json_response({"tasks": taken} if self.envelope else taken)

    async def heartbeat(self, request: web.Request) -> web.Response:
        body = await request.json()
        tid = request.match_info["id"]
        self.heartbeats.append((time.monotonic(), tid, body["worker_id"], body.get("claim_epoch")))
        status = self.heartbeat_status.get(tid, 200)
        return web.json_response({"error": "claim lost"} if status >= 400 else {}, status=status)

    async def complete(self, request: web.Request) -> web.Response:
        body = await request.json()
        tid = request.match_info["id"]
        status = self.complete_status.get(tid, 200)
        if status >= 400:
            return web.json_response({"error": f"refused with {status}"}, status=status)
        self.completed.append((tid, body["worker_id"], body["output"], body.get("claim_epoch")))
        return web.json_response({})

    async def fail(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.failed.append((request.match_info["id"], body["message"], body["retryable"]))
        return web.json_response({})

    async def instance(self, request: web.Request) -> web.Response:
        if request.match_info["id"] != "known":
            return web.json_response({"error": "instance not found"}, status=404)
        return web.json_response({"id": "known", "state": "completed"})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/workers/tasks/poll", self.poll)
        app.router.add_post("/workers/tasks/{id}/heartbeat", self.heartbeat)
        app.router.add_post("/workers/tasks/{id}/complete", self.complete)
        app.router.add_post("/workers/tasks/{id}/fail", self.fail)
        app.router.add_get("/instances/{id}", self.instance)
        return app


@pytest.fixture
async def fake() -> AsyncIterator[tuple[Fake, str]]:
    state = Fake()
    server = TestServer(state.app(), host="127.0.0.1")
    await server.start_server()
    try:
        yield state, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


def make_worker(url: str, **options: Any) -> Worker:
    defaults: dict[str, Any] = {
        "worker_id": "w1",
        "poll_wait_ms": 200,
        "heartbeat_interval_s": 5.0,
        "poll_error_backoff_s": 0.05,
    }
    return Worker(url, **{**defaults, **options})


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def running(worker: Worker, body: Callable[[], Awaitable[None]], grace: float = 5) -> None:
    """Run the worker around `body`, then stop it and make sure run() returned."""
    runner = asyncio.create_task(worker.run())
    try:
        await body()
    finally:
        await worker.stop(grace)
        await asyncio.wait_for(runner, 5)


async def test_concurrency_limit_is_respected_and_polls_ask_only_for_free_slots(
    fake: tuple[Fake, str],
) -> None:
    state, url = fake
    worker = make_worker(url, concurrency=4)
    now_running, peak = 0, 0

    @worker.handler("work")
    async def work(task: Task) -> dict[str, Any]:
        nonlocal now_running, peak
        now_running += 1
        peak = max(peak, now_running)
        await asyncio.sleep(0.03)
        now_running -= 1
        return {"n": task.params["n"]}

    state.add(25)

    async def body() -> None:
        await eventually(lambda: len(state.completed) == 25)

    await running(worker, body)
    assert peak == 4
    assert all(1 <= limit <= 4 for _, limit in state.polls)
    assert state.polls[0][1] == 4  # the first poll asks for every free slot
    assert sorted(t for t, *_ in state.completed) == sorted(f"t{n}" for n in range(1, 26))
    assert {out["n"] for _, _, out, _ in state.completed} == set(range(1, 26))
    assert all(epoch == 1 for *_, epoch in state.completed)  # the claim's epoch is echoed
    assert worker.stats.completed == 25
    assert worker.stats.claimed == 25


async def test_two_handlers_share_the_concurrency_budget(fake: tuple[Fake, str]) -> None:
    state, url = fake
    worker = make_worker(url, concurrency=3)
    now_running, peak = 0, 0

    async def work(task: Task) -> dict[str, Any]:
        nonlocal now_running, peak
        now_running += 1
        peak = max(peak, now_running)
        await asyncio.sleep(0.03)
        now_running -= 1
        return {}

    worker.register("a", work)
    worker.register("b", work)
    state.add(10, handler_name="a")
    state.add(10, handler_name="b")

    async def body() -> None:
        await eventually(lambda: len(state.completed) == 20)

    await running(worker, body)
    assert peak <= 3


async def test_heartbeats_are_sent_while_a_task_runs_and_stop_after(
    fake: tuple[Fake, str],
) -> None:
    state, url = fake
    worker = make_worker(url, heartbeat_interval_s=0.1)

    @worker.handler("work")
    async def work(task: Task) -> dict[str, Any]:
        await asyncio.sleep(0.45)
        return {}

    (tid,) = state.add()

    async def body() -> None:
        await eventually(lambda: len(state.completed) == 1)
        beats = len(state.heartbeats)
        await asyncio.sleep(0.3)
        assert len(state.heartbeats) == beats, "heartbeats went on after the report"

    await running(worker, body)
    assert 3 <= len(state.heartbeats) <= 5
    assert {(t, w, e) for _, t, w, e in state.heartbeats} == {(tid, "w1", 1)}
    gaps = [b[0] - a[0] for a, b in pairwise(state.heartbeats)]
    assert all(0.08 <= g <= 0.2 for g in gaps), gaps


async def test_stop_is_graceful_then_cancels_what_outlives_the_grace_period(
    fake: tuple[Fake, str],
) -> None:
    state, url = fake
    worker = make_worker(url, concurrency=4)
    cancelled: list[str] = []

    @worker.handler("work")
    async def work(task: Task) -> dict[str, Any]:
        try:
            await asyncio.sleep(0.2 if task.params["n"] == 1 else 60)
        except asyncio.CancelledError:
            cancelled.append(task.id)
            raise
        return {"done": task.id}

    state.add(2)
    runner = asyncio.create_task(worker.run())
    await eventually(lambda: worker.in_flight == 2)
    polls_before = len(state.polls)
    started = time.monotonic()
    await worker.stop(grace_s=0.6)
    took = time.monotonic() - started
    await asyncio.wait_for(runner, 2)
    assert 0.55 <= took < 1.5, took
    assert [t for t, *_ in state.completed] == ["t1"]  # finished within the grace period
    assert cancelled == ["t2"]  # cancelled at its end...
    assert state.failed == []  # ...and not reported: its claim lapses and the reaper re-offers it
    assert worker.stats.abandoned == 1
    state.add(1)
    await asyncio.sleep(0.3)
    assert len(state.polls) <= polls_before + 1  # polling stopped (one poll may have been open)
    assert len(state.pending) == 1


async def test_stop_returns_at_once_when_idle(fake: tuple[Fake, str]) -> None:
    _, url = fake
    worker = make_worker(url, poll_wait_ms=10_000)
    worker.register("work", _echo)
    runner = asyncio.create_task(worker.run())
    await asyncio.sleep(0.1)  # a long-poll is open
    started = time.monotonic()
    await worker.stop(grace_s=30)
    await asyncio.wait_for(runner, 2)
    assert time.monotonic() - started < 0.5


async def test_cancelling_run_stops_at_once_and_leaves_tasks_to_the_reaper(
    fake: tuple[Fake, str],
) -> None:
    state, url = fake
    worker = make_worker(url)
    cancelled = asyncio.Event()

    @worker.handler("work")
    async def work(task: Task) -> dict[str, Any]:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return {}

    state.add()
    runner = asyncio.create_task(worker.run())
    await eventually(lambda: worker.in_flight == 1)
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(runner, 2)
    assert cancelled.is_set()
    assert (state.completed, state.failed) == ([], [])
    assert worker.in_flight == 0


async def test_409_on_complete_is_logged_and_dropped(fake: tuple[Fake, str]) -> None:
    state, url = fake
    worker = make_worker(url)
    worker.register("work", _echo)
    taken_over, normal = state.add(2)
    state.complete_status[taken_over] = 409

    async def body() -> None:
        await eventually(lambda: worker.stats.dropped == 1 and worker.stats.completed == 1)
        state.add(1)  # the worker goes on working
        await eventually(lambda: worker.stats.completed == 2)

    await running(worker, body)
    assert [t for t, *_ in state.completed] == [normal, "t3"]
    assert state.failed == []  # a refused completion is not turned into a failure


async def test_poll_errors_back_off_doubling_up_to_the_cap(fake: tuple[Fake, str]) -> None:
    state, url = fake
    state.poll_failures = 5
    worker = make_worker(url, poll_error_backoff_s=0.05, poll_error_backoff_max_s=0.2)
    worker.register("work", _echo)
    state.add(1)

    async def body() -> None:
        await eventually(lambda: len(state.completed) == 1)

    await running(worker, body)
    times = [t for t, _ in state.polls[:6]]
    gaps = [b - a for a, b in pairwise(times)]
    expected = [0.05, 0.1, 0.2, 0.2, 0.2]
    assert len(gaps) == 5
    for gap, want in zip(gaps, expected, strict=True):
        assert want * 0.9 <= gap <= want + 0.1, (gaps, expected)
    assert worker.stats.poll_errors == 5


def test_poll_error_backoff_defaults_to_doubling_from_1s_to_30s() -> None:
    worker = Worker("http://127.0.0.1:1")
    assert (worker.poll_error_backoff_s, worker.poll_error_backoff_max_s) == (1.0, 30.0)
    assert (worker.concurrency, worker.poll_wait_ms, worker.heartbeat_interval_s) == (
        10,
        10_000,
        15.0,
    )
    assert worker.worker_id.startswith("py-")


class Flagged(Exception):
    retryable = False


@pytest.mark.parametrize(
    ("error", "retryable", "message"),
    [
        (RetryableError("smtp busy"), True, "smtp busy"),
        (PermanentError("user deleted"), False, "user deleted"),
        (ValueError("boom"), True, "ValueError: boom"),  # uncaught: retryable (WORKERS.md)
        (Flagged("no"), False, "no"),  # any exception may carry `retryable`
    ],
)
async def test_handler_errors_become_fail_reports(
    fake: tuple[Fake, str], error: Exception, retryable: bool, message: str
) -> None:
    state, url = fake
    worker = make_worker(url)

    @worker.handler("work")
    async def work(task: Task) -> dict[str, Any]:
        raise error

    (tid,) = state.add()

    async def body() -> None:
        await eventually(lambda: len(state.failed) == 1)

    await running(worker, body)
    assert state.failed == [(tid, message, retryable)]
    assert state.completed == []


async def test_a_handler_past_its_timeout_fails_retryably(fake: tuple[Fake, str]) -> None:
    state, url = fake
    worker = make_worker(url)

    @worker.handler("work")
    async def work(task: Task) -> dict[str, Any]:
        await asyncio.sleep(10)
        return {}

    (tid,) = state.add(timeout_ms=100)

    async def body() -> None:
        await eventually(lambda: len(state.failed) == 1, within=2)

    await running(worker, body)
    assert state.failed == [(tid, "handler timed out after 100 ms", True)]


async def test_outputs_none_means_empty_and_non_json_fails_permanently(
    fake: tuple[Fake, str],
) -> None:
    state, url = fake
    worker = make_worker(url)

    @worker.handler("work")
    async def work(task: Task) -> Any:
        return None if task.params["n"] == 1 else {"when": object()}

    first, second = state.add(2)

    async def body() -> None:
        await eventually(lambda: len(state.completed) == 1 and len(state.failed) == 1)

    await running(worker, body)
    assert state.completed == [(first, "w1", {}, 1)]
    assert state.failed[0][0] == second
    assert state.failed[0][2] is False


async def test_an_output_the_server_refuses_fails_the_step(fake: tuple[Fake, str]) -> None:
    state, url = fake
    worker = make_worker(url)
    worker.register("work", _echo)
    (tid,) = state.add()
    state.complete_status[tid] = 413

    async def body() -> None:
        await eventually(lambda: len(state.failed) == 1)

    await running(worker, body)
    assert state.failed[0][0] == tid
    assert "413" in state.failed[0][1] or "refused" in state.failed[0][1]
    assert state.failed[0][2] is False


async def test_a_lost_claim_cancels_the_handler_without_a_report(fake: tuple[Fake, str]) -> None:
    state, url = fake
    worker = make_worker(url, heartbeat_interval_s=0.05)
    cancelled = asyncio.Event()

    @worker.handler("work")
    async def work(task: Task) -> dict[str, Any]:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return {}

    (tid,) = state.add()
    state.heartbeat_status[tid] = 409

    async def body() -> None:
        await asyncio.wait_for(cancelled.wait(), 2)
        await eventually(lambda: worker.in_flight == 0)

    await running(worker, body)
    assert state.completed == []
    assert state.failed == []
    assert worker.stats.abandoned == 1


async def test_the_poll_envelope_of_newer_servers_is_understood(fake: tuple[Fake, str]) -> None:
    state, url = fake
    state.envelope = True
    worker = make_worker(url)
    worker.register("work", _echo)
    state.add(3)

    async def body() -> None:
        await eventually(lambda: len(state.completed) == 3)

    await running(worker, body)


async def test_handlers_must_be_coroutine_functions() -> None:
    worker = Worker("http://127.0.0.1:1")

    def blocking(task: Task) -> dict[str, Any]:
        return {}

    with pytest.raises(TypeError, match="async"):
        worker.register("x", blocking)  # type: ignore[arg-type]

    class Callable_:
        async def __call__(self, task: Task) -> dict[str, Any]:
            return {}

    worker.register("y", Callable_())
    with pytest.raises(ValueError, match="register at least one"):
        await Worker("http://127.0.0.1:1").run()


async def test_client_raises_orch8_error_with_status_and_message(fake: tuple[Fake, str]) -> None:
    _, url = fake
    async with Orch8Client(url) as client:
        assert (await client.get_instance("known"))["state"] == "completed"
        with pytest.raises(Orch8Error) as caught:
            await client.get_instance("missing")
    assert (caught.value.status, caught.value.message) == (404, "instance not found")
    async with Orch8Client("http://127.0.0.1:1", timeout_s=2) as client:
        with pytest.raises(Orch8Error) as refused:
            await client.get_instance("x")
    assert refused.value.status == 0
    assert refused.value.is_transient


async def _echo(task: Task) -> dict[str, Any]:
    return {"echo": task.params}
