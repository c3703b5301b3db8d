"""The rulings are part of the kit: every D-number a user reads resolves to a ruling it ships."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fsm.docs import citing_rules, decisions_markdown
from fsm.spec import Spec
from tests.test_cli import run

REPO = Path(__file__).resolve().parents[1]
CITED = re.compile(r"\bD([0-9]+)\b")
NOQA = re.compile(r"noqa: [^\n]*")  # ruff's docstring codes (D301) are not rulings

# Where a user meets a ruling's number: rule sources and hints, machine and operation data,
# messages and docstrings of the code, the JSON Schemas' descriptions, and the docs.
SOURCES = [
    *sorted((REPO / "fsm").rglob("*.py")),
    *sorted((REPO / "fsm" / "protocol").glob("*.json")),
    *sorted((REPO / "schemas").rglob("*.json")),
    REPO / "README.md",
    REPO / "DEVELOPERS.md",
    *sorted((REPO / "docs").rglob("*.md")),
]


def test_every_ruling_cited_anywhere_exists(spec: Spec) -> None:
    """Each D-number in the package, its data, its schemas and its docs is a ruling in rulings.json."""
    cited: dict[str, set[str]] = {}
    for path in SOURCES:
        for number in CITED.findall(NOQA.sub("", path.read_text(encoding="utf-8"))):
            cited.setdefault(f"D{number}", set()).add(str(path.relative_to(REPO)))
    assert len(cited) >= 20  # the scan finds the citations (D1 to D21 at least)
    unknown = {d: sorted(files) for d, files in cited.items() if d not in spec.rulings}
    assert unknown == {}


def test_the_kit_ships_rulings_d1_to_d29_in_order(spec: Spec) -> None:
    """D1 to D29, each with a section, a title and its text."""
    assert list(spec.rulings) == [f"D{n}" for n in range(1, 30)]
    assert all(r.section and r.title and len(r.text) > 40 for r in spec.rulings.values())


def test_the_decisions_page_lists_every_ruling_with_an_anchor_and_the_rules_citing_it(spec: Spec) -> None:
    """docs/decisions.md has an anchor per ruling, and every rule that cites D16 is named under D16."""
    page = decisions_markdown(spec)
    for number in spec.rulings:
        assert f'<a id="{number.lower()}"></a>' in page
    d16 = page.split('<a id="d16">')[1].split('<a id="d17">')[0]
    assert citing_rules(spec, "D16") and all(f"`{rule}`" in d16 for rule in citing_rules(spec, "D16"))
    assert "machine.illegal-transition" in citing_rules(spec, "D16")
    assert "machine.illegal-transition" not in citing_rules(spec, "D1")


def test_every_ruling_link_in_the_docs_has_its_anchor() -> None:
    """Each decisions.md#dN link in docs/ (the rules page links every source) lands on an anchor."""
    page = (REPO / "docs" / "decisions.md").read_text()
    links = set()
    for doc in (REPO / "docs").rglob("*.md"):
        links |= set(re.findall(r"decisions\.md#(d[0-9]+)", doc.read_text()))
    assert links, "the rules page links its sources to the rulings"
    assert {a for a in links if f'<a id="{a}"></a>' not in page} == set()


def test_rules_explain_prints_the_rule_its_ruling_and_an_example_from_the_corpus(spec: Spec) -> None:
    """--explain: what it checks, severity, source, the cited ruling in full, and a report excerpt."""
    code, out, _ = run("rules", "--explain", "machine.illegal-transition")
    rule = spec.rules["machine.illegal-transition"]
    assert code == 0
    assert out.startswith("machine.illegal-transition  (error by default)")
    assert rule.title in out and "Source: D16" in out
    assert "D16. Predicted outcomes" in out
    assert " ".join(spec.rulings["D16"].text.split()[:8]) in " ".join(out.split())
    assert "Example (tests/corpus/machine-illegal-transition)" in out
    assert "  error   machine.illegal-transition  traffic.jsonl:" in out


def test_rules_explain_as_json_carries_the_same_facts(spec: Spec) -> None:
    """--format json: one object with the rule's fields, its rulings and its example."""
    code, out, _ = run("rules", "--explain", "session.reserve-before-join", "--format", "json")
    doc = json.loads(out)
    assert code == 0
    assert (doc["id"], doc["severity"], doc["source"]) == ("session.reserve-before-join", "warning", "D3")
    assert [r["id"] for r in doc["rulings"]] == ["D3"]
    assert doc["example"]["report"][0].lstrip().startswith("warning session.reserve-before-join")


def test_rules_explain_of_an_unknown_rule_exits_two_and_suggests_the_nearest() -> None:
    """A typo is a usage error naming the rule it resembles, never a traceback."""
    code, _, err = run("rules", "--explain", "machine.illegal-transitoin")
    assert code == 2
    assert "no such rule; did you mean machine.illegal-transition?" in err


def test_every_rule_has_an_example_and_the_examples_file_is_up_to_date(spec: Spec) -> None:
    """fsm/rule_examples.json is what tests/corpus/make_rule_examples.py writes, one example a rule."""
    from tests.corpus.make_rule_examples import TARGET, text

    assert TARGET.read_text(encoding="utf-8") == text(), "run python tests/corpus/make_rule_examples.py"
    examples = json.loads(text())["examples"]
    assert set(examples) == set(spec.rules)
    assert all(rule in e["report"][0] for rule, e in examples.items())


def test_hints_name_only_what_an_installed_kit_can_show(spec: Spec) -> None:
    """No hint sends a user to a docs/ page (a wheel has none): commands and shipped files instead."""
    for rule in spec.rules.values():
        assert "docs/" not in rule.hint and ".md" not in rule.hint, rule.id
    assert "voucher-fsm openapi" in spec.rules["route.unknown-path"].hint
