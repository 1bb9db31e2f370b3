"""Run the `orch8` command as a real child process, as a script would."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.e2e.server import ORCH8


def cli_env(url: str, tenant: str = "acme", **extra: str) -> dict[str, str]:
    """The caller's environment with the client variables set (and no stray API key)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH8_")}
    return {**env, "ORCH8_URL": url, "ORCH8_TENANT": tenant, **extra}


def orch8(
    *args: str, url: str, tenant: str = "acme", cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ORCH8, *args],
        env=cli_env(url, tenant),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def orch8_json(*args: str, url: str, tenant: str = "acme", cwd: Path | None = None) -> Any:
    """Run a command with --json; it must succeed and print one JSON document."""
    result = orch8(*args, "--json", url=url, tenant=tenant, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
