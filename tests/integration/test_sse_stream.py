"""`GET /instances/{id}/stream` read by a real HTTP client, against a real app, real
SQLite storage and a running engine that publishes to the process's change feed."""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from orch8.adapters.sqlite import SqliteStorage
from orch8.adapters.system import SystemClock, UuidGenerator
from orch8.application.engine.service import EngineConfig
from orch8.application.handlers import BUILTIN_HANDLERS, HandlerRegistry
from orch8.application.streams import LocalChangeFeed
from orch8.application.use_cases.instance_stream import (
    Finished,
    InstanceStream,
    OutputAdded,
    StateChanged,
    clamp_poll_ms,
)
from orch8.bootstrap.engine import build_engine
from orch8.entrypoints.http.app import create_app
from tests.integration.conftest import Api, api_deps

ENGINE_CONFIG = EngineConfig(tick_interval_s=0.02, batch_size=256, max_concurrent_steps=256)


def sleep_step(block_id: str, ms: int = 20) -> dict[str, Any]:
    return {"type": "step", "id": block_id, "handler": "sleep", "params": {"duration_ms": ms}}


class Sse:
    """A minimal SSE client: frames as (event, data) pairs, comments counted."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.comments = 0

    async def next(self) -> tuple[str, Any] | None:
        event: str | None = None
        data: list[str] = []
        while True:
            raw = await self.response.content.readline()
            if not raw:
                assert event is None and not data, "stream ended inside a frame"
                return None
            line = raw.decode().rstrip("\r\n")
            if not line:
                if event is not None or data:
                    return event or "message", json.loads("\n".join(data))
                continue
            if line.startswith(":"):
                self.comments += 1
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)

    async def rest(self) -> list[tuple[str, Any]]:
        events = []
        while (frame := await self.next()) is not None:
            events.append(frame)
        return events


class Env:
    def __init__(self, tmp_path: Path, *, max_streams: int = 256, capacity: int = 256) -> None:
        self.db_path = tmp_path / "orch8.db"
        self.storage = SqliteStorage(str(self.db_path))
        self.feed = LocalChangeFeed(capacity=capacity)
        clock, ids = SystemClock(), UuidGenerator()
        self.engine = build_engine(
            self.storage,
            HandlerRegistry(BUILTIN_HANDLERS),
            clock,
            ids,
            ENGINE_CONFIG,
            feed=self.feed,
        )
        self.streams = InstanceStream(
            self.storage.instances, self.storage.outputs, self.feed, max_streams=max_streams
        )
        self.deps = api_deps(self.storage, streams=self.streams)
        self.client: TestClient[Any, Any] = TestClient(TestServer(create_app(self.deps)))
        self.api = Api(self.client, self.storage)
        self.started = False

    async def start_engine(self) -> None:
        await self.engine.start()
        self.started = True

    async def open(
        self, instance_id: str, *, poll_ms: int | None = None, tenant: str | None = None
    ) -> aiohttp.ClientResponse:
        query = "" if poll_ms is None else f"?poll_ms={poll_ms}"
        headers = {"x-tenant-id": tenant} if tenant else {}
        resp = await self.client.get(
            f"/api/v1/instances/{instance_id}/stream{query}", headers=headers
        )
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        return resp

    async def sequence(self, steps: int, ms: int = 20) -> str:
        return await self.api.create_sequence(
            f"s{steps}x{ms}", blocks=[sleep_step(f"s{i}", ms) for i in range(steps)]
        )

    async def wait_state(self, instance_id: str, state: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            reply = await self.api.call("GET", f"/api/v1/instances/{instance_id}")
            if reply.body["state"] == state:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"{instance_id} never reached {state}")

    async def wait_streams(self, count: int, seconds: float = 10) -> None:
        deadline = time.monotonic() + seconds
        while self.streams.open_streams != count:
            assert time.monotonic() < deadline, (self.streams.open_streams, count)
            await asyncio.sleep(0.02)

    async def close(self) -> None:
        if self.started:
            await self.engine.stop()
        await self.client.close()
        await self.storage.close()


MakeEnv = Callable[..., Awaitable[Env]]


@pytest.fixture
async def make_env(tmp_path: Path) -> AsyncIterator[MakeEnv]:
    envs: list[Env] = []

    async def make(**options: Any) -> Env:
        env = Env(tmp_path / f"env{len(envs)}", **options)
        env.db_path.parent.mkdir(parents=True, exist_ok=True)
        await env.storage.migrate()
        await env.client.start_server()
        envs.append(env)
        return env

    yield make
    for env in envs:
        await env.close()


@pytest.fixture
async def env(make_env: MakeEnv) -> Env:
    return await make_env()


def check_stream(events: list[tuple[str, Any]], instance_id: str, blocks: list[str]) -> None:
    """The invariants of every complete stream."""
    names = [name for name, _ in events]
    assert names[0] == "state", events
    assert names[-2:] == ["state", "done"], events
    assert events[-1][1] == {"state": "completed"}
    assert events[-2][1] == {"instance_id": instance_id, "state": "completed"}
    states = [data["state"] for name, data in events if name == "state"]
    assert all(a != b for a, b in pairwise(states)), states
    outputs = [data for name, data in events if name == "output"]
    assert [o["block_id"] for o in outputs] == blocks
    assert len({o["id"] for o in outputs}) == len(outputs)
    assert all(o["instance_id"] == instance_id for o in outputs)


async def test_live_stream_follows_a_five_step_run_in_order(env: Env) -> None:
    seq = await env.sequence(5)
    iid = await env.api.create_instance(seq)
    # A 5 s poll: everything after the first event must come through the feed.
    async with await env.open(iid, poll_ms=5000) as resp:
        sse = Sse(resp)
        assert await sse.next() == ("state", {"instance_id": iid, "state": "scheduled"})
        reads_before = env.streams.reads.reads
        t0 = time.monotonic()
        await env.start_engine()
        events = [("state", {"instance_id": iid, "state": "scheduled"}), *await sse.rest()]
        elapsed = time.monotonic() - t0
    check_stream(events, iid, [f"s{i}" for i in range(5)])
    assert "running" in [d["state"] for n, d in events if n == "state"]
    stored = (await env.api.call("GET", f"/api/v1/instances/{iid}/outputs")).body
    assert [d for n, d in events if n == "output"] == stored
    print(f"\nlive 5-step stream: {elapsed * 1000:.0f} ms, {len(events)} events")
    # After the first event: the read at the end, and at most one 5 s poll tick.
    assert env.streams.reads.reads - reads_before <= 2 + 1
    await env.wait_streams(0)


async def test_stream_of_a_finished_instance_replays_and_ends(env: Env) -> None:
    seq = await env.sequence(5, ms=1)
    iid = await env.api.create_instance(seq)
    await env.start_engine()
    await env.wait_state(iid, "completed")
    async with await env.open(iid) as resp:
        events = await Sse(resp).rest()
    stored = (await env.api.call("GET", f"/api/v1/instances/{iid}/outputs")).body
    assert events == [
        ("state", {"instance_id": iid, "state": "completed"}),
        *[("output", o) for o in stored],
        ("done", {"state": "completed"}),
    ]
    # The same on the deprecated bare path.
    async with env.client.get(f"/instances/{iid}/stream") as resp:
        assert resp.headers["Deprecation"]
        assert await Sse(resp).rest() == events


async def test_unknown_or_foreign_instance_is_an_error_event(env: Env) -> None:
    async with await env.open("no-such-instance") as resp:
        assert await Sse(resp).rest() == [("error", {"error": "instance not found"})]
    seq = await env.sequence(1)
    iid = await env.api.create_instance(seq)
    async with await env.open(iid, tenant="someone-else") as resp:
        assert await Sse(resp).rest() == [("error", {"error": "instance not found"})]
    async with await env.open(iid, tenant="acme") as resp:
        assert await Sse(resp).next() == ("state", {"instance_id": iid, "state": "scheduled"})
    await env.wait_streams(0)


async def test_changes_by_another_process_are_seen_by_polling(env: Env) -> None:
    seq = await env.sequence(5)
    iid = await env.api.create_instance(seq)
    other_storage = SqliteStorage(str(env.db_path))
    clock, ids = SystemClock(), UuidGenerator()
    other = build_engine(
        other_storage, HandlerRegistry(BUILTIN_HANDLERS), clock, ids, ENGINE_CONFIG
    )
    try:
        async with await env.open(iid, poll_ms=100) as resp:
            sse = Sse(resp)
            first = await sse.next()
            await other.start()
            events = [first, *await sse.rest()]
    finally:
        await other.stop()
        await other_storage.close()
    check_stream(events, iid, [f"s{i}" for i in range(5)])
    assert env.feed.position == 0  # nothing was published in this process


async def test_poll_ms_must_be_an_integer_and_is_clamped(env: Env) -> None:
    await env.api.expect_error(400, "GET", "/api/v1/instances/x/stream?poll_ms=abc", "poll_ms")
    assert (clamp_poll_ms(1), clamp_poll_ms(500), clamp_poll_ms(10**9)) == (100, 500, 5000)
    async with await env.open("x", poll_ms=0) as resp:
        assert await Sse(resp).rest() == [("error", {"error": "instance not found"})]


async def test_stream_limit_answers_503_and_frees_slots_on_disconnect(
    make_env: MakeEnv, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    env = await make_env(max_streams=2)
    seq = await env.sequence(1)
    iid = await env.api.create_instance(seq)
    first = await env.open(iid, poll_ms=100)
    second = await env.open(iid, poll_ms=100)
    for resp in (first, second):
        assert (await Sse(resp).next())[0] == "state"
    await env.api.expect_error(503, "GET", f"/api/v1/instances/{iid}/stream", "too many")
    first.close()  # the client goes away without a word
    await env.wait_streams(1)
    async with await env.open(iid) as third:
        assert (await Sse(third).next())[0] == "state"
    second.close()
    await env.wait_streams(0)
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert noisy == [], [r.getMessage() for r in noisy]


async def test_shutdown_ends_open_streams(env: Env) -> None:
    seq = await env.sequence(1)
    iid = await env.api.create_instance(seq)
    resp = await env.open(iid, poll_ms=5000)
    sse = Sse(resp)
    assert (await sse.next())[0] == "state"
    t0 = time.monotonic()
    await env.client.server.close()
    assert time.monotonic() - t0 < 10  # not aiohttp's 60 s wait for the handler
    assert await sse.rest() == []
    resp.close()
    assert env.streams.open_streams == 0


async def test_a_reader_that_overflows_resyncs_from_storage(make_env: MakeEnv) -> None:
    env = await make_env(capacity=2)
    steps = [f"s{i}" for i in range(20)]
    seq = await env.api.create_sequence("twenty", blocks=[sleep_step(s, 1) for s in steps])
    iid = await env.api.create_instance(seq)
    async with env.streams.open(iid, caller=None, poll_ms=5000) as events:
        first = await anext(events)
        assert first == StateChanged(iid, first.state)
        await env.start_engine()
        await env.wait_state(iid, "completed")  # far more than 2 changes queue up meanwhile
        rest = [e async for e in events]
    outputs = [e.output.block_id for e in rest if isinstance(e, OutputAdded)]
    assert outputs == steps
    assert rest[-1] == Finished(rest[-2].state)


async def test_streams_of_one_instance_share_their_storage_reads(env: Env) -> None:
    seq = await env.sequence(1)
    iid = await env.api.create_instance(seq)
    streams = [env.streams.open(iid, caller=None, poll_ms=100) for _ in range(50)]
    for s in streams:
        await anext(s)
    before = env.streams.reads.reads
    polls = [asyncio.create_task(_drain_for(s, 1.0)) for s in streams]
    await asyncio.gather(*polls)
    reads = env.streams.reads.reads - before
    print(f"\n50 streams x 1 s at poll_ms=100 on one instance: {reads} storage reads")
    assert reads < 100  # unshared, it would be about 500
    for s in streams:
        await s.aclose()
    assert env.streams.open_streams == 0


async def _drain_for(events: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await anext(events)


def _summary(samples: list[float]) -> str:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[int(len(ms) * 0.95) - 1]
    return f"p50 {statistics.median(ms):.1f} ms, p95 {p95:.1f} ms, max {ms[-1]:.1f} ms"


async def _probe(session: aiohttp.ClientSession, url: str) -> float:
    t0 = time.perf_counter()
    async with session.get(url) as resp:
        assert resp.status == 200
        await resp.read()
    return time.perf_counter() - t0


async def _latencies(
    session: aiohttp.ClientSession, urls: list[str], *, until: Callable[[], bool]
) -> list[list[float]]:
    """Probe each url in turn every 10 ms until `until()`; latencies per url."""
    samples: list[list[float]] = [[] for _ in urls]
    while not until():
        for url, found in zip(urls, samples, strict=True):
            found.append(await _probe(session, url))
        await asyncio.sleep(0.01)
    return samples


async def test_200_concurrent_streams_stay_responsive(env: Env) -> None:
    count, blocks = 200, ["s0", "s1", "s2"]
    seq = await env.api.create_sequence("three", blocks=[sleep_step(b, 300) for b in blocks])
    ids = [await env.api.create_instance(seq) for _ in range(count)]
    base = str(env.client.make_url("")).rstrip("/")
    probes = [f"{base}/health/live", f"{base}/api/v1/instances/{ids[0]}"]
    opened = asyncio.Semaphore(0)
    results: dict[str, list[tuple[str, Any]]] = {}

    async def watch(session: aiohttp.ClientSession, iid: str) -> None:
        async with session.get(f"{base}/api/v1/instances/{iid}/stream") as resp:
            assert resp.status == 200
            sse = Sse(resp)
            first = await sse.next()
            assert first is not None
            opened.release()
            results[iid] = [first, *await sse.rest()]

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as streams_session:
        watchers = [asyncio.create_task(watch(streams_session, iid)) for iid in ids]
        for _ in ids:
            await opened.acquire()
        assert env.streams.open_streams == count
        async with aiohttp.ClientSession() as probe:
            # 2 s idle: four 500 ms poll ticks of all 200 streams.
            idle_until = time.monotonic() + 2.0
            idle = await _latencies(probe, probes, until=lambda: time.monotonic() > idle_until)
            t0 = time.perf_counter()
            await env.start_engine()
            running = asyncio.gather(*watchers)
            busy = await _latencies(probe, probes, until=running.done)
            await running
            run_s = time.perf_counter() - t0
    print(
        f"\n{count} open SSE streams, idle for 2 s:"
        f"\n  GET /health/live     {_summary(idle[0])} ({len(idle[0])} samples)"
        f"\n  GET /instances/{{id}}  {_summary(idle[1])}"
        f"\nwhile all {count} instances run (3 x 300 ms steps), {run_s:.2f} s to the last done:"
        f"\n  GET /health/live     {_summary(busy[0])} ({len(busy[0])} samples)"
        f"\n  GET /instances/{{id}}  {_summary(busy[1])}"
        f"\nstorage reads by streams: {env.streams.reads.reads}, changes published:"
        f" {env.feed.position}"
    )
    assert set(results) == set(ids)
    for iid, events in results.items():
        check_stream(events, iid, blocks)
    await env.wait_streams(0)


async def test_keep_alive_comments_while_nothing_happens(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("orch8.entrypoints.http.stream.KEEPALIVE_S", 0.2)
    seq = await env.sequence(1)
    iid = await env.api.create_instance(seq)
    async with await env.open(iid, poll_ms=100) as resp:
        sse = Sse(resp)
        assert (await sse.next())[0] == "state"
        await asyncio.sleep(1.0)
        await env.start_engine()
        rest = await sse.rest()
    assert sse.comments >= 2
    assert [name for name, _ in rest][-1] == "done"


async def test_storage_errors_while_polling_back_off_and_recover(
    env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    seq = await env.sequence(2)
    iid = await env.api.create_instance(seq)
    store = env.storage.instances
    real_get = store.get
    failures = 0

    async def flaky_get(instance_id: str) -> Any:
        nonlocal failures
        if failures < 3:
            failures += 1
            raise OSError("database is gone for a moment")
        return await real_get(instance_id)

    other_storage = SqliteStorage(str(env.db_path))
    other = build_engine(
        other_storage,
        HandlerRegistry(BUILTIN_HANDLERS),
        SystemClock(),
        UuidGenerator(),
        ENGINE_CONFIG,
    )
    try:
        async with await env.open(iid, poll_ms=100) as resp:
            sse = Sse(resp)
            first = await sse.next()
            monkeypatch.setattr(store, "get", flaky_get)
            await other.start()  # no feed here: only the (failing, then healthy) poll sees it
            events = [first, *await sse.rest()]
    finally:
        await other.stop()
        await other_storage.close()
    check_stream(events, iid, ["s0", "s1"])
    assert failures == 3
    warnings = [r for r in caplog.records if r.name == "orch8.streams"]
    assert len(warnings) == 1  # logged once per run of failures, not per retry
