"""The code base checks itself: ruff, mypy --strict, and the import-layer contract."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)


def test_ruff_finds_nothing() -> None:
    """ruff check is clean on the package, tests, benchmarks and examples."""
    result = _run(sys.executable, "-m", "ruff", "check", "fsm", "tests", "benchmarks", "examples")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean_on_the_package() -> None:
    """mypy --strict (configured in pyproject.toml) finds no error in fsm/."""
    result = _run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.skipif(shutil.which("lint-imports") is None, reason="import-linter is not installed")
def test_stages_import_only_earlier_stages() -> None:
    """readers -> exchange -> matcher -> schemacheck -> stepper -> report -> render (import-linter)."""
    result = _run("lint-imports")
    assert result.returncode == 0, result.stdout + result.stderr
