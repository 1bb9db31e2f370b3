"""`/metrics` moves as work runs: scrape, run sequences end to end, scrape again.

One process (real engine, SQLite, the system clock) runs a step that fails
twice then succeeds, a step that fails for good, a step gated on human input
(a signal), two steps sharing a rate limit of one per minute, a worker's step,
a cron occurrence and an instance recovered from a stale claim; the deltas of
every counter are then exact.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from orch8.application.commands import NewInstance
from orch8.application.engine.service import EngineConfig
from orch8.application.ports.handlers import StepCall, StepFailed
from orch8.bootstrap.process import Process, build
from orch8.bootstrap.settings import Settings
from orch8.domain.instance import InstanceState
from orch8.entrypoints.http.app import create_app
from orch8.entrypoints.http.deps import ApiDeps
from tests.integration.conftest import Api

V1 = "/api/v1"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def flaky(call: StepCall) -> dict[str, Any]:
    """Fails its first two attempts (retryable), succeeds at the third."""
    if call.attempt < 3:
        raise StepFailed(f"attempt {call.attempt} failed", retryable=True)
    return {"attempt": call.attempt}


class Rig:
    def __init__(self, process: Process, client: TestClient[Any, Any]) -> None:
        self.process = process
        self.client = client
        self.api = Api(client, process.storage)

    async def text(self) -> str:
        async with self.client.get("/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            return await resp.text()

    async def scrape(self) -> Samples:
        samples: Samples = {}
        for family in text_string_to_metric_families(await self.text()):
            for s in family.samples:
                samples[(s.name, frozenset(s.labels.items()))] = s.value
        return samples

    async def sequence(self, name: str, blocks: list[dict[str, Any]]) -> str:
        return await self.api.create_sequence(name, blocks=blocks)

    async def start(self, seq_id: str) -> str:
        return await self.api.create_instance(seq_id)

    async def state(self, instance_id: str) -> str:
        reply = await self.api.call("GET", f"{V1}/instances/{instance_id}")
        state: str = reply.body["state"]
        return state

    async def wait_for(self, instance_id: str, *states: str, within: float = 20) -> None:
        deadline = asyncio.get_running_loop().time() + within
        while (state := await self.state(instance_id)) not in states:
            assert asyncio.get_running_loop().time() < deadline, (instance_id, state)
            await asyncio.sleep(0.02)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    settings = Settings(database_url=f"sqlite://{tmp_path / 'metrics.db'}")
    config = EngineConfig(tick_interval_s=0.01, cron_tick_s=0.05, stale_instance_threshold_s=30)
    process = build(settings, handlers={"flaky": flaky}, engine=config)
    await process.open()
    deps = ApiDeps.of(process.use_cases, ready=process.storage.ping)
    client: TestClient[Any, Any] = TestClient(TestServer(create_app(deps)))
    await client.start_server()
    try:
        yield Rig(process, client)
    finally:
        await client.close()
        await process.close()


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    assert key in after, f"{name}{labels} is not in the scrape"
    return after[key] - before.get(key, 0.0)


def retry(max_attempts: int) -> dict[str, Any]:
    return {
        "max_attempts": max_attempts,
        # long enough that the instance is parked between attempts (one claim each)
        "initial_backoff": 200,
        "max_backoff": 200,
        "backoff_multiplier": 1.0,
    }


async def test_metrics_move_as_a_run_goes(rig: Rig) -> None:
    api = rig.api
    noop = await rig.sequence("noop", [{"type": "step", "id": "n", "handler": "noop"}])
    # An instance left `running` by a process that died an hour ago.
    stale = await rig.process.use_cases.instances.create(
        NewInstance(sequence_id=noop, tenant_id="acme"), caller=None
    )
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    await rig.process.storage.instances.update_state(
        stale.instance.id, InstanceState.SCHEDULED, InstanceState.RUNNING, None, hour_ago
    )
    limit = {"tenant_id": "acme", "key": "smtp", "max_count": 1, "window_seconds": 60}
    assert (await api.call("POST", f"{V1}/rate-limits", json=limit)).status == 201
    flaky_seq = await rig.sequence(
        "flaky", [{"type": "step", "id": "a", "handler": "flaky", "retry": retry(3)}]
    )
    doomed = await rig.sequence(
        "doomed",
        [{"type": "step", "id": "b", "handler": "fail", "params": {}, "retry": retry(2)}],
    )
    gated = await rig.sequence(
        "gated",
        [{"type": "step", "id": "gate", "handler": "noop", "wait_for_input": {"prompt": "ok?"}}],
    )
    limited = await rig.sequence(
        "limited", [{"type": "step", "id": "send", "handler": "noop", "rate_limit_key": "smtp"}]
    )
    worked = await rig.sequence("worked", [{"type": "step", "id": "w", "handler": "mailer"}])

    before = await rig.scrape()
    await rig.process.start_engine()  # recovers the stale instance first

    a, b, c = await rig.start(flaky_seq), await rig.start(doomed), await rig.start(gated)
    d1, d2 = await rig.start(limited), await rig.start(limited)
    w = await rig.start(worked)
    # One cron occurrence, three seconds from now (and never again: its year is fixed).
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=3)
    expr = f"{at.second} {at.minute} {at.hour} {at.day} {at.month} * {at.year}"
    body = {"tenant_id": "acme", "sequence_id": noop, "cron_expr": expr, "timezone": "UTC"}
    assert (await api.call("POST", f"{V1}/cron", json=body)).status == 201

    await rig.wait_for(a, "completed")
    await rig.wait_for(b, "failed")
    await rig.wait_for(c, "waiting")
    signal = {"signal_type": {"custom": "human_input:gate"}, "payload": {"value": "yes"}}
    assert (await api.call("POST", f"{V1}/instances/{c}/signals", json=signal)).status == 201
    await rig.wait_for(c, "completed")
    await rig.wait_for(w, "waiting")
    poll = {"handler_name": "mailer", "worker_id": "w1"}
    [task] = (await api.call("POST", f"{V1}/workers/tasks/poll", json=poll)).body
    done = {"worker_id": "w1", "claim_epoch": 1, "output": {"sent": True}}
    path = f"{V1}/workers/tasks/{task['id']}/complete"
    assert (await api.call("POST", path, json=done)).status == 200
    await rig.wait_for(w, "completed")
    await rig.wait_for(stale.instance.id, "completed")
    first, second = sorted([await rig.state(d1), await rig.state(d2)])
    assert (first, second) == ("completed", "scheduled")  # the second waits for its place
    for _ in range(200):  # the cron occurrence
        runs = await api.call("GET", f"{V1}/instances?sequence_id={noop}")
        if len(runs.body["items"]) == 2 and {i["state"] for i in runs.body["items"]} == {
            "completed"
        }:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(runs.body)
    await api.call("GET", "/no/such/route/0123")

    after = await rig.scrape()

    def d(name: str, **labels: str) -> float:
        return delta(before, after, name, **labels)

    # claims: flaky 3 (one per attempt), doomed 2, gated 2 (before and after the
    # signal), limited 1 + 1, worked 2 (dispatch, then its result), cron 1, stale 1
    assert d("orch8_instances_claimed_total") == 13
    # attempts: flaky 3, doomed 2, gate 1, limited 1, worker 1, cron 1, stale 1
    assert d("orch8_steps_executed_total") == 10
    assert d("orch8_steps_failed_total") == 4  # flaky 2, doomed 2
    assert d("orch8_steps_retried_total") == 3  # flaky 2, doomed 1 (its last is final)
    assert d("orch8_instances_completed_total") == 6
    assert d("orch8_instances_failed_total") == 1
    assert d("orch8_signals_delivered_total") == 1
    assert d("orch8_rate_limits_exceeded_total") == 1
    assert d("orch8_cron_triggered_total") == 1
    assert d("orch8_cron_skipped_total") == 0
    assert d("orch8_recovery_stale_instances_total") == 1
    # durations by handler: registered names are their own label, others collapse
    steps = "orch8_step_duration_seconds_count"
    assert d(steps, handler="flaky") == 3
    assert d(steps, handler="fail") == 2
    assert d(steps, handler="noop") == 4
    assert d(steps, handler="external") == 1  # the worker's `mailer`
    assert d("orch8_tick_duration_seconds_count") > 0
    assert d("orch8_instance_processing_seconds_count") == 13
    assert after[("orch8_queue_depth", frozenset())] >= 0
    tasks = {
        dict(labels)["state"]: value
        for (name, labels), value in after.items()
        if name == "orch8_worker_tasks"
    }
    assert tasks == {"pending": 0, "claimed": 0, "completed": 1, "failed": 0, "cancelled": 0}
    # HTTP: by route template and status, never the raw path
    requests = "orch8_http_requests_total"
    created = {"method": "POST", "route": f"{V1}/instances", "status": "201"}
    assert d(requests, **created) == 6
    signals = {"method": "POST", "route": f"{V1}/instances/{{id}}/signals", "status": "201"}
    assert d(requests, **signals) == 1
    assert d(requests, method="GET", route="unmatched", status="404") == 1
    assert d(requests, method="GET", route="/metrics", status="200") == 1  # the first scrape
    text = await rig.text()
    # ids and raw paths never become label values (numbers may hold any digits)
    labels = " ".join(re.findall(r"\{[^}]*\}", text))
    for raw in (a, b, c, task["id"], "/no/such/route", "0123"):
        assert raw not in labels


async def test_step_labels_stay_bounded(rig: Rig) -> None:
    before = await rig.scrape()
    names = [f"handler-{i}" for i in range(50)] + ["wasm://a", "wasm://b", "noop", "flaky"]
    for name in names:
        rig.process.metrics.handler_ran(name, 0.01)
    after = await rig.scrape()
    labels = {
        dict(key[1])["handler"] for key in after if key[0] == "orch8_step_duration_seconds_count"
    }
    builtin = set(rig.process.handlers.names())
    assert labels == builtin | {"wasm", "external"}
    counts = "orch8_step_duration_seconds_count"
    assert delta(before, after, counts, handler="external") == 50
    assert delta(before, after, counts, handler="wasm") == 2
    assert delta(before, after, counts, handler="noop") == 1
    assert delta(before, after, counts, handler="flaky") == 1


async def test_http_metrics_label_requests_by_route_template(rig: Rig) -> None:
    api = rig.api
    seq = await rig.sequence("noop", [{"type": "step", "id": "n", "handler": "noop"}])
    before = await rig.scrape()
    for _ in range(3):
        await api.call("GET", f"{V1}/sequences/{seq}")
        await api.call("GET", f"/sequences/{seq}")  # the deprecated bare mount
    await api.call("GET", f"{V1}/sequences/nope")
    await api.call("TRACE", f"{V1}/sequences")  # 405, under OTHER: methods are not all labels
    after = await rig.scrape()
    req = "orch8_http_requests_total"
    one = f"{V1}/sequences/{{id}}"
    assert delta(before, after, req, method="GET", route=one, status="200") == 3
    assert delta(before, after, req, method="GET", route=one, status="404") == 1
    assert delta(before, after, req, method="GET", route="/sequences/{id}", status="200") == 3
    assert delta(before, after, req, method="OTHER", route="unmatched", status="405") == 1
    duration = "orch8_http_request_duration_seconds_count"
    assert delta(before, after, duration, method="GET", route=one) == 4
    routes = {dict(k[1]).get("route") for k in after if k[0] == req}
    assert all(r == "unmatched" or r.startswith("/") for r in routes)
    assert not any(seq in str(r) for r in routes)


async def test_each_process_keeps_its_own_metrics(tmp_path: Path, rig: Rig) -> None:
    other = build(Settings(database_url="memory://"))
    await rig.scrape()
    rig.process.metrics.scheduler_ticked(5, 0.001)
    mine = await rig.scrape()
    assert mine[("orch8_instances_claimed_total", frozenset())] == 5
    text = (await other.use_cases.metrics.scrape()).body.decode()
    assert re.search(r"^orch8_instances_claimed_total 0\.0$", text, re.M)
    await other.close()
