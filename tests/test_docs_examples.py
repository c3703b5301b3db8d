"""The Python examples in the docs run as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


@pytest.mark.parametrize("page", ["docs/library.md", "README.md", "docs/sandbox.md"])
def test_python_blocks_in_the_page_run(
    page: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each ```python block of the page runs, in order, in one namespace."""
    monkeypatch.chdir(REPO)
    namespace: dict[str, object] = {}
    blocks = BLOCK.findall((REPO / page).read_text())
    assert blocks
    for block in blocks:
        exec(compile(block, page, "exec"), namespace)


def test_the_embedding_pages_set_ups_run_in_a_fresh_process(tmp_path: Path) -> None:
    """Each ```python block of docs/embedding.md runs, in order, in one namespace, in its own process.

    (Its Django set-up configures Django for the whole process; its files are written to tmp_path.)
    """
    for package in ("fastapi", "flask", "django", "httpx", "requests", "opentelemetry.sdk"):
        pytest.importorskip(package, reason=f"docs/embedding.md sets up {package}")
    runner = (
        "import re, sys\n"
        "page = open(sys.argv[1], encoding='utf-8').read()\n"
        "namespace = {'__name__': 'embedding_page'}\n"
        "for n, block in enumerate(re.findall(r'```python\\n(.*?)```', page, re.S)):\n"
        "    exec(compile(block, f'docs/embedding.md block {n + 1}', 'exec'), namespace)\n"
        "print('ran', n + 1, 'blocks')\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", runner, str(REPO / "docs/embedding.md")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ran" in result.stdout
    assert (tmp_path / "findings.jsonl").exists() and (tmp_path / "exchanges.jsonl").exists()
