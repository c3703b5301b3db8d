"""Write ``fsm/rule_examples.json``: for each rule, how it looks in a report, from the corpus.

``voucher-fsm rules --explain RULE`` prints the example with the rule; an installed kit has no
tests/corpus, so the examples ship as data. Each is the first violation of the rule in the
corpus case named after it (``tests/corpus/<rule with - for .>``), or else in the first case
that expects it, rendered as the text report renders it. Run after changing the corpus or the
text report (``python tests/corpus/make_rule_examples.py``); a test fails when the committed
file differs from what this script writes.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parents[1]))

from fsm.config import Config  # noqa: E402
from fsm.pipeline import validate_log  # noqa: E402
from fsm.render.text import _violation  # noqa: E402
from fsm.spec import load_spec  # noqa: E402

TARGET = ROOT.parents[1] / "fsm" / "rule_examples.json"


def _cases_for(rule: str) -> list[Path]:
    named = ROOT / rule.replace(".", "-")
    cases = [named] if (named / "expected.json").is_file() else []
    for case in sorted(p for p in ROOT.iterdir() if (p / "expected.json").is_file()):
        expected = json.loads((case / "expected.json").read_text())
        if case != named and any(v["rule"] == rule for v in expected["violations"]):
            cases.append(case)
    return cases


def examples() -> dict[str, Any]:
    """Rule id -> {case, description, report}; rules no corpus case raises are left out."""
    out: dict[str, Any] = {}
    for rule in load_spec().rules:
        for case in _cases_for(rule):
            expected = json.loads((case / "expected.json").read_text())
            settings = expected.get("settings", {})  # (the case's config file keys)
            config = Config(**{key.replace("-", "_"): value for key, value in settings.items()})
            with contextlib.chdir(case):
                report = validate_log(expected["traffic"], config=config)
            found = [v for v in report.violations if v.rule_id == rule]
            if found:
                out[rule] = {
                    "case": f"tests/corpus/{case.name}",
                    "description": expected["description"],
                    "report": _violation(found[0], report),
                }
                break
    return out


def text() -> str:
    """The file's content."""
    doc = {
        "description": "One example per rule, as the text report shows it, from the conformance corpus "
        "(tests/corpus). Written by tests/corpus/make_rule_examples.py; do not edit by hand.",
        "examples": examples(),
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    TARGET.write_text(text(), encoding="utf-8")
    print(f"wrote {TARGET}")
