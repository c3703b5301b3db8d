"""The report as SARIF 2.1.0 for code-scanning tools."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from fsm._version import __version__
from fsm.report import Report
from fsm.violation import Severity, Violation

__all__ = ["SARIF_SCHEMA", "render_sarif"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}


def _uri(label: str) -> str:
    """An input's label as the URI reference SARIF asks for (RFC 3986).

    A relative path stays relative, percent-encoded with forward slashes (``logs/my%20log.har``),
    so code-scanning tools resolve it against the checkout; an absolute one becomes a ``file:``
    URI; a label that is no path (``<stdin>``) is percent-encoded like a relative path.
    """
    path = Path(label)
    if path.is_absolute():
        return path.as_uri()
    return quote(path.as_posix(), safe="/!$&'()*+,;=@")


def _location(v: Violation) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": {"uri": _uri(v.location.file)}}
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
            "locations": [_location(v)],
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
                "artifacts": [{"location": {"uri": _uri(i.label)}} for i in report.inputs],
                "invocations": [_invocation(report)],
                "results": results,
            }
        ],
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2, default=str).decode() + "\n"


def _invocation(report: Report) -> dict[str, Any]:
    """How the run went: an input with nothing readable is a failed execution, not a clean result."""
    notes = [
        {
            "level": "error",
            "message": {"text": f"nothing readable in {label}; nothing in it was checked"},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": _uri(label)}}}],
        }
        for label in report.unreadable_inputs
    ]
    out: dict[str, Any] = {"executionSuccessful": not notes, "exitCode": report.exit_code}
    if notes:
        out["toolExecutionNotifications"] = notes
    return out
