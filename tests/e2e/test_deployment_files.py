"""The Dockerfile and docker-compose.yml, checked as far as a machine without Docker can.

No image is built here. What is checked: the Dockerfile's shape (slim Python base,
`pip install .`, a non-root user, no secret baked in), that the command it runs parses
the settings it sets and serves with them (the port and database moved to temporary
ones), that its health check command passes against that live server and fails once it
is gone, and that the compose file is valid YAML wiring orch8 to PostgreSQL.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from orch8.bootstrap.settings import Settings, load_settings
from orch8.entrypoints.serve import HTTP_CLOSE_TIMEOUT_S
from tests.e2e.server import ORCH8, free_port

ROOT = Path(__file__).resolve().parents[2]


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = (ROOT / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def one(name: str) -> str:
    values = [rest for word, rest in instructions() if word == name]
    assert len(values) == 1, (name, values)
    return values[0]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in instructions():
        if word == "ENV":
            for pair in shlex.split(rest):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def healthcheck_argv() -> list[str]:
    rest = one("HEALTHCHECK")
    argv: list[str] = json.loads(rest[rest.index("CMD") + 3 :].strip())
    return argv


def test_the_image_is_slim_non_root_and_carries_no_secret() -> None:
    assert re.fullmatch(r"python:3\.\d+-slim", one("FROM")), one("FROM")
    runs = " ".join(rest for word, rest in instructions() if word == "RUN")
    assert "pip install ." in runs
    user = one("USER")
    assert user not in ("root", "0") and not user.startswith("0:")
    env = image_env()
    assert env["ORCH8_HTTP_ADDR"] == "0.0.0.0:8080"
    assert "ORCH8_API_KEY" not in env  # given at run time, never baked into the image
    assert json.loads(one("CMD")) == ["orch8", "serve"]
    argv = healthcheck_argv()
    assert argv[0] == "python" and "/health/live" in " ".join(argv)
    assert not any(tool in " ".join(argv) for tool in ("curl", "wget"))
    assert one("STOPSIGNAL") == "SIGTERM"


def test_the_image_settings_parse() -> None:
    settings = load_settings(env={**image_env(), "ORCH8_API_KEY": "root-key"})
    assert settings.http_addr == "0.0.0.0:8080"
    assert settings.database_url.startswith("sqlite:///var/lib/orch8/")


def run_healthcheck(env: dict[str, str]) -> int:
    argv = [sys.executable if a == "python" else a for a in healthcheck_argv()]
    return subprocess.run(argv, env=env, capture_output=True, timeout=30).returncode


def test_the_command_serves_and_the_healthcheck_follows_it(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        **image_env(),
        # The image's settings, but a free port and a temporary database here.
        "ORCH8_HTTP_ADDR": f"0.0.0.0:{port}",
        "ORCH8_DATABASE_URL": f"sqlite://{tmp_path / 'orch8.db'}",
        "ORCH8_API_KEY": "root-key-for-this-test",
    }
    command = json.loads(one("CMD"))
    assert command[0] == "orch8"
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen([ORCH8, *command[1:]], env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, (tmp_path / "server.log").read_text()
            try:
                url = f"http://127.0.0.1:{port}/health/ready"
                with urllib.request.urlopen(url, timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(0.05)
        assert run_healthcheck(env) == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert run_healthcheck(env) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_runs_orch8_on_postgres_with_a_required_api_key() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "orch8"}
    pg, app = services["postgres"], services["orch8"]
    assert str(pg["image"]).startswith("postgres:")
    assert pg["healthcheck"]["test"]
    assert app["build"] == "."
    assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
    env = app["environment"]
    assert env["ORCH8_HTTP_ADDR"] == "0.0.0.0:8080"
    assert env["ORCH8_API_KEY"].startswith("${ORCH8_API_KEY:?")  # compose refuses without it
    url = re.sub(r"\$\{(\w+):-([^}]*)\}", r"\2", env["ORCH8_DATABASE_URL"])
    assert url == "postgresql://orch8:orch8@postgres:5432/orch8"
    settings = load_settings(
        env={**{k: str(v) for k, v in env.items()}, "ORCH8_DATABASE_URL": url, "ORCH8_API_KEY": "k"}
    )
    # `docker stop` must wait out the drain: the grace period, then closing HTTP.
    stop = int(str(app["stop_grace_period"]).removesuffix("s"))
    assert stop > settings.shutdown_grace_period_secs + HTTP_CLOSE_TIMEOUT_S
    assert Settings().shutdown_grace_period_secs == settings.shutdown_grace_period_secs
