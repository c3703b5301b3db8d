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


def test_the_benchmark_runs_its_rounds_and_prints_each_ratio_and_their_median(tmp_path: Path) -> None:
    """A small run of benchmarks/bench_validate.py (its figures are not asserted: timing is no test)."""
    log = tmp_path / "small.jsonl"
    result = _run(
        sys.executable,
        "benchmarks/bench_validate.py",
        "--exchanges",
        "500",
        "--repeat",
        "2",
        "--log",
        str(log),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "build: pure Python" in result.stdout
    for mode in ("validate", "parallel"):
        line = next(x for x in result.stdout.splitlines() if x.startswith(f"{mode}/floor: "))
        assert "the median of 2 rounds (" in line and "fastest/fastest" in line
    assert "verdict on generated traffic: 0 errors, 0 warnings" in result.stdout
