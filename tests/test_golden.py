"""The golden reports: every corpus case, example, generated and mutated log reports byte for byte
what it reported when the goldens were frozen (tests/golden/make_golden.py writes them again).

A golden changes only when an issue asks for a change in a report, with the reason in the commit.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

GOLDEN = Path(__file__).parent / "golden"


def _maker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_golden", GOLDEN / "make_golden.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_golden", module)
    spec.loader.exec_module(module)
    return module


MAKER = _maker()
CASES = MAKER.cases()


@pytest.mark.parametrize(("name", "rel"), CASES, ids=[name for name, _ in CASES])
def test_every_input_reports_exactly_its_golden_text_and_json(name: str, rel: str) -> None:
    """The text and JSON reports of the input equal the committed goldens, byte for byte."""
    for ext, text in MAKER.reports(rel).items():
        assert text == (GOLDEN / f"{name}.{ext}").read_text(), f"{name}.{ext} differs from its golden"


def test_the_coverage_of_every_input_together_is_its_golden() -> None:
    """States, transitions and refusals counted over every golden input equal the committed table."""
    assert MAKER.coverage([rel for _, rel in CASES]) == (GOLDEN / "coverage.json").read_text()


def test_every_golden_file_belongs_to_an_input() -> None:
    """No golden is left over from an input that is gone, and none is missing."""
    want = {f"{name}.{ext}" for name, _ in CASES for ext in ("txt", "json")} | {"coverage.json"}
    have = {p.name for p in GOLDEN.iterdir() if p.suffix in (".txt", ".json")}
    assert have == want


def test_the_goldens_do_not_depend_on_the_working_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reports made from another directory are the same: inputs are named from the repository root."""
    monkeypatch.chdir(GOLDEN / "inputs")
    name, rel = CASES[0]
    assert MAKER.reports(rel)["txt"] == (GOLDEN / f"{name}.txt").read_text()
