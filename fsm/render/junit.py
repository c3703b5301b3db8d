"""The report as JUnit XML for CI systems: one test case per entity, one for the log itself.

Written a test case at a time (:func:`write_junit`): a run may meet millions of entities, and
none of their cases is held longer than it takes to write it.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import TextIO
from xml.etree import ElementTree as ET

from fsm.report import Report
from fsm.violation import Severity, Violation

__all__ = ["render_junit", "write_junit"]


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_MARK = "voucher-fsm-cases"  # (an element name: attribute values cannot hold a raw '<')
_BETWEEN = "\n    "  # the indent between two test cases


def _x(text: str) -> str:
    """``text`` with the characters XML 1.0 cannot carry escaped (ids and paths come from traffic)."""
    return _NOT_XML.sub(lambda m: repr(m.group(0))[1:-1], text)


def _fails(v: Violation, strict: bool) -> bool:
    return v.severity is Severity.ERROR or (strict and v.severity is Severity.WARNING)


def render_junit(report: Report) -> str:
    """JUnit XML: an entity's case fails when it has an error (or a warning, with strict)."""
    out = io.StringIO()
    write_junit(report, out)
    return out.getvalue()


def write_junit(report: Report, out: TextIO) -> None:
    """Write the JUnit XML to ``out``, a test case at a time.

    The log's case, every entity's in report order, then those of entities with violations but no
    outcome, then unreadable inputs.
    """
    groups = report.by_entity()
    log = groups.pop(None, [])
    keys = {str(k) for k in groups}
    known = {e.key for e in report.entities if e.key in keys}  # (one pass; few have violations)
    others = [(str(k), vs) for k, vs in groups.items() if str(k) not in known]
    failures = sum(1 for vs in (log, *groups.values()) if any(_fails(v, report.strict) for v in vs))
    unreadable = report.unreadable_inputs
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
    ET.SubElement(suite, _MARK)
    for label in unreadable:  # not a verdict on traffic: an error, not a failure
        case = ET.SubElement(suite, "testcase", classname="voucher-fsm.input", name=_x(label))
        ET.SubElement(case, "error", message=_x(f"nothing readable in {label}"), type="input.unreadable")
    if report.nothing_judged:  # no verdict on traffic (D25): an error, not a failure
        case = ET.SubElement(suite, "testcase", classname="voucher-fsm.input", name="protocol")
        ET.SubElement(case, "error", message=_x(report.nothing_judged_line()), type="not-judged")
    unjudged = len(unreadable) + report.nothing_judged
    tests, errors = 1 + len(report.entities) + len(others) + unjudged, unjudged
    for node in (suite, suites):
        node.set("tests", str(tests))
        node.set("failures", str(failures))
        node.set("errors", str(errors))
    ET.indent(suites)
    frame = ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
    head, _, tail = frame.partition(f"<{_MARK} />")
    out.write(head)
    batch: list[str] = []
    for n, text in enumerate(_cases(report, log, groups, others)):
        if n:
            batch.append(_BETWEEN)
        batch.append(text)
        if len(batch) >= 2048:
            out.write("".join(batch))
            batch = []
    out.write("".join(batch) + tail)


def _cases(
    report: Report,
    log: list[Violation],
    groups: dict[str | None, list[Violation]],
    others: list[tuple[str, list[Violation]]],
) -> Iterator[str]:
    """Each test case as XML, indented for its place in the suite."""
    yield _case("log", log, report.strict)
    for e in report.entities:
        yield _case(e.key, groups.get(e.key, []), report.strict)
    for key, vs in others:
        yield _case(key, vs, report.strict)


def _case(key: str, vs: list[Violation], strict: bool) -> str:
    kind = key.split(":", 1)[0] if ":" in key else "log"
    case = ET.Element("testcase", classname=_x(f"voucher-fsm.{kind}"), name=_x(key))
    if not vs:
        return ET.tostring(case, encoding="unicode")
    failing = [v for v in vs if _fails(v, strict)]
    if failing:
        first = failing[0]
        node = ET.SubElement(
            case, "failure", message=_x(f"{first.rule_id}: {first.message}"), type=first.rule_id
        )
        node.text = _x("\n".join(f"{v.location} {v.rule_id}: {v.message}" for v in failing))
    others = [v for v in vs if not _fails(v, strict)]
    if others:
        node = ET.SubElement(case, "system-out")
        node.text = _x("\n".join(f"{v.severity.value} {v.location} {v.rule_id}: {v.message}" for v in others))
    ET.indent(case, level=2)
    return ET.tostring(case, encoding="unicode")
