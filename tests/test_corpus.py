"""The conformance corpus: every case raises exactly the rules its author expected, where expected.

Cases live in tests/corpus/<case>/ (traffic + expected.json) and are written by
tests/corpus/make_corpus.py, whose expectations are authored by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fsm.config import Config
from fsm.pipeline import validate_log
from fsm.spec import Spec

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "expected.json").is_file())


def _expected(case: str) -> dict:
    return json.loads((CORPUS / case / "expected.json").read_text())


def _config(case: str) -> Config:
    """The settings the case runs with (``settings`` in expected.json: config file keys)."""
    settings = _expected(case).get("settings", {})
    return Config(**{key.replace("-", "_"): value for key, value in settings.items()})


@pytest.mark.parametrize("engine", ["table", "transitions"])
@pytest.mark.parametrize("case", CASES)
def test_case_raises_exactly_the_expected_rules_at_the_expected_places(
    case: str, engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rule ids and locations match expected.json, with the fast and the reference engine."""
    monkeypatch.chdir(CORPUS / case)
    expected = _expected(case)
    report = validate_log(expected["traffic"], engine=engine, config=_config(case))
    got = sorted((v.rule_id, str(v.location)) for v in report.violations)
    want = sorted((e["rule"], e["location"]) for e in expected["violations"])
    assert got == want, "\n".join(f"{v.rule_id} {v.location}: {v.message}" for v in report.violations)
    assert report.totals.adds_up


def test_every_rule_has_a_failing_case_and_a_passing_case(spec: Spec) -> None:
    """Each rule fires in some case, and passes in another that makes the same calls.

    The passing case for a rule: a case where every operation of the exchanges that broke the
    rule in its failing cases is called too, and the rule does not fire.
    """
    fired = {e["rule"] for case in CASES for e in _expected(case)["violations"]}
    assert set(spec.rules) - fired == set(), "rules without a failing case"
    clean = [c for c in CASES if c.startswith("clean-")]
    assert any(c.endswith("-har") for c in clean) and len(clean) >= 5
    for c in clean:
        assert _expected(c)["violations"] == [], c
    reports = {
        case: validate_log(CORPUS / case / _expected(case)["traffic"], config=_config(case)) for case in CASES
    }
    called = {
        case: {op for op in _operations(CORPUS / case / _expected(case)["traffic"], spec) if op}
        for case in CASES
    }
    for rule in spec.rules:
        broke = {v.operation_id for case, r in reports.items() for v in r.violations if v.rule_id == rule} - {
            None
        }
        passing = [
            case
            for case, r in reports.items()
            if rule not in {v.rule_id for v in r.violations} and broke <= called[case]
        ]
        assert passing, f"{rule}: no case calls {sorted(broke)} without breaking it"


def _operations(traffic: Path, spec: Spec) -> list[str | None]:
    """The operation each exchange of a trace calls (None when it matches none)."""
    from fsm import Validator

    ops: list[str | None] = []
    validator = Validator(
        spec,
        on_exchange=lambda ex, match, found, touched: ops.append(
            match.operation.id if match is not None else None
        ),
    )
    validator.feed_file(str(traffic))
    return ops


def test_the_committed_corpus_is_what_the_builder_writes(tmp_path: Path) -> None:
    """tests/corpus matches make_corpus.py (run it after changing a case)."""
    import importlib.util

    spec_ = importlib.util.spec_from_file_location("make_corpus", CORPUS / "make_corpus.py")
    assert spec_ is not None and spec_.loader is not None
    module = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(module)
    module.write(tmp_path)
    for case in CASES:
        for f in (tmp_path / case).iterdir():
            assert f.read_text() == (CORPUS / case / f.name).read_text(), (
                f"{case}/{f.name} differs: run python tests/corpus/make_corpus.py"
            )
    assert sorted(p.name for p in tmp_path.iterdir()) == CASES
