"""Renderers: a text snapshot, SARIF 2.1.0 and JUnit structure, JSON against its schema."""

from __future__ import annotations

import json
import os
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from fsm._validators import validator
from fsm.pipeline import Validator, validate_log
from fsm.render import render, render_json, render_junit, render_sarif, render_text
from fsm.report import Report

REPO = Path(__file__).resolve().parents[1]
SNAPSHOT = Path(__file__).parent / "snapshots" / "broken.txt"


@pytest.fixture(scope="module")
def report() -> Report:
    """The report of the bundled broken example, with paths relative to the repository."""
    cwd = Path.cwd()
    os.chdir(REPO)
    try:
        return validate_log("examples/broken.jsonl")
    finally:
        os.chdir(cwd)


def test_text_report_snapshot(report: Report) -> None:
    """The text report of examples/broken.jsonl is stable (update: write render_text to the snapshot)."""
    assert render_text(report) == SNAPSHOT.read_text()


def test_json_report_conforms_to_its_schema(report: Report) -> None:
    """--format json validates against schemas/report.schema.json."""
    assert validator("report", fast=False).issues(json.loads(render_json(report))) == []


def test_sarif_has_the_2_1_0_shape(report: Report) -> None:
    """SARIF: version, one run, a driver with every rule, results pointing at rules and locations."""
    doc = json.loads(render_sarif(report))
    assert doc["version"] == "2.1.0" and doc["$schema"].endswith("sarif-2.1.0.json")
    [run] = doc["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == list(report.rules)
    assert all(r["defaultConfiguration"]["level"] in ("error", "warning", "note") for r in rules)
    assert len(run["results"]) == len(report.violations)
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["level"] in ("error", "warning", "note") and result["message"]["text"]
        physical = result["locations"][0]["physicalLocation"]
        assert physical["artifactLocation"]["uri"] == "examples/broken.jsonl"
        assert physical.get("region", {"startLine": 1})["startLine"] >= 1


def test_junit_has_one_case_per_entity_and_fails_the_broken_ones(report: Report) -> None:
    """JUnit: a test case per entity plus the log; cases with errors carry a failure."""
    root = ET.fromstring(render_junit(report).split("\n", 1)[1])
    suite = root.find("testsuite")
    assert suite is not None
    cases = suite.findall("testcase")
    assert len(cases) == len(report.entities) + 1
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    assert failed == {v.entity for v in report.violations if v.severity.value == "error" and v.entity}
    assert suite.get("failures") == str(len(failed))


def test_text_report_spells_out_at_most_n_per_rule_and_says_how_many_more(tmp_path: Path) -> None:
    """Many violations of one rule: N are shown, the rest are counted, and nothing is lost from totals."""
    from fsm.generate import generate

    log = tmp_path / "open.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in generate(30, seed=2)) + "\n")
    report = validate_log(log)
    incomplete = report.by_rule()["entity.incomplete"]
    assert incomplete > 5
    text = render_text(report, max_per_rule=5)
    assert text.count("  info    entity.incomplete") == 5
    assert f"not spelt out above: {incomplete - 5} entity.incomplete" in text
    assert render_text(report, max_per_rule=0).count("  info    entity.incomplete") == incomplete


def test_an_input_with_nothing_readable_is_no_pass_in_any_format(tmp_path: Path) -> None:
    """Exit code 2: text says NOT CHECKED, JSON passed=false, SARIF a failed execution, JUnit an error."""
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    report = validate_log([REPO / "examples" / "session-two-payments.jsonl", empty])
    assert report.exit_code == 2 and report.unreadable_inputs == (str(empty),)
    assert render_text(report).rstrip().endswith(f"NOT CHECKED: nothing readable in {empty}")
    doc = json.loads(render_json(report))
    assert doc["passed"] is False
    assert [(i["file"], i["judged"] > 0) for i in doc["inputs"]] == [
        (str(REPO / "examples" / "session-two-payments.jsonl"), True),
        (str(empty), False),
    ]
    [invocation] = json.loads(render_sarif(report))["runs"][0]["invocations"]
    assert invocation["executionSuccessful"] is False and invocation["exitCode"] == 2
    assert str(empty) in invocation["toolExecutionNotifications"][0]["message"]["text"]
    suite = ET.fromstring(render_junit(report).split("\n", 1)[1]).find("testsuite")
    assert suite is not None and suite.get("errors") == "1"
    errored = [c.get("name") for c in suite.findall("testcase") if c.find("error") is not None]
    assert errored == [str(empty)]


def test_an_input_that_cannot_be_opened_as_a_log_is_labelled_unreadable_not_jsonl(tmp_path: Path) -> None:
    """A damaged zip or UTF-16 text is no JSONL file: text and JSON say "unreadable", the finding says why."""
    damaged = tmp_path / "capture.zip"
    damaged.write_bytes(b"PK\x03\x04\x14\x00cut short")
    wide = tmp_path / "capture.jsonl"
    wide.write_bytes('{"a": 1}\n'.encode("utf-16"))
    report = validate_log([damaged, wide, REPO / "examples" / "session-two-payments.jsonl"])
    text = render_text(report)
    assert f"input: {damaged} (unreadable)\ninput: {wide} (unreadable)\ninput: " in text
    assert "(jsonl, " in text  # the readable example keeps its format
    doc = json.loads(render_json(report))
    assert validator("report", fast=False).issues(doc) == []
    assert [i["format"] for i in doc["inputs"]] == ["unreadable", "unreadable", "jsonl"]


def test_a_clean_run_is_a_successful_sarif_execution(report: Report) -> None:
    """The broken example was read in full: its findings are results, the execution itself succeeded."""
    [invocation] = json.loads(render_sarif(report))["runs"][0]["invocations"]
    assert invocation == {"executionSuccessful": True, "exitCode": 1}


def test_junit_stays_well_formed_xml_whatever_the_traffic_holds() -> None:
    """Ids and paths come from traffic: characters XML cannot carry are escaped, not written raw."""
    from fsm import Validator

    v = Validator()
    record = {
        "request": {"method": "GET", "path": "/api/v1/vouchers/vch_\u0001x"},
        "response": {"status": 200, "body": {"id": "vch_\u0001x", "status": "NOPE"}},
    }
    v.feed(record, source="a\x01b.jsonl")
    xml = render_junit(v.finish())
    root = ET.fromstring(xml.split("\n", 1)[1])
    assert "a\\x01b.jsonl:1" in xml  # the label escaped; the id, of no safe shape, fingerprinted (D20)
    assert any((c.get("name") or "").startswith("voucher:secret:") for c in root.iter("testcase")), xml


@pytest.mark.parametrize(
    ("name", "uri"),
    [
        ("broken.jsonl", "broken.jsonl"),
        ("./broken.jsonl", "./broken.jsonl"),
        ("logs/my café #2.jsonl", "logs/my%20caf%C3%A9%20%232.jsonl"),
        ("logs/100%.jsonl", "logs/100%25.jsonl"),
        ("a:b.jsonl", "a%3Ab.jsonl"),  # not read as a URI scheme
        (os.fsdecode(b"caf\xe9\tx.jsonl"), "caf%E9%09x.jsonl"),  # the name's bytes, not its escaped label
    ],
)
def test_sarif_locations_are_uri_references_to_the_files(
    name: str, uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SARIF locations are RFC 3986 URI references: a relative path as given, percent-encoded."""
    monkeypatch.chdir(tmp_path)
    Path(name).parent.mkdir(exist_ok=True)
    Path(name).write_bytes((REPO / "examples" / "broken.jsonl").read_bytes())
    [run] = json.loads(render_sarif(validate_log(name)))["runs"]
    assert [a["location"]["uri"] for a in run["artifacts"]] == [uri]
    assert {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"]} == {uri}


def test_sarif_gives_absolute_paths_as_file_uris_and_each_file_once(tmp_path: Path) -> None:
    """An absolute path is a file: URI; a file given twice is one artifact (SARIF: unique)."""
    log = tmp_path / "a b.jsonl"
    log.write_bytes((REPO / "examples" / "broken.jsonl").read_bytes())
    [run] = json.loads(render_sarif(validate_log([log, log])))["runs"]
    assert [a["location"]["uri"] for a in run["artifacts"]] == [log.as_uri()]
    assert log.as_uri().endswith("/a%20b.jsonl")


def test_sarif_locations_that_are_no_file_are_percent_encoded() -> None:
    """A label given to feed() (no file behind it): escaped as file names are, then percent-encoded."""
    v = Validator()
    for label in ("<api>", "line\nbreak", "\ud800"):
        v.feed(
            {"request": {"method": "GET", "path": "/elsewhere"}, "response": {"status": 200}}, source=label
        )
    [run] = json.loads(render_sarif(v.finish()))["runs"]
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in run["results"]]
    assert "%3Capi%3E" in uris and "line%5Cnbreak" in uris and "%5Cud800" in uris
    for fmt in ("text", "json", "junit"):
        assert "line\\nbreak" in render(v.finish(), fmt).replace("\\\\", "\\")


def test_control_characters_never_reach_the_text_report() -> None:
    """A path segment with ESC, NUL and a newline is shown by its shape; a source label escaped."""
    v = Validator()
    record = {"request": {"method": "GET", "path": "/x\x1b[2J\x00\ny"}, "response": {"status": 200}}
    v.feed(record, source="log\x1b[2J.jsonl")
    text = render_text(v.finish())
    assert "\x1b" not in text and "\x00" not in text
    assert "GET /{value} is not under the API prefix" in text
    assert "log\\x1b[2J.jsonl:1" in text


def test_expected_and_actual_read_as_words_or_json_in_text() -> None:
    """Lists of states read as words (CLOSED, not ['CLOSED']); other values as JSON."""
    from fsm.render.text import _value

    assert _value(["CLOSED"]) == "CLOSED" and _value(("OPEN", "JOINED")) == "OPEN, JOINED"
    assert _value({"currency": "EURC", "n": 1}) == '{"currency":"EURC","n":1}'
    assert _value(200) == "200" and _value([]) == "[]" and _value(10**30) == str(10**30)


def test_a_schema_problem_lists_each_detail_once_in_text() -> None:
    """The message names the first three schema errors; the bullets below add the others, none twice."""
    body = {"id": 1, "code": 2, "status": 3, "expiresAt": 4, "extra": 5}
    v = Validator()
    v.feed(
        {
            "request": {
                "method": "POST",
                "path": "/api/v1/vouchers/reserve-voucher",
                "body": {"code": "ABC123"},
            },
            "response": {"status": 200, "body": body},
        }
    )
    report = v.finish()
    [problem] = [x for x in report.violations if x.rule_id == "schema.response"]
    assert len(problem.context) > 3
    bullets = [line.strip()[2:] for line in render_text(report).splitlines() if line.strip().startswith("- ")]
    assert bullets == [d.message for d in problem.context[3:]]  # the first three are in the message
    assert all(d.message in problem.message for d in problem.context[:3])
