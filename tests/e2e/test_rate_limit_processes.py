"""Two `orch8 serve` processes on one PostgreSQL share a rate limit of 50 per second.

1,000 instances of a one-step sequence whose step names `rate_limit_key: smtp`
run through both processes. No one-second window may hold more than 50
admissions (polled from the admission log faster than it is pruned). The steps'
own timestamps, the `log` lines both servers wrote (one per execution, carrying
`instance_id`) and the outputs' created_at, come a little after their admission
(by up to EXECUTION_LATENCY): no window of one second less that latency may hold
more than 50 of them. Every instance must complete, each step running exactly
once, at about 50/s.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
from attrs import frozen

from tests.e2e.server import ServerProcess
from tests.e2e.test_walking_skeleton import post

TENANT = "ratelimit"
KEY = "smtp"
MAX_COUNT = 50
WINDOW = timedelta(seconds=1)
# How long after its admission a step may log and store its output: the wait for
# the key's lock behind the other due instances, the handler call, the write
# (measured here: p99 about 75 ms with 1,000 instances due at once).
EXECUTION_LATENCY = timedelta(milliseconds=200)
MESSAGE = "sent"
SEQUENCE = {
    "tenant_id": TENANT,
    "name": "mailer",
    "blocks": [
        {
            "type": "step",
            "id": "send",
            "handler": "log",
            "params": {"message": MESSAGE},
            "rate_limit_key": KEY,
        }
    ],
}


def max_in_window(times: Sequence[datetime], window: timedelta = WINDOW) -> int:
    """The most instants in any half-open interval of length `window`."""
    ordered = sorted(times)
    best = start = 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def logged_sends(log: Path) -> list[tuple[str, datetime]]:
    """(instance, log time) of every `log` step execution a server wrote."""
    found = []
    for line in log.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("message") == MESSAGE and "instance_id" in record:
            found.append((record["instance_id"], datetime.fromisoformat(record["timestamp"])))
    return found


class AdmissionWatcher:
    """Polls the admission log every 0.25 s, well inside the two windows it keeps,
    so every admission storage recorded is seen (a multiset: equal instants count)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: Counter[datetime] = Counter()
        self._stop = asyncio.Event()

    async def run(self) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            while True:
                await self.poll(conn)
                try:
                    await asyncio.wait_for(self._stop.wait(), 0.25)
                except TimeoutError:
                    continue
                await self.poll(conn)
                return
        finally:
            await conn.close()

    async def poll(self, conn: asyncpg.Connection) -> None:
        rows = await conn.fetch(
            "SELECT admitted_at FROM rate_limit_admissions WHERE tenant_id = $1"
            " AND resource_key = $2",
            TENANT,
            KEY,
        )
        for instant, n in Counter(r[0] for r in rows).items():
            self.seen[instant] = max(self.seen[instant], n)

    def stop(self) -> None:
        self._stop.set()

    @property
    def admissions(self) -> list[datetime]:
        return list(self.seen.elements())


async def unfinished(session: aiohttp.ClientSession, url: str) -> int:
    total = 0
    for state in ("scheduled", "running", "waiting", "failed"):
        async with session.get(
            f"{url}/instances", params={"tenant_id": TENANT, "state": state, "limit": "1000"}
        ) as r:
            total += len((await r.json())["items"])
    return total


async def instance_ids(session: aiohttp.ClientSession, url: str) -> set[str]:
    ids: set[str] = set()
    offset = 0
    while True:
        params = {"tenant_id": TENANT, "limit": "1000", "offset": str(offset)}
        async with session.get(f"{url}/instances", params=params) as r:
            page = await r.json()
        ids.update(i["id"] for i in page["items"])
        if not page["has_more"]:
            return ids
        offset += len(page["items"])


