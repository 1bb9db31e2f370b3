"""The worked example of docs/cli.md runs, as written, in bash against a live server.

Files marked `<!-- example: cli-file PATH -->` are written first (relative to a scratch
folder); then the `<!-- example: cli -->` script runs there with `set -euo pipefail`,
`orch8` on the PATH and `ORCH8_URL` pointing at the server.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.e2e.cli import cli_env
from tests.e2e.server import ORCH8, ServerProcess

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
FILE = re.compile(r"<!-- example: cli-file (\S+) -->\s*```json\n(.*?)```", re.S)
SCRIPT = re.compile(r"<!-- example: cli -->\s*```bash\n(.*?)```", re.S)


def test_the_worked_example_runs(tmp_path: Path) -> None:
    text = DOC.read_text()
    files = FILE.findall(text)
    scripts = SCRIPT.findall(text)
    assert files
    assert len(scripts) == 1
    work = tmp_path / "work"
    for name, body in files:
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(body)
    with ServerProcess(f"sqlite://{tmp_path / 'docs.db'}", log_path=tmp_path / "s.log") as server:
        env = cli_env(server.url)
        del env["ORCH8_TENANT"]  # the script sets its own
        env["PATH"] = f"{Path(ORCH8).parent}:{env.get('PATH', '')}"
        result = subprocess.run(
            ["bash", "-c", "set -euo pipefail\n" + scripts[0]],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "hello  2" in out  # the second apply made version 2
    assert 'output  greet (attempt 1): {"message": "hello ada"' in out
    assert "done    completed" in out
    assert "state      completed" in out  # instances show
    assert '"state": "completed"' in out  # instances list --json
    assert "refused: exit 4" in out
