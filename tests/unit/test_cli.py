"""The `orch8` command without a server: flags to settings, exit codes, rendering."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from orch8.bootstrap.settings import Settings
from orch8.client import ServerEvent
from orch8.domain.errors import ValidationError
from orch8.entrypoints import cli as cli_module
from orch8.entrypoints import serve as serve_module
from orch8.entrypoints.cli import cli, main
from orch8.entrypoints.cli import server as server_module
from orch8.entrypoints.cli.common import (
    ExitCode,
    Failure,
    Remote,
    exit_code_of,
    read_json_text,
)
from orch8.entrypoints.cli.render import compact, table, tree_rows
from orch8.entrypoints.cli.server import server_settings
from orch8.entrypoints.cli.watch import describe, outcome


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ORCH8_* variable of the caller's leaks in; logging is left alone."""
    for name in [n for n in os.environ if n.startswith("ORCH8_")]:
        monkeypatch.delenv(name)
    monkeypatch.setattr(server_module, "configure_logging", lambda *a, **k: None)


def test_flags_become_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH8_HTTP_ADDR", "0.0.0.0:9000")
    settings = server_settings(None, storage="memory://", port=9100, insecure=True)
    assert (settings.http_addr, settings.database_url) == ("0.0.0.0:9100", "memory://")
    assert settings.insecure is True
    # --grpc-port feeds grpc_addr, which is refused until orch8 serves gRPC
    with pytest.raises(ValidationError, match="gRPC is not available yet"):
        server_settings(None, storage="memory://", grpc_port=6000)
    assert server_settings(None, storage=None, host="127.0.0.2").http_addr == "127.0.0.2:9000"


def test_insecure_comes_from_the_environment_and_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert server_settings(None, storage=None).insecure is False
    config = tmp_path / "orch8.toml"
    config.write_text("[api]\ninsecure = true\n")
    assert server_settings(str(config), storage=None).insecure is True
    monkeypatch.setenv("ORCH8_INSECURE", "true")
    assert server_settings(None, storage=None).insecure is True
    # without the flag the environment stands (the flag only ever turns it on)
    assert server_settings(None, storage=None, insecure=False).insecure is True


