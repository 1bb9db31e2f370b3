"""The static checks run as part of the suite, so CI enforces them on every change."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_lint_is_clean() -> None:
    result = run(str(BIN / "ruff"), "check", "src", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = run(str(BIN / "ruff"), "format", "--check", "src", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean() -> None:
    result = run(str(BIN / "mypy"), "src")
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_linter_contracts_hold() -> None:
    result = run(str(BIN / "lint-imports"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_layer_rules_hold() -> None:
    checker = ROOT.parent / "shared" / "tools" / "layercheck.py"
    if not checker.exists():
        pytest.skip("the shared layer checker sits beside the checkout only in the team workspace")
    result = run(sys.executable, str(checker), ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hypothesis_profiles_are_registered_in_one_place() -> None:
    """tests/conftest.py registers and loads the profiles; test modules only narrow them."""
    home = ROOT / "tests" / "conftest.py"
    elsewhere = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").rglob("*.py")
        if path not in (home, Path(__file__).resolve())
        and any(
            call in path.read_text(encoding="utf-8")
            for call in ("register_profile(", "load_profile(")
        )
    ]
    assert elsewhere == []
