"""The worked example of docs/security.md runs, as written, against `orch8 serve` with a
root key, and prints what the document says it prints."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.server import ServerProcess

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"
ROOT_KEY = "docs-root-key-0123456789abcdef"


def block(marker: str) -> str:
    match = re.search(rf"<!-- example: {marker} -->\s*```\w*\n(.*?)```", DOC.read_text(), re.S)
    assert match is not None, marker
    return match.group(1)


@pytest.mark.skipif(
    shutil.which("curl") is None or shutil.which("jq") is None, reason="needs curl and jq"
)
def test_the_worked_example_prints_what_the_doc_says(tmp_path: Path) -> None:
    script = block("security-script")
    expected = block("security-output").splitlines()
    extra = {"ORCH8_API_KEY": ROOT_KEY}
    with ServerProcess(
        f"sqlite://{tmp_path / 'docs.db'}", log_path=tmp_path / "server.log", extra_env=extra
    ) as server:
        env = {**os.environ, "ORCH8_URL": server.url, "ORCH8_API_KEY": ROOT_KEY}
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == expected, done.stdout