def test_serve_passes_its_settings_to_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    got: list[Settings] = []

    async def fake_serve(settings: Settings) -> None:
        got.append(settings)

    monkeypatch.setattr(serve_module, "serve", fake_serve)
    result = CliRunner().invoke(cli, ["serve", "--insecure", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert got[0].insecure is True
    assert got[0].http_addr == "127.0.0.1:8123"

    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 0
    assert got[1].insecure is False


def test_serve_exit_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    async def address_in_use(settings: Settings) -> None:
        raise OSError(98, "address already in use")

    monkeypatch.setattr(serve_module, "serve", address_in_use)
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 1
    assert result.stderr == "orch8: [Errno 98] address already in use\n"

    monkeypatch.setenv("ORCH8_BATCH_SIZE", "ten")
    result = CliRunner().invoke(cli, ["serve"])
    assert result.exit_code == 2
    assert result.stderr == ("orch8: configuration error: ORCH8_BATCH_SIZE: must be an integer\n")
    assert CliRunner().invoke(cli, ["serve", "--port", "eighty"]).exit_code == 2


def test_migrate_creates_the_schema_and_reports_errors(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'm.db'}"
    result = CliRunner().invoke(cli, ["migrate", "--storage", url])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"schema up to date ({url})\n"
    assert (tmp_path / "m.db").exists()

    result = CliRunner().invoke(cli, ["migrate", "--config", str(tmp_path / "none.toml")])
    assert result.exit_code == 2
    assert "configuration error" in result.stderr

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    refused = f"postgresql://u:secret@127.0.0.1:{port}/db"
    result = CliRunner().invoke(cli, ["migrate", "--storage", refused])
    assert result.exit_code == 1
    assert result.stderr.startswith("orch8: ")


def test_main_returns_the_exit_code() -> None:
    assert main(["--version"]) == 0
    assert main([]) == 2  # a command is required
    assert main(["instances", "list", "--url", "nope"]) == 2
    assert cli_module.main is main


def test_exit_codes_of_statuses() -> None:
    assert [exit_code_of(s) for s in (0, 400, 403, 404, 409, 413, 500, 503)] == [
        ExitCode.SERVER,
        ExitCode.REFUSED,
        ExitCode.REFUSED,
        ExitCode.NOT_FOUND,
        ExitCode.REFUSED,
        ExitCode.REFUSED,
        ExitCode.SERVER,
        ExitCode.SERVER,
    ]


def test_remote_client_talks_to_the_versioned_api_with_the_headers() -> None:
    for url in ("http://h:1", "http://h:1/", "http://h:1/api/v1", "http://h:1/api/v1/"):
        client = Remote(url, "k3y", "acme", as_json=False).client()
        assert client.base_url == "http://h:1/api/v1"
        assert client.tenant_id == "acme"
        assert client._headers["x-api-key"] == "k3y"
        assert client._headers["x-tenant-id"] == "acme"
    assert "x-api-key" not in Remote("http://h", None, "t", as_json=True).client()._headers


def test_json_option_values(tmp_path: Path) -> None:
    data = tmp_path / "d.json"
    data.write_text('{"a": [1, 2]}')
    assert read_json_text(f"@{data}") == {"a": [1, 2]}
    assert read_json_text("null") is None
    with pytest.raises(ValueError, match="not valid JSON"):
        read_json_text("{a")
    with pytest.raises(ValueError, match="cannot read"):
        read_json_text(f"@{tmp_path / 'missing.json'}")


def test_bad_data_is_a_usage_error_before_any_request() -> None:
    # nothing listens at this URL: a request would be exit 1, not 2
    args = ["instances", "start", "x", "--url", "http://127.0.0.1:9"]
    result = CliRunner().invoke(cli, [*args, "--data", "{bad"])
    assert result.exit_code == 2
    assert "--data" in result.stderr
    assert CliRunner().invoke(cli, [*args, "--data", '"text"']).exit_code == 2
    sig = ["instances", "signal", "i", "pause", "--url", "http://127.0.0.1:9"]
    assert CliRunner().invoke(cli, [*sig, "--payload", "{"]).exit_code == 2


def test_tables_align_and_cut_long_values() -> None:
    assert table(("A", "LONGER"), [("x", None), ("yyyy", {"k": True})]).splitlines() == [
        "A     LONGER",
        "x     -",
        'yyyy  {"k": true}',
    ]
    assert compact("z" * 100, 10) == "z" * 9 + "…"


def test_tree_rows_nest_children_under_their_parent() -> None:
    nodes = [
        {"id": "1", "block_id": "a", "parent_id": None},
        {"id": "2", "block_id": "par", "parent_id": None},
        {"id": "3", "block_id": "b", "parent_id": "2"},
        {"id": "4", "block_id": "c", "parent_id": "2"},
        {"id": "5", "block_id": "orphan", "parent_id": "gone"},
        {"id": "6", "block_id": "deep", "parent_id": "3"},
    ]
    assert [(depth, node["block_id"]) for depth, node in tree_rows(nodes)] == [
        (0, "a"),
        (0, "par"),
        (1, "b"),
        (2, "deep"),
        (1, "c"),
        (0, "orphan"),
    ]


def test_watch_lines_and_outcomes() -> None:
    assert describe("state", {"state": "running"}) == "state   running"
    failed_attempt = {
        "block_id": "pay",
        "attempt": 2,
        "output_ref": "__error__",
        "output": {"error": "declined", "retryable": False},
    }
    assert describe("output", failed_attempt) == "error   pay (attempt 2): declined"
    assert describe("output", {"block_id": "a", "attempt": 1, "output": {"n": 1}}) == (
        'output  a (attempt 1): {"n": 1}'
    )
    done = ServerEvent("done", "")
    assert outcome(done, {"state": "completed"}) is ExitCode.OK
    assert outcome(done, {"state": "failed"}) is ExitCode.FAILED
    assert outcome(done, {"state": "cancelled"}) is ExitCode.CANCELLED
    assert outcome(ServerEvent("state", ""), {"state": "running"}) is None
    with pytest.raises(Failure, match="instance not found") as caught:
        outcome(ServerEvent("error", ""), {"error": "instance not found"})
    assert caught.value.exit_code == ExitCode.NOT_FOUND