@frozen
class Result:
    instances: int
    sends: list[tuple[str, datetime]]
    per_process: list[int]
    admissions: list[datetime]
    output_times: list[datetime]
    ids: set[str]
    elapsed_s: float

    @property
    def rate(self) -> float:
        times = sorted(t for _, t in self.sends)
        span = (times[-1] - times[0]).total_seconds()
        return (len(times) - 1) / span if span > 0 else float("inf")

    def report(self) -> str:
        logged = [t for _, t in self.sends]
        short = WINDOW - EXECUTION_LATENCY
        return (
            f"{len(self.ids)} instances, {len(self.sends)} sends"
            f" ({len({i for i, _ in self.sends})} distinct) by {len(self.per_process)}"
            f" processes {self.per_process}"
            f" in {self.elapsed_s:.1f} s: {self.rate:.1f}/s (limit {MAX_COUNT}/s); max in any"
            f" 1-s window: admissions {max_in_window(self.admissions)},"
            f" log lines {max_in_window(logged)}, outputs {max_in_window(self.output_times)};"
            f" in any {short.total_seconds():g}-s window: log lines"
            f" {max_in_window(logged, short)}, outputs {max_in_window(self.output_times, short)}"
        )


async def run_rate_limited(url: str, tmp_path: Path, *, instances: int = 1000) -> Result:
    """Start two servers on `url`, set the limit, run `instances`, wait for all to end."""
    env = {"ORCH8_LOG_LEVEL": "info"}
    group = [ServerProcess(url, log_path=tmp_path / f"rl{n}.log", extra_env=env) for n in range(2)]
    for server in group:
        server.start()
    watcher = AdmissionWatcher(url)
    watching = asyncio.create_task(watcher.run())
    try:
        async with aiohttp.ClientSession() as session:
            base = group[0].url
            limit = {"tenant_id": TENANT, "key": KEY, "max_count": MAX_COUNT, "window_seconds": 1}
            await post(session, f"{group[1].url}/rate-limits", limit)
            seq = await post(session, f"{base}/sequences", SEQUENCE)
            started = time.monotonic()
            batch = [{"sequence_id": seq["id"], "tenant_id": TENANT}] * instances
            await post(session, f"{base}/instances/batch", {"instances": batch})
            deadline = started + instances / MAX_COUNT + 15
            while await unfinished(session, group[1].url):
                assert time.monotonic() < deadline, "instances did not all complete"
                await asyncio.sleep(0.25)
            elapsed = time.monotonic() - started
            ids = await instance_ids(session, base)
    finally:
        watcher.stop()
        await watching
        for server in group:
            if server.proc is not None:
                assert server.stop() == 0
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT o.created_at FROM block_outputs o JOIN task_instances i"
            " ON i.id = o.instance_id WHERE i.tenant_id = $1 AND o.block_id = 'send'",
            TENANT,
        )
    finally:
        await conn.close()
    per_process = [logged_sends(s.log_path) for s in group]
    return Result(
        instances=instances,
        sends=[s for runs in per_process for s in runs],
        per_process=[len(runs) for runs in per_process],
        admissions=watcher.admissions,
        output_times=[r[0] for r in rows],
        ids=ids,
        elapsed_s=elapsed,
    )


def test_max_in_window_counts_half_open_windows() -> None:
    t = datetime.fromisoformat("2030-01-01T00:00:00+00:00")
    at = [t, t + timedelta(seconds=0.5), t + WINDOW, t + WINDOW]
    assert max_in_window(at) == 3  # (t, t+1] holds three; t itself has left
    assert max_in_window([]) == 0


async def test_two_processes_never_exceed_fifty_per_second(
    postgres_schema_url: str, tmp_path: Path
) -> None:
    result = await run_rate_limited(postgres_schema_url, tmp_path)
    print(result.report())
    sent = Counter(instance for instance, _ in result.sends)
    assert len(result.ids) == result.instances
    assert set(sent) == result.ids, "every instance ran its step"
    assert set(sent.values()) == {1}, "and no step ran twice"
    assert all(result.per_process), "both processes took a share of the work"
    assert len(result.admissions) == result.instances
    assert len(result.output_times) == result.instances
    # The limiter's guarantee, exact: the admissions storage recorded.
    assert max_in_window(result.admissions) <= MAX_COUNT
    # What the steps did: each runs a little after its admission (its instant is the
    # clock read when its acquire starts; the step runs when the acquire returns), so
    # their own timestamps are held to windows shortened by that latency.
    execution_window = WINDOW - EXECUTION_LATENCY
    assert max_in_window([t for _, t in result.sends], execution_window) <= MAX_COUNT
    assert max_in_window(result.output_times, execution_window) <= MAX_COUNT
    # Saturated from the start: about the limit (a run spanning S seconds may hold
    # up to 50 * (S + 1) sends, so the rate over the span can exceed 50 a little).
    assert 40 <= result.rate <= MAX_COUNT * 1.1, result.report()
