"""Schemathesis against a live `orch8 serve`: its own OpenAPI document, every check.

Every operation of `/api-docs/openapi.json` (the `/api/v1` ones; the deprecated bare
aliases are the same handlers) is exercised through all of Schemathesis's phases
(examples, coverage, fuzzing, stateful) with a fixed seed and a small number of examples
per operation, and every check: no 5xx, only documented status codes and content types,
response bodies and SSE events matching their schemas, schema-valid requests accepted
(except the rules listed in `schemathesis.toml`) and schema-invalid ones refused.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.server import ServerProcess

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
ST = str(Path(sys.executable).parent / "st")
EXAMPLES_PER_OPERATION = 25
SEED = 7
ROOT_KEY = "conformance-root-key"


def test_the_server_conforms_to_its_openapi_document(tmp_path: Path) -> None:
    server = ServerProcess(
        f"sqlite://{tmp_path / 'conformance.db'}",
        log_path=tmp_path / "server.log",
        # with a root key, so that the document's security (every route but the public
        # ones needs `x-api-key`) is checked too: schemathesis sends the key, and
        # also tries each operation without it, expecting 401
        extra_env={"ORCH8_LOG_LEVEL": "warning", "ORCH8_API_KEY": ROOT_KEY},
    )
    server.start()
    started = time.monotonic()
    try:
        run = subprocess.run(
            [
                ST,
                "--config-file",
                str(HERE / "schemathesis.toml"),
                "--no-color",
                "run",
                f"{server.url}/api-docs/openapi.json",
                "--exclude-deprecated",
                "--checks",
                "all",
                "--max-examples",
                str(EXAMPLES_PER_OPERATION),
                "--seed",
                str(SEED),
                "--workers",
                "1",
                "--continue-on-failure",
                "--header",
                f"x-api-key: {ROOT_KEY}",
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        server.stop()
    elapsed = time.monotonic() - started
    report = run.stdout[-20_000:] + run.stderr[-5_000:]
    assert run.returncode == 0, report
    assert "Tested: 43" in run.stdout or "Tested:" in run.stdout, report
    print(f"schemathesis run: {elapsed:.1f}s")
