"""The report as JSON, conforming to the ``report`` schema (``schemas/report.schema.json``)."""

from __future__ import annotations

from typing import Any

import orjson

from fsm._version import __version__
from fsm.report import Report
from fsm.violation import Violation

__all__ = ["render_json", "report_to_dict", "violation_to_dict"]


def _violation(v: Violation) -> dict[str, Any]:
    out: dict[str, Any] = {
        "rule": v.rule_id,
        "severity": v.severity.value,
        "message": v.message,
        "location": str(v.location),
        "file": v.location.file,
        "exchange": v.exchange_index,
    }
    if v.location.line is not None:
        out["line"] = v.location.line
    if v.location.entry is not None:
        out["entry"] = v.location.entry
    for name, value in (("operation", v.operation_id), ("entity", v.entity), ("state", v.state)):
        if value is not None:
            out[name] = value
    if v.instance_path:
        out["pointer"] = v.instance_path
    if v.spec_path:
        out["spec"] = v.spec_path
    if v.expected is not None:
        out["expected"] = v.expected
    if v.actual is not None:
        out["actual"] = v.actual
    if v.related:
        out["related"] = [
            {"exchange": r.index, "location": str(r.location), "summary": r.summary} for r in v.related
        ]
    if v.context:
        out["context"] = [_violation(c) for c in v.context]
    return out


def violation_to_dict(v: Violation) -> dict[str, Any]:
    """One violation as the report's JSON writes it (``schemas/report.schema.json``, ``violations`` items)."""
    return _violation(v)


def report_to_dict(report: Report) -> dict[str, Any]:
    """The JSON report as plain data."""
    t = report.totals
    return {
        "tool": {"name": "voucher-fsm", "version": __version__},
        "inputs": [
            {
                "file": i.label,
                "format": i.format,
                "records": i.records,
                "judged": i.judged,
                "transport": i.transport,
            }
            for i in report.inputs
        ],
        "totals": {
            "read": t.read,
            "judged": t.judged,
            "transport": t.transport,
            "unreadable": t.unreadable,
            "errors": report.errors,
            "warnings": report.warnings,
            "info": report.infos,
        },
        "passed": report.exit_code == 0,
        "strict": report.strict,
        "violations": [_violation(v) for v in report.violations],
        "entities": [
            {"entity": e.key, "kind": e.kind, "state": e.state, "final": e.final} for e in report.entities
        ],
        **(
            {
                "not_judged": {
                    "message": report.nothing_judged_line(),
                    "paths": [{"path": p, "count": n} for p, n in report.paths_seen],
                    "advice": report.advice,
                }
            }
            if report.nothing_judged
            else {}
        ),
        **(
            {"untold": [{"rule": r, "severity": s.value, "count": n} for r, s, n in report.untold]}
            if report.untold
            else {}
        ),
    }


def render_json(report: Report) -> str:
    """The JSON report as text."""
    return orjson.dumps(report_to_dict(report), option=orjson.OPT_INDENT_2, default=str).decode() + "\n"
