"""Two `orch8 serve` processes on one database share a rate limit of 50 per second.

1,000 instances of a one-step sequence whose step names `rate_limit_key: smtp`
run through two processes sharing PostgreSQL, and through two processes
sharing one SQLite file (and through one process on SQLite, as it is usually
deployed). Every use is given a place in the key's log (polled faster than it
is pruned, and reported). The steps start at their place, within its grace,
so the `log` lines the servers wrote (one per execution, carrying
`instance_id`) may not hold more than 50 in any window of one second, exactly; their outputs,
stored a little later, are held to windows shortened by that latency. Every
instance must complete, each step running exactly once, at about 50/s.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import aiosqlite
import asyncpg
import pytest
from attrs import frozen

from tests.e2e.server import ServerProcess
from tests.e2e.test_walking_skeleton import post

TENANT = "ratelimit"
KEY = "smtp"
MAX_COUNT = 50
WINDOW = timedelta(seconds=1)
GRACE = timedelta(milliseconds=25)  # a twentieth of the window, at most 25 ms
# How long after its start a step's output may be stored: the handler call and the
# snapshot write, batched with others.
OUTPUT_LATENCY = timedelta(milliseconds=200)
MISSED = "missed its rate-limit place"
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


def missed_places(log: Path) -> int:
    """How many places a server saw lapse (the step then asked for a new one)."""
    return sum(1 for line in log.read_text().splitlines() if MISSED in line)


class Backend:
    """Reads what storage recorded, from PostgreSQL or from the SQLite file."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite_path = url.removeprefix("sqlite://") if url.startswith("sqlite:") else None

    async def query(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        if self.sqlite_path is not None:
            sql = sql.replace("$1", "?").replace("$2", "?")
            async with aiosqlite.connect(self.sqlite_path) as db:
                return [tuple(r) for r in await db.execute_fetchall(sql, args)]
        conn = await asyncpg.connect(self.url)
        try:
            return [tuple(r) for r in await conn.fetch(sql, *args)]
        finally:
            await conn.close()

    def instant(self, value: object) -> datetime:
        if isinstance(value, datetime):
            return value
        assert isinstance(value, int)
        return datetime.fromtimestamp(value / 1e6, UTC)

    async def places(self) -> list[datetime]:
        rows = await self.query(
            "SELECT admitted_at FROM rate_limit_admissions WHERE tenant_id = $1"
            " AND resource_key = $2",
            TENANT,
            KEY,
        )
        return [self.instant(r[0]) for r in rows]

    async def output_times(self) -> list[datetime]:
        rows = await self.query(
            "SELECT o.created_at FROM block_outputs o JOIN task_instances i"
            " ON i.id = o.instance_id WHERE i.tenant_id = $1 AND o.block_id = 'send'",
            TENANT,
        )
        return [self.instant(r[0]) for r in rows]


class AdmissionWatcher:
    """Polls the key's log every 0.25 s, well inside the two windows it keeps behind
    now, so every place storage recorded is seen (a multiset: equal instants count)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.seen: Counter[datetime] = Counter()
        self._stop = asyncio.Event()

    async def run(self) -> None:
        while True:
            await self.poll()
            try:
                await asyncio.wait_for(self._stop.wait(), 0.25)
            except TimeoutError:
                continue
            await self.poll()
            return

    async def poll(self) -> None:
        for instant, n in Counter(await self.backend.places()).items():
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
    missed: int

    @property
    def rate(self) -> float:
        times = sorted(t for _, t in self.sends)
        span = (times[-1] - times[0]).total_seconds()
        return (len(times) - 1) / span if span > 0 else float("inf")

    def report(self) -> str:
        logged = [t for _, t in self.sends]
        short = WINDOW - OUTPUT_LATENCY
        return (
            f"{len(self.ids)} instances, {len(self.sends)} sends"
            f" ({len({i for i, _ in self.sends})} distinct) by {len(self.per_process)}"
            f" processes {self.per_process} in {self.elapsed_s:.1f} s: {self.rate:.1f}/s"
            f" (limit {MAX_COUNT}/s); {len(self.admissions)} places ({self.missed} missed),"
            f" max in any {(WINDOW + GRACE).total_seconds():g}-s window"
            f" {max_in_window(self.admissions, WINDOW + GRACE)}; max in any 1-s window:"
            f" places {max_in_window(self.admissions)}, starts (log lines)"
            f" {max_in_window(logged)}, outputs {max_in_window(self.output_times)};"
            f" outputs in any {short.total_seconds():g}-s window"
            f" {max_in_window(self.output_times, short)}"
        )


async def run_rate_limited(
    url: str, tmp_path: Path, *, instances: int = 1000, processes: int = 2
) -> Result:
    """Start servers on `url`, set the limit, run `instances`, wait for all to end."""
    env = {"ORCH8_LOG_LEVEL": "info"}
    group = [
        ServerProcess(url, log_path=tmp_path / f"rl{n}.log", extra_env=env)
        for n in range(processes)
    ]
    for server in group:
        server.start()
    backend = Backend(url)
    watcher = AdmissionWatcher(backend)
    watching = asyncio.create_task(watcher.run())
    try:
        async with aiohttp.ClientSession() as session:
            base = group[0].url
            limit = {"tenant_id": TENANT, "key": KEY, "max_count": MAX_COUNT, "window_seconds": 1}
            await post(session, f"{group[-1].url}/rate-limits", limit)
            seq = await post(session, f"{base}/sequences", SEQUENCE)
            started = time.monotonic()
            batch = [{"sequence_id": seq["id"], "tenant_id": TENANT}] * instances
            await post(session, f"{base}/instances/batch", {"instances": batch})
            deadline = started + instances / MAX_COUNT + 15
            while await unfinished(session, group[-1].url):
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
    per_process = [logged_sends(s.log_path) for s in group]
    return Result(
        instances=instances,
        sends=[s for runs in per_process for s in runs],
        per_process=[len(runs) for runs in per_process],
        admissions=watcher.admissions,
        output_times=await backend.output_times(),
        ids=ids,
        elapsed_s=elapsed,
        missed=sum(missed_places(s.log_path) for s in group),
    )


def test_max_in_window_counts_half_open_windows() -> None:
    t = datetime.fromisoformat("2030-01-01T00:00:00+00:00")
    at = [t, t + timedelta(seconds=0.5), t + WINDOW, t + WINDOW]
    assert max_in_window(at) == 3  # (t, t+1] holds three; t itself has left
    assert max_in_window([]) == 0


@pytest.fixture(
    params=[("postgres", 2), ("sqlite", 1), ("sqlite", 2)], ids=lambda p: f"{p[0]}-x{p[1]}"
)
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, int]:
    """(database url, processes): two processes sharing PostgreSQL; SQLite as it is
    deployed (one process), and two processes sharing its file."""
    backend, processes = request.param
    if backend == "sqlite":
        return f"sqlite://{tmp_path / 'shared.db'}", processes
    return str(request.getfixturevalue("postgres_schema_url")), processes


async def test_processes_never_exceed_fifty_per_second(
    deployment: tuple[str, int], tmp_path: Path
) -> None:
    url, processes = deployment
    result = await run_rate_limited(url, tmp_path, processes=processes)
    print(result.report())
    sent = Counter(instance for instance, _ in result.sends)
    assert len(result.ids) == result.instances
    assert set(sent) == result.ids, "every instance ran its step"
    assert set(sent.values()) == {1}, "and no step ran twice"
    assert all(result.per_process), "every process took a share of the work"
    assert len(result.output_times) == result.instances
    # One place per step, and one more for each place missed (a step woken later
    # than its grace asks again; its unused place is given back, so a watcher
    # polling every 0.25 s may or may not have seen it). Only the start, with
    # 1,000 first asks at once, may make some lapse.
    assert result.instances <= len(result.admissions) <= result.instances + result.missed
    assert result.missed <= result.instances // 5, result.report()
    # What the provider sees: each step starts at its place, within its grace, so
    # no second ever holds more than 50 starts.
    assert max_in_window([t for _, t in result.sends]) <= MAX_COUNT, result.report()
    assert max_in_window(result.output_times, WINDOW - OUTPUT_LATENCY) <= MAX_COUNT
    # Saturated from the start: about the limit. A run spanning S seconds holds up
    # to 50 * (S / 1.025 + 1) starts, so the rate over the span is a little above
    # 50 / 1.025 = 48.8 (about 51 for a 20-s run).
    assert 44 <= result.rate <= MAX_COUNT * 1.1, result.report()
