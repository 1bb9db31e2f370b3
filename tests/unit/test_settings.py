"""Settings precedence and validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from orch8.bootstrap.settings import load_settings, redacted_url
from orch8.bootstrap.storage import sqlite_path
from orch8.domain.errors import ValidationError


def test_defaults_serve_localhost_on_sqlite() -> None:
    s = load_settings(env={})
    assert (s.http_addr, s.database_url, s.tick_interval_ms) == (
        "127.0.0.1:8080",
        "sqlite://orch8.db",
        100,
    )


def test_flags_beat_environment_beat_file(tmp_path: Path) -> None:
    cfg = tmp_path / "orch8.toml"
    cfg.write_text(
        '[engine]\nbatch_size = 10\ntick_interval_ms = 50\n[api]\nhttp_addr = "0.0.0.0:1"\n'
    )
    s = load_settings(cfg, env={"ORCH8_BATCH_SIZE": "20"}, overrides={"http_addr": "127.0.0.1:2"})
    assert (s.batch_size, s.tick_interval_ms, s.http_addr) == (20, 50, "127.0.0.1:2")


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"ORCH8_BATCH_SIZE": "ten"}, "ORCH8_BATCH_SIZE: must be an integer"),
        ({"ORCH8_TICK_INTERVAL_MS": "0"}, "ORCH8_TICK_INTERVAL_MS: must be positive"),
        ({"ORCH8_LOG_JSON": "maybe"}, "ORCH8_LOG_JSON: must be true or false"),
        ({"ORCH8_HTTP_ADDR": "nowhere"}, "http_addr: must be HOST:PORT"),
        ({"ORCH8_LOG_LEVEL": "loud"}, "log level"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        load_settings(env=env)


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "broken.toml"
    cfg.write_text("[engine\n")
    with pytest.raises(ValidationError, match="invalid TOML"):
        load_settings(cfg, env={})


def test_sqlite_urls_follow_orch8_forms() -> None:
    assert sqlite_path("sqlite://orch8.db?mode=rwc") == "orch8.db"
    assert sqlite_path("sqlite:///var/lib/orch8.db") == "/var/lib/orch8.db"


def test_passwords_are_masked() -> None:
    assert redacted_url("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redacted_url("sqlite://orch8.db") == "sqlite://orch8.db"


def test_the_environment_label_comes_from_orch8s_variables() -> None:
    s = load_settings(env={"ORCH8_ENV_LABEL": "staging", "ORCH8_ENV_COLOR": "#ffaa00"})
    assert (s.env_label, s.env_color) == ("staging", "#ffaa00")
    assert load_settings(env={}).env_label is None
