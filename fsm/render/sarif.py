"""The report as SARIF 2.1.0 for code-scanning tools."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TextIO
from urllib.parse import quote

import orjson

from fsm._version import __version__
from fsm.report import Report
from fsm.violation import Severity, Violation

__all__ = ["SARIF_SCHEMA", "render_sarif", "write_sarif"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def _uris(report: Report) -> Callable[[str], str]:
    """Each location's label as the URI reference SARIF asks for (RFC 3986).

    An input file's own URI, made from its name's bytes (:func:`fsm.readers.input_uri`); any
    other label (``<stdin>``, a ``source`` given to ``feed``) percent-encoded as it reads.
    """
    known = {i.label: i.uri for i in report.inputs if i.uri is not None}

    def uri(label: str) -> str:
        found = known.get(label)
        if found is not None:
            return found
        return quote(label, safe="/!$&'()*+,;=@", errors="backslashreplace")

    return uri


def _location(v: Violation, uri: Callable[[str], str]) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": {"uri": uri(v.location.file)}}
    if v.location.line is not None:
        physical["region"] = {"startLine": v.location.line}
    loc: dict[str, Any] = {"physicalLocation": physical}
    logical = []
    if v.location.entry is not None:
        logical.append({"fullyQualifiedName": f"log.entries[{v.location.entry}]", "kind": "element"})
    if v.entity:
        logical.append({"fullyQualifiedName": v.entity, "kind": "object"})
    if logical:
        loc["logicalLocations"] = logical
    return loc


def render_sarif(report: Report) -> str:
    """A SARIF log with one run: every rule in the catalogue, every violation a result."""
    uri = _uris(report)
    rule_ids = list(report.rules)
    index = {rid: i for i, rid in enumerate(rule_ids)}
    rules = [
        {
            "id": r.id,
            "name": r.id.replace(".", "-"),
            "shortDescription": {"text": r.title},
            "help": {"text": r.hint},
            "defaultConfiguration": {"level": _LEVEL[r.severity]},
            "properties": {"source": r.cite},
        }
        for r in report.rules.values()
    ]
    results = []
    for v in report.violations:
        result: dict[str, Any] = {
            "ruleId": v.rule_id,
            "level": _LEVEL[v.severity],
            "message": {"text": v.message},
            "locations": [_location(v, uri)],
        }
        if v.rule_id in index:
            result["ruleIndex"] = index[v.rule_id]
        props: dict[str, Any] = {}
        if v.instance_path:
            props["pointer"] = v.instance_path
        if v.operation_id:
            props["operation"] = v.operation_id
        if props:
            result["properties"] = props
        results.append(result)
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "voucher-fsm",
                        "version": __version__,
                        "informationUri": "https://github.com/voucher-fsm/voucher-fsm",
                        "rules": rules,
                    }
                },
                # one per file (SARIF: unique), even when a file was given twice
                "artifacts": [
                    {"location": {"uri": u}} for u in dict.fromkeys(uri(i.label) for i in report.inputs)
                ],
                "invocations": [_invocation(report, uri)],
                "results": results,
                "properties": {"totals": _totals(report)},
            }
        ],
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2, default=str).decode() + "\n"


def write_sarif(report: Report, out: TextIO) -> None:
    """Write the SARIF log to ``out`` (its results are the kept violations: no record per entity)."""
    out.write(render_sarif(report))


def _totals(report: Report) -> dict[str, int]:
    """Records read, judged, transport and unreadable (D21, D22)."""
    t = report.totals
    return {"read": t.read, "judged": t.judged, "transport": t.transport, "unreadable": t.unreadable}


def _invocation(report: Report, uri: Callable[[str], str]) -> dict[str, Any]:
    """How the run went: an input with nothing readable is a failed execution, not a clean result."""
    notes: list[dict[str, Any]] = [
        {
            "level": "error",
            "message": {"text": f"nothing readable in {label}; nothing in it was checked"},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri(label)}}}],
        }
        for label in report.unreadable_inputs
    ]
    if report.nothing_judged:  # (D25: no verdict on traffic)
        notes.append({"level": "error", "message": {"text": report.nothing_judged_line()}})
    told: list[dict[str, Any]] = (
        [{"level": "note", "message": {"text": report.untold_line()}}] if report.untold else []
    )
    out: dict[str, Any] = {"executionSuccessful": not notes, "exitCode": report.exit_code}
    if notes or told:
        notes += told
        out["toolExecutionNotifications"] = notes
    return out
