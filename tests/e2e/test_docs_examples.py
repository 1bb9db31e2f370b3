"""Every sequence marked `<!-- example: sequence -->` in docs/ registers and runs to an end."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.server import ServerProcess
from tests.e2e.test_walking_skeleton import get, post, wait_for_states

DOCS = Path(__file__).resolve().parents[2] / "docs"
MARKER = re.compile(r"<!-- example: sequence -->\s*```json\n(.*?)```", re.S)


def examples() -> list[tuple[str, dict[str, object]]]:
    found = []
    for doc in sorted(DOCS.glob("*.md")):
        for index, match in enumerate(MARKER.finditer(doc.read_text())):
            found.append((f"{doc.name}#{index}", json.loads(match.group(1))))
    return found


def test_docs_carry_examples() -> None:
    assert len(examples()) >= 2


@pytest.mark.parametrize(("where", "body"), examples(), ids=[w for w, _ in examples()])
async def test_documented_sequence_runs(
    tmp_path: Path, where: str, body: dict[str, object]
) -> None:
    with ServerProcess(
        f"sqlite://{tmp_path / 'docs.db'}", log_path=tmp_path / "server.log"
    ) as server:
        async with aiohttp.ClientSession() as session:
            seq = await post(session, f"{server.url}/sequences", body)
            inst = await post(
                session,
                f"{server.url}/instances",
                {"sequence_id": seq["id"], "tenant_id": body["tenant_id"]},
            )
            states = await wait_for_states(
                session, server.url, [inst["id"]], {"completed", "failed"}, within=30
            )
            outputs = await get(session, f"{server.url}/instances/{inst['id']}/outputs")
            assert outputs, where
            expected = "failed" if "fail" in json.dumps(body["blocks"]) else "completed"
            assert states[inst["id"]] == expected, where
