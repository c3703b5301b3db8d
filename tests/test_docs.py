"""Generated docs cannot drift from the spec."""

from __future__ import annotations

from pathlib import Path

from fsm.docs import generated_docs
from fsm.spec import Spec

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_committed_generated_docs_match_the_spec(spec: Spec) -> None:
    """docs/rules.md and docs/reference/*.md are exactly what `voucher-fsm docs` writes."""
    for rel, text in generated_docs(spec).items():
        path = DOCS / rel
        assert path.is_file(), f"{path} is missing: run `voucher-fsm docs`"
        assert path.read_text(encoding="utf-8") == text, f"{path} is stale: run `voucher-fsm docs`"


def test_every_rule_and_refusal_code_is_documented(spec: Spec) -> None:
    """The rules page names every rule; each machine page names each of its refusal codes."""
    pages = generated_docs(spec)
    assert all(f"`{rule}`" in pages["rules.md"] for rule in spec.rules)
    for m in spec.machines.values():
        page = pages[f"reference/{m.name}.md"]
        for r in m.refusals:
            if r.code:
                assert f"refuse `{r.code}`" in page or f"else `{r.code}`" in page, (m.name, r.code)


def test_every_image_the_docs_reference_is_there() -> None:
    """Each ![..](path) in docs/ points at an existing file (SVGs from `voucher-fsm docs`)."""
    import re

    for page in DOCS.rglob("*.md"):
        for target in re.findall(r"!\[[^]]*\]\(([^)]+)\)", page.read_text()):
            assert (page.parent / target).resolve().is_file(), f"{page}: {target}"


def test_the_docs_site_builds_strictly(tmp_path: Path) -> None:
    """mkdocs build --strict succeeds on docs/ and mkdocs.yml."""
    import shutil
    import subprocess
    import sys

    import pytest

    if shutil.which("mkdocs") is None:
        pytest.skip("mkdocs is not installed")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=DOCS.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "reference" / "voucher" / "index.html").is_file()
