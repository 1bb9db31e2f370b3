"""The dependency-free Node.js worker example completes tasks against a real server."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from orch8.client import Orch8Client
from tests.e2e.server import ServerProcess

NODE = shutil.which("node")
WORKER = Path(__file__).resolve().parents[2] / "examples" / "node-worker" / "worker.mjs"
TENANT = "node"

pytestmark = pytest.mark.skipif(
    NODE is None, reason="`node` is not on PATH; the Node worker example needs Node.js 20+"
)


def events(out: Path) -> list[dict[str, Any]]:
    found = []
    for line in out.read_text().splitlines():
        try:
            found.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return found


def start_node(env: dict[str, str], out: Path, err: Path) -> subprocess.Popen[bytes]:
    assert NODE is not None
    with out.open("wb") as sink, err.open("wb") as errors:
        return subprocess.Popen([NODE, str(WORKER)], env=env, stdout=sink, stderr=errors)


async def wait_event(out: Path, proc: subprocess.Popen[bytes], name: str, within: float) -> None:
    deadline = time.monotonic() + within
    while not any(e.get("event") == name for e in events(out)):
        assert proc.poll() is None, f"node worker exited: {events(out)}"
        assert time.monotonic() < deadline, f"no {name!r} event from the node worker"
        await asyncio.sleep(0.05)


async def test_the_node_worker_completes_tasks_and_stops_on_sigterm(tmp_path: Path) -> None:
    assert NODE is not None
    out = tmp_path / "node.out"
    env = {
        **os.environ,
        "ORCH8_WORKER_ID": "node-e2e",
        "ORCH8_POLL_WAIT_MS": "2000",
        "ORCH8_HEARTBEAT_MS": "500",
        "ORCH8_CONCURRENCY": "4",
    }
    sequence = {
        "tenant_id": TENANT,
        "name": "welcome-mail",
        "blocks": [
            {
                "type": "step",
                "id": "mail",
                "handler": "send_email",
                "params": {"to": "{{ context.data.email }}"},
            },
            {"type": "step", "id": "after", "handler": "noop"},
        ],
    }
    with ServerProcess(
        f"sqlite://{tmp_path / 'orch8.db'}", log_path=tmp_path / "server.log"
    ) as server:
        env["ORCH8_URL"] = server.url
        proc = start_node(env, out, tmp_path / "node.err")
        try:
            await wait_event(out, proc, "ready", within=10)
            async with Orch8Client(server.url, tenant_id=TENANT) as client:
                seq = await client.create_sequence(sequence)
                emails = [f"user{n}@example.com" for n in range(6)]
                ids = [(await client.create_instance(seq, data={"email": e})).id for e in emails]
                done = [await client.wait_for_instance(i, timeout_s=20) for i in ids]
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            code = proc.wait(15)
    assert code == 0, (tmp_path / "node.err").read_text()
    assert [d["state"] for d in done] == ["completed"] * 6
    for instance, email in zip(done, emails, strict=True):
        data = instance["context"]["data"]
        assert data["to"] == email  # the template in params was resolved for the worker
        assert data["sent_by"] == "node-e2e"  # the worker's output merged into context.data
        assert data["message_id"].startswith("msg-")
    seen = events(out)
    completed = [e for e in seen if e["event"] == "completed"]
    assert sorted(e["instance_id"] for e in completed) == sorted(ids)
    assert seen[-1]["event"] == "stopped"
