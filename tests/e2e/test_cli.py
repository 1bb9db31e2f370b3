"""The `orch8` client commands, run as processes against a live `orch8 serve` on SQLite."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.cli import cli_env, orch8, orch8_json
from tests.e2e.server import ORCH8, ServerProcess, free_port

GREET = {
    "name": "greet",
    "blocks": [
        {
            "type": "step",
            "id": "hello",
            "handler": "log",
            "params": {"message": "hi {{ data.user }}"},
        },
        {
            "type": "parallel",
            "id": "both",
            "branches": [
                [{"type": "step", "id": "left", "handler": "noop"}],
                [{"type": "step", "id": "right", "handler": "noop"}],
            ],
        },
    ],
}
FAILS = {"name": "fails", "blocks": [{"type": "step", "id": "boom", "handler": "fail"}]}
SLOW = {
    "name": "slow",
    "blocks": [
        {"type": "step", "id": "later", "handler": "noop", "delay": {"duration": 600_000}},
    ],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("cli")
    with ServerProcess(f"sqlite://{tmp / 'cli.db'}", log_path=tmp / "server.log") as proc:
        yield proc


@pytest.fixture(scope="module")
def registered(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> None:
    """GREET, FAILS and SLOW registered for tenant acme."""
    folder = tmp_path_factory.mktemp("defs")
    for body in (GREET, FAILS, SLOW):
        (folder / f"{body['name']}.json").write_text(json.dumps(body))
    orch8_json("sequences", "apply", str(folder), url=server.url)


def start(server: ServerProcess, name: str, data: str = "{}") -> str:
    result = orch8("instances", "start", name, "--data", data, "-q", url=server.url)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def wait_for_state(server: ServerProcess, instance_id: str, wanted: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        shown = orch8_json("instances", "show", instance_id, url=server.url)
        instance: dict[str, Any] = shown["instance"]
        if instance["state"] == wanted or time.monotonic() > deadline:
            assert instance["state"] == wanted
            return instance
        time.sleep(0.1)


def test_apply_a_directory_creates_a_version_per_file_each_time(
    server: ServerProcess, tmp_path: Path
) -> None:
    folder = tmp_path / "sequences"
    folder.mkdir()
    for name in ("alpha", "beta"):
        body = {"name": name, "blocks": [{"type": "step", "id": "a", "handler": "noop"}]}
        (folder / f"{name}.json").write_text(json.dumps(body))
    (folder / "notes.txt").write_text("not a definition")

    first = orch8_json("sequences", "apply", str(folder), url=server.url)
    second = orch8_json("sequences", "apply", str(folder), url=server.url)

    assert [(a["name"], a["version"], a["tenant_id"]) for a in first] == [
        ("alpha", 1, "acme"),
        ("beta", 1, "acme"),
    ]
    assert [(a["name"], a["version"]) for a in second] == [("alpha", 2), ("beta", 2)]
    assert [Path(a["file"]).name for a in second] == ["alpha.json", "beta.json"]
    listed = orch8_json("sequences", "list", url=server.url)
    versions = {(s["name"], s["version"]) for s in listed["items"]}
    assert {("alpha", 1), ("alpha", 2), ("beta", 1), ("beta", 2)} <= versions
    assert listed["has_more"] is False
    table = orch8("sequences", "list", url=server.url)
    assert table.returncode == 0
    assert table.stdout.splitlines()[0].split() == [
        "NAME",
        "VERSION",
        "NAMESPACE",
        "STATUS",
        "CREATED",
        "ID",
    ]
    # another tenant sees none of them
    assert orch8_json("sequences", "list", url=server.url, tenant="other")["items"] == []


def test_apply_refusals_and_bad_files(server: ServerProcess, tmp_path: Path) -> None:
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps({"name": "nothing"}))
    result = orch8("sequences", "apply", str(invalid), url=server.url)
    assert result.returncode == 4
    assert "invalid.json: 400: blocks: is required" in result.stderr

    foreign = tmp_path / "foreign.json"
    foreign.write_text(json.dumps({**GREET, "tenant_id": "someone-else"}))
    assert orch8("sequences", "apply", str(foreign), url=server.url).returncode == 4

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.json").write_text(json.dumps({**GREET, "name": "never-sent"}))
    (broken / "b.json").write_text("{not json")
    result = orch8("sequences", "apply", str(broken), url=server.url)
    assert result.returncode == 2
    assert "b.json: not valid JSON" in result.stderr
    # nothing was sent: the good file before the broken one is not registered either
    names = {s["name"] for s in orch8_json("sequences", "list", url=server.url)["items"]}
    assert "never-sent" not in names

    empty = tmp_path / "empty"
    empty.mkdir()
    assert orch8("sequences", "apply", str(empty), url=server.url).returncode == 2
    assert orch8("sequences", "apply", str(tmp_path / "missing"), url=server.url).returncode == 2


@pytest.mark.usefixtures("registered")
def test_start_watch_show_and_list_an_instance_to_completion(server: ServerProcess) -> None:
    started = orch8_json("instances", "start", "greet", "--data", '{"user": "ada"}', url=server.url)
    assert started["deduplicated"] is False
    assert (started["name"], started["version"]) == ("greet", 1)

    watched = orch8("instances", "watch", started["id"], "--json", url=server.url)
    assert watched.returncode == 0, watched.stderr
    events = [json.loads(line) for line in watched.stdout.splitlines()]
    assert events[0]["event"] == "state"
    assert events[-1] == {"event": "done", "data": {"state": "completed"}}
    outputs = [e["data"] for e in events if e["event"] == "output"]
    assert {o["block_id"] for o in outputs} == {"hello", "left", "right"}
    assert next(o for o in outputs if o["block_id"] == "hello")["output"]["message"] == "hi ada"

    shown = orch8_json("instances", "show", started["id"], url=server.url)
    assert shown["instance"]["state"] == "completed"
    assert shown["instance"]["context"]["data"] == {"user": "ada"}
    tree = {node["block_id"]: node for node in shown["tree"]}
    assert set(tree) == {"hello", "both", "left", "right"}
    assert tree["left"]["parent_id"] == tree["both"]["id"]
    assert shown["outputs"][0]["block_id"] == "hello"

    human = orch8("instances", "show", started["id"], url=server.url)
    assert human.returncode == 0
    assert "state      completed" in human.stdout
    assert "\n    left" in human.stdout  # indented under `both`

    text = orch8("instances", "watch", started["id"], url=server.url)  # replays an ended one
    assert text.returncode == 0
    assert text.stdout.splitlines()[-1].split() == ["done", "completed"]

    page = orch8_json("instances", "list", "--state", "completed", url=server.url)
    assert started["id"] in {i["id"] for i in page["items"]}
    assert {i["state"] for i in page["items"]} == {"completed"}
    quiet = orch8("instances", "list", "--state", "running,completed", "-q", url=server.url)
    assert started["id"] in quiet.stdout.split()
    assert orch8_json("instances", "list", url=server.url, tenant="other")["items"] == []
    assert orch8("instances", "show", started["id"], url=server.url, tenant="other").returncode == 3


@pytest.mark.usefixtures("registered")
def test_idempotency_key_starts_one_instance(server: ServerProcess) -> None:
    args = ("instances", "start", "slow", "--idempotency-key", "once")
    first = orch8_json(*args, url=server.url)
    again = orch8_json(*args, url=server.url)
    assert again == {**first, "deduplicated": True}
    assert orch8("instances", "signal", first["id"], "cancel", url=server.url).returncode == 0


@pytest.mark.usefixtures("registered")
def test_watch_exit_code_says_failed(server: ServerProcess) -> None:
    instance_id = start(server, "fails")
    watched = orch8("instances", "watch", instance_id, url=server.url)
    assert watched.returncode == 5, watched.stderr
    assert "error   boom (attempt 1)" in watched.stdout
    assert watched.stdout.splitlines()[-1].split() == ["done", "failed"]


@pytest.mark.usefixtures("registered")
def test_signals_pause_resume_update_custom_and_cancel(server: ServerProcess) -> None:
    instance_id = start(server, "slow", '{"n": 1}')
    watcher = subprocess.Popen(
        [ORCH8, "instances", "watch", instance_id],
        env=cli_env(server.url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        sent = orch8_json("instances", "signal", instance_id, "pause", url=server.url)
        assert sent["signal_type"] == "pause"
        assert sent["signal_id"]
        wait_for_state(server, instance_id, "paused")
        assert orch8("instances", "signal", instance_id, "resume", url=server.url).returncode == 0
        wait_for_state(server, instance_id, "scheduled")

        update = ("instances", "signal", instance_id, "update_context")
        assert orch8(*update, "--payload", '{"data": {"n": 2}}', url=server.url).returncode == 0
        deadline = time.monotonic() + 30
        while wait_for_state(server, instance_id, "scheduled")["context"]["data"] != {"n": 2}:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert orch8(*update, "--payload", "[1]", url=server.url).returncode == 4
        assert orch8(*update, "--payload", "{oops", url=server.url).returncode == 2

        custom = orch8_json(
            "instances", "signal", instance_id, "nudge", "--payload", '{"x": 1}', url=server.url
        )
        assert custom["signal_type"] == {"custom": "nudge"}

        assert orch8("instances", "signal", instance_id, "cancel", url=server.url).returncode == 0
        out, err = watcher.communicate(timeout=60)
    finally:
        watcher.kill()
        watcher.wait()
    assert watcher.returncode == 6, err
    assert out.splitlines()[-1].split() == ["done", "cancelled"]
    # an ended instance takes no more signals
    assert orch8("instances", "signal", instance_id, "resume", url=server.url).returncode == 4


@pytest.mark.usefixtures("registered")
def test_error_exit_codes(server: ServerProcess) -> None:
    unknown = "01a00000-0000-7000-8000-000000000000"
    for args in (
        ("instances", "show", unknown),
        ("instances", "watch", unknown),
        ("instances", "signal", unknown, "pause"),
        ("instances", "start", "no-such-sequence"),
        ("instances", "start", "greet", "--version", "99"),
    ):
        result = orch8(*args, url=server.url)
        assert result.returncode == 3, (args, result.stderr)
        assert result.stderr.startswith("orch8: "), result.stderr
        assert result.stdout == ""

    for args in (
        ("instances", "start", "greet", "--data", "{not json"),
        ("instances", "start", "greet", "--data", "[1, 2]"),
        ("instances", "start", "greet", "--data", "@/no/such/file.json"),
        ("instances", "list", "--state", "sleeping"),
        ("instances", "list", "--limit", "0"),
        ("instances", "frobnicate"),
    ):
        result = orch8(*args, url=server.url)
        assert result.returncode == 2, (args, result.stderr)

    assert orch8("sequences", "list", url="ftp://example.com").returncode == 2
    nobody = f"http://127.0.0.1:{free_port()}"
    for args in (("sequences", "list"), ("instances", "watch", unknown)):
        result = orch8(*args, url=nobody)
        assert result.returncode == 1, result.stderr
        assert "orch8: " in result.stderr


@pytest.mark.usefixtures("registered")
def test_data_from_a_file_and_the_versioned_url(server: ServerProcess, tmp_path: Path) -> None:
    data = tmp_path / "data.json"
    data.write_text('{"user": "grace"}')
    result = orch8(
        "instances", "start", "greet", "--data", f"@{data}", "-q", url=f"{server.url}/api/v1/"
    )
    assert result.returncode == 0, result.stderr
    assert orch8("instances", "watch", result.stdout.strip(), url=server.url).returncode == 0


@pytest.mark.usefixtures("registered")
def test_interrupting_watch_exits_130(server: ServerProcess) -> None:
    instance_id = start(server, "slow")
    watcher = subprocess.Popen(
        [ORCH8, "instances", "watch", instance_id],
        env=cli_env(server.url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        assert watcher.stdout.readline().split() == ["state", "scheduled"]
        watcher.send_signal(signal.SIGINT)
        _out, err = watcher.communicate(timeout=30)
    finally:
        watcher.kill()
        watcher.wait()
    assert watcher.returncode == 130
    assert err == "orch8: interrupted\n"
    assert orch8("instances", "signal", instance_id, "cancel", url=server.url).returncode == 0


def test_watch_exits_1_when_the_server_goes_away(tmp_path: Path) -> None:
    with ServerProcess(f"sqlite://{tmp_path / 'w.db'}", log_path=tmp_path / "s.log") as server:
        definition = tmp_path / "slow.json"
        definition.write_text(json.dumps(SLOW))
        assert orch8("sequences", "apply", str(definition), url=server.url).returncode == 0
        instance_id = start(server, "slow")
        watcher = subprocess.Popen(
            [ORCH8, "instances", "watch", instance_id],
            env=cli_env(server.url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert watcher.stdout is not None
            assert watcher.stdout.readline().split() == ["state", "scheduled"]
            assert server.stop() == 0
            _out, err = watcher.communicate(timeout=60)
        finally:
            watcher.kill()
            watcher.wait()
    assert watcher.returncode == 1
    assert "ended before the instance did" in err


def test_serve_takes_insecure_and_the_listen_flags(tmp_path: Path) -> None:
    port = free_port()
    env = {**cli_env("http://unused"), "ORCH8_LOG_LEVEL": "warn"}
    log = (tmp_path / "serve.log").open("wb")
    args = ["--insecure", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(
        [ORCH8, "serve", *args, "--storage", f"sqlite://{tmp_path / 'i.db'}"],
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while orch8("sequences", "list", url=url).returncode != 0:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        proc.terminate()
        assert proc.wait(30) == 0
    finally:
        proc.kill()
        proc.wait()
        log.close()
