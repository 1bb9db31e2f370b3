"""Two `orch8 serve` processes on one PostgreSQL fire a `* * * * * *` schedule once per
second: every second of the run has exactly one instance, none has two.

The run lasts RUN_SECONDS (a minute: duplicates that only show up now and then
need a long run to appear). Both processes tick
the cron loop every second (ORCH8_CRON_TICK_SECS=1) and race for each
occurrence; the claim (FOR UPDATE SKIP LOCKED) gives it to one of them, and the
instance's idempotency key `cron:<id>:<occurrence>` would stop a second
instance even if it did not.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp

from orch8.codec.times import parse_time
from tests.e2e.server import ServerProcess
from tests.e2e.test_walking_skeleton import get, post

RUN_SECONDS = 60
TENANT = "cron-e2e"


def fires_logged(log: Path) -> list[tuple[str, bool]]:
    """(occurrence, deduplicated) of every fire this process made, from its JSON log."""
    found = []
    for line in log.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "fire_at" in record and str(record.get("message", "")).startswith("cron schedule"):
            found.append((str(record["fire_at"]), bool(record["deduplicated"])))
    return found


async def cron_instances(session: aiohttp.ClientSession, url: str) -> list[dict[str, Any]]:
    page = await get(session, f"{url}/instances?tenant_id={TENANT}&limit=1000")
    items: list[dict[str, Any]] = page["items"]
    assert not page["has_more"]
    return items


async def test_two_processes_fire_each_second_once(
    postgres_schema_url: str, tmp_path: Path
) -> None:
    env = {"ORCH8_CRON_TICK_SECS": "1", "ORCH8_LOG_LEVEL": "info"}
    group = [
        ServerProcess(postgres_schema_url, log_path=tmp_path / f"p{n}.log", extra_env=env)
        for n in range(2)
    ]
    for server in group:
        server.start()
    try:
        async with aiohttp.ClientSession() as session:
            seq = await post(
                session,
                f"{group[0].url}/sequences",
                {
                    "tenant_id": TENANT,
                    "name": "tick",
                    "blocks": [{"type": "step", "id": "a", "handler": "noop"}],
                },
            )
            created = await post(
                session,
                f"{group[1].url}/cron",
                {"tenant_id": TENANT, "sequence_id": seq["id"], "cron_expr": "* * * * * *"},
            )
            sid = created["id"]
            await asyncio.sleep(RUN_SECONDS)
            async with session.put(f"{group[0].url}/cron/{sid}", json={"enabled": False}) as r:
                assert r.status == 200, await r.text()
            await asyncio.sleep(1.5)  # a tick that claimed before the PUT settles
            items = await cron_instances(session, group[0].url)
            schedule = await get(session, f"{group[1].url}/cron/{sid}")
    finally:
        for server in group:
            if server.proc is not None:
                assert server.stop() == 0

    fire_times = [i["metadata"]["cron_fire_at"] for i in items]
    per_second = Counter(fire_times)
    assert per_second, "the schedule fired"
    duplicates = {t: n for t, n in per_second.items() if n > 1}
    assert not duplicates, duplicates
    for inst in items:
        assert inst["metadata"]["cron_schedule_id"] == sid
        assert inst["idempotency_key"] == f"cron:{sid}:{inst['metadata']['cron_fire_at']}"
        assert inst["sequence_id"] == seq["id"]
        assert inst["priority"] == "Normal"
    seconds = sorted(parse_time(t, "cron_fire_at") for t in per_second)
    assert all(t.microsecond == 0 for t in seconds)
    expected = [seconds[0] + timedelta(seconds=k) for k in range(len(seconds))]
    missing = sorted(set(expected) - set(seconds))
    assert seconds == expected, f"seconds with no fire: {missing}"
    assert len(seconds) >= RUN_SECONDS - 2, len(seconds)
    assert schedule["last_triggered_at"] is not None

    by_process = [fires_logged(s.log_path) for s in group]
    logged = Counter(t for fires in by_process for t, _ in fires)
    assert logged == per_second  # each instance started by exactly one process, once
    # no process even tried an occurrence another had fired: the claim alone kept
    # them apart (the idempotency key is the safety net for a crash, unused here)
    assert not [t for fires in by_process for t, dedup in fires if dedup]
    shares = [len(fires) for fires in by_process]
    print(f"cron e2e: {len(seconds)} fires in {len(seconds)} s, 0 duplicates, per process {shares}")
