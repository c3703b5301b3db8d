"""The Python examples in the docs run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


@pytest.mark.parametrize("page", ["docs/library.md", "README.md"])
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
