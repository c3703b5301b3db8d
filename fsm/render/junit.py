"""The report as JUnit XML for CI systems: one test case per entity, one for the log itself."""

from __future__ import annotations

import re
from xml.etree import ElementTree as ET

from fsm.report import Report
from fsm.violation import Severity, Violation

__all__ = ["render_junit"]


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _x(text: str) -> str:
    """``text`` with the characters XML 1.0 cannot carry escaped (ids and paths come from traffic)."""
    return _NOT_XML.sub(lambda m: repr(m.group(0))[1:-1], text)


def _fails(v: Violation, strict: bool) -> bool:
    return v.severity is Severity.ERROR or (strict and v.severity is Severity.WARNING)


def render_junit(report: Report) -> str:
    """JUnit XML: an entity's case fails when it has an error (or a warning, with strict)."""
    groups = report.by_entity()
    cases: dict[str, list[Violation]] = {"log": groups.pop(None, [])}
    for e in report.entities:
        cases.setdefault(e.key, [])
    for key, vs in groups.items():
        cases[str(key)] = vs
    suites = ET.Element("testsuites", name="voucher-fsm")
    suite = ET.SubElement(suites, "testsuite", name="voucher-fsm validate")
    props = ET.SubElement(suite, "properties")
    t = report.totals
    for name, n in (
        ("read", t.read),
        ("judged", t.judged),
        ("transport", t.transport),
        ("unreadable", t.unreadable),
    ):
        ET.SubElement(props, "property", name=f"records.{name}", value=str(n))
    if report.untold:  # (counted in the totals, details not kept: kept-per-rule)
        for rule, level, n in report.untold:
            ET.SubElement(props, "property", name=f"untold.{rule}.{level.value}", value=str(n))
    failures = 0
    for key, vs in cases.items():
        kind = key.split(":", 1)[0] if ":" in key else "log"
        case = ET.SubElement(suite, "testcase", classname=_x(f"voucher-fsm.{kind}"), name=_x(key))
        failing = [v for v in vs if _fails(v, report.strict)]
        if failing:
            failures += 1
            first = failing[0]
            node = ET.SubElement(
                case, "failure", message=_x(f"{first.rule_id}: {first.message}"), type=first.rule_id
            )
            node.text = _x("\n".join(f"{v.location} {v.rule_id}: {v.message}" for v in failing))
        others = [v for v in vs if not _fails(v, report.strict)]
        if others:
            out = ET.SubElement(case, "system-out")
            out.text = _x(
                "\n".join(f"{v.severity.value} {v.location} {v.rule_id}: {v.message}" for v in others)
            )
    for label in report.unreadable_inputs:  # not a verdict on traffic: an error, not a failure
        case = ET.SubElement(suite, "testcase", classname="voucher-fsm.input", name=_x(label))
        ET.SubElement(case, "error", message=_x(f"nothing readable in {label}"), type="input.unreadable")
    if report.nothing_judged:  # no verdict on traffic (D25): an error, not a failure
        case = ET.SubElement(suite, "testcase", classname="voucher-fsm.input", name="protocol")
        ET.SubElement(case, "error", message=_x(report.nothing_judged_line()), type="not-judged")
    unjudged = len(report.unreadable_inputs) + report.nothing_judged
    tests, errors = len(cases) + unjudged, unjudged
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suites.set("tests", str(tests))
    suites.set("failures", str(failures))
    suites.set("errors", str(errors))
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
