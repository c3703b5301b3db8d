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


def test_the_front_benchmark_prints_each_stage_for_both_sides_with_the_ratio_to_the_base() -> None:
    """A small run of benchmarks/bench_front.py against HEAD (its figures are not asserted)."""
    result = _run(
        sys.executable, "benchmarks/bench_front.py", "--exchanges", "300", "--repeat", "1", "--base", "HEAD"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| side | parse µs | read µs | build µs | route µs | schema µs |"), rows
    assert rows[1].startswith("| base HEAD | ") and rows[2].startswith("| this checkout | "), rows
    assert rows[2].count("x)") == 8, rows[2]  # a ratio for every stage


def test_the_memory_benchmark_prints_a_row_per_run_the_spilling_cost_and_bytes_per_live_entity() -> None:
    """A small run of benchmarks/bench_memory.py with every option but --compiled (figures not asserted)."""
    result = _run(
        sys.executable,
        "benchmarks/bench_memory.py",
        "--sizes",
        "3000",
        "--formats",
        "text,sarif",
        "--modes",
        "1,2",
        "--spill-off",
        "--live",
        "500",
        "--seed",
        "2",
        "--python",
        sys.executable,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line.split(" | ")[:4] for line in result.stdout.splitlines() if line.startswith("| 3,000 |")]
    assert rows == [
        ["| 3,000", "text", "1", "on"],
        ["| 3,000", "text", "2", "on"],
        ["| 3,000", "sarif", "1", "on"],
        ["| 3,000", "sarif", "2", "on"],
        ["| 3,000", "text", "1", "off"],
    ]
    assert "build measured: pure Python" in result.stdout
    assert "spilling at 3,000: wall " in result.stdout
    assert "bytes each (target < 1024;" in result.stdout


def test_the_sandbox_benchmark_plays_whole_sessions_from_its_cheap_client_and_prints_each_row() -> None:
    """A small run of benchmarks/bench_sandbox.py: every session answered 200 (figures not asserted)."""
    result = _run(
        sys.executable,
        "benchmarks/bench_sandbox.py",
        "--clients",
        "1,3",
        "--requests",
        "60",
        "--seconds",
        "5",
        "--warmup",
        "18",
        "--no-wrk",
        "--in-process",
        "3",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "in-process Sandbox.handle: 54 requests (3 sessions)" in result.stdout
    rows = [line.split() for line in result.stdout.splitlines() if " flows " in line]
    assert [row[:3] for row in rows] == [
        ["baseline", "flows", "1"],
        ["baseline", "flows", "3"],
        ["sandbox", "flows", "1"],
        ["sandbox", "flows", "3"],
    ]
    assert all(int(row[3]) >= 54 and row[12] == "0" for row in rows)  # whole sessions, no refusal
