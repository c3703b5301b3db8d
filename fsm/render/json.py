"""The report as JSON, conforming to the ``report`` schema (``schemas/report.schema.json``)."""

from __future__ import annotations

import io
from typing import Any, TextIO

import orjson

from fsm._version import __version__
from fsm.report import Report
from fsm.violation import Violation

__all__ = ["render_json", "report_to_dict", "violation_to_dict", "write_json"]


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


def report_to_dict(report: Report, *, entities: bool = True) -> dict[str, Any]:
    """The JSON report as plain data (``entities=False``: an empty list of them, see :func:`write_json`)."""
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
        ]
        if entities
        else [],
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
    out = io.StringIO()
    write_json(report, out)
    return out.getvalue()


_EMPTY = '\n  "entities": []'  # (a top-level key: no string in the document holds a raw newline)


def write_json(report: Report, out: TextIO) -> None:
    """Write the JSON report to ``out``, the entities a batch at a time (never all held at once).

    The same text as :func:`report_to_dict`'s document dumped with two-space indents.
    """
    doc = report_to_dict(report, entities=False)
    text = orjson.dumps(doc, option=orjson.OPT_INDENT_2, default=str).decode()
    cut = text.rindex(_EMPTY) + len(_EMPTY) - 2  # where "[]" starts
    dumps, indent = orjson.dumps, orjson.OPT_INDENT_2
    batch: list[bytes] = []
    started = False
    for e in report.entities:
        item = dumps({"entity": e.key, "kind": e.kind, "state": e.state, "final": e.final}, option=indent)
        batch.append(b"    " + item.replace(b"\n", b"\n    "))
        if len(batch) == 1024:
            out.write((text[:cut] + "[\n" if not started else ",\n") + b",\n".join(batch).decode())
            batch, started = [], True
    if batch:
        out.write((text[:cut] + "[\n" if not started else ",\n") + b",\n".join(batch).decode())
        started = True
    if not started:  # no entity at all
        out.write(text + "\n")
        return
    out.write("\n  ]" + text[cut + 2 :] + "\n")
