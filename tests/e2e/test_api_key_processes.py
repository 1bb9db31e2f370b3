"""`orch8 serve` with API keys, as real processes: the startup rule for addresses beyond
loopback, and a revocation made through one process refused at once by another
sharing the PostgreSQL database."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import aiohttp

from tests.e2e.server import ORCH8, ServerProcess, free_port

ROOT_KEY = "e2e-root-key-0123456789abcdef"


def test_beyond_loopback_without_a_key_refuses_to_start(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "ORCH8_DATABASE_URL": f"sqlite://{tmp_path / 'orch8.db'}",
        "ORCH8_HTTP_ADDR": f"0.0.0.0:{free_port()}",
    }
    env.pop("ORCH8_API_KEY", None)
    env.pop("ORCH8_INSECURE", None)
    done = subprocess.run(
        [ORCH8, "serve"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2, done.stderr
    assert "refusing to serve 0.0.0.0 without an API key" in done.stderr
    assert "ORCH8_API_KEY" in done.stderr
    assert "ORCH8_INSECURE" in done.stderr
    assert not (tmp_path / "orch8.db").exists()  # refused before anything was opened


async def _status(session: aiohttp.ClientSession, url: str, key: str | None = None) -> int:
    headers = {} if key is None else {"x-api-key": key}
    async with session.get(url, headers=headers) as resp:
        return resp.status


async def test_beyond_loopback_starts_with_insecure_or_a_key(tmp_path: Path) -> None:
    for name, extra in (
        ("insecure", {"ORCH8_INSECURE": "true"}),
        ("key", {"ORCH8_API_KEY": ROOT_KEY}),
    ):
        server = ServerProcess(
            f"sqlite://{tmp_path / f'{name}.db'}", log_path=tmp_path / f"{name}.log"
        )
        server.extra_env = {"ORCH8_HTTP_ADDR": f"0.0.0.0:{server.port}", **extra}
        with server:
            async with aiohttp.ClientSession() as session:
                sequences = f"{server.url}/api/v1/sequences"
                expected = 200 if name == "insecure" else 401
                assert await _status(session, sequences) == expected
                if name == "key":
                    assert await _status(session, sequences, ROOT_KEY) == 200
        if name == "insecure":
            assert "without authentication" in (tmp_path / f"{name}.log").read_text()


async def test_loopback_starts_with_no_configuration(tmp_path: Path) -> None:
    db = f"sqlite://{tmp_path / 'orch8.db'}"
    with ServerProcess(db, log_path=tmp_path / "s.log") as server:
        async with aiohttp.ClientSession() as session:
            assert await _status(session, f"{server.url}/api/v1/sequences") == 200


async def test_a_revocation_reaches_every_process_at_once(
    postgres_schema_url: str, tmp_path: Path
) -> None:
    env = {"ORCH8_API_KEY": ROOT_KEY}
    first, second = (
        ServerProcess(postgres_schema_url, log_path=tmp_path / f"p{n}.log", extra_env=env)
        for n in range(2)
    )
    root = {"x-api-key": ROOT_KEY}
    with first, second:
        async with aiohttp.ClientSession() as session:
            mint = f"{first.url}/api/v1/api-keys"
            async with session.post(mint, json={"tenant_id": "acme"}, headers=root) as resp:
                assert resp.status == 201
                minted = await resp.json()
            secret = minted["secret"]
            for server in (first, second):
                assert await _status(session, f"{server.url}/api/v1/sequences", secret) == 200
            revoke = f"{first.url}/api/v1/api-keys/{minted['id']}"
            async with session.delete(revoke, headers=root) as resp:
                assert resp.status == 204
            # The very next request to the other process is refused: nothing is cached.
            assert await _status(session, f"{second.url}/api/v1/sequences", secret) == 401
            assert await _status(session, f"{first.url}/api/v1/sequences", secret) == 401
            assert await _status(session, f"{second.url}/api/v1/sequences", ROOT_KEY) == 200
