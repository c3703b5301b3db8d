"""The report for people: grouped by entity, each group with a short timeline.

Plain text, stable and snapshot-friendly; the CLI adds colour on a terminal.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, TextIO

import orjson

from fsm._text import clip
from fsm.report import Report
from fsm.violation import NAMED_IN_MESSAGE, Violation

__all__ = ["render_text", "summary_line", "write_text"]

_WIDTH = 8


def _value(value: Any) -> str:
    """An expected or actual value as people read it: a list of words as words, the rest as JSON."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, (list, tuple)) and value and all(isinstance(x, str) for x in value):
        text = ", ".join(value)
    else:
        try:
            text = orjson.dumps(value, default=str).decode()
        except TypeError:  # an integer beyond 64 bits, nesting beyond JSON's limits
            text = repr(value)
    return clip(text, 100)


def _violation(v: Violation, report: Report) -> list[str]:
    where = str(v.location) + (f"  {v.instance_path}" if v.instance_path else "")
    lines = [f"  {v.severity.value:<{_WIDTH}}{v.rule_id}  {where}", f"  {'':<{_WIDTH}}{v.message}"]
    shown = [
        f"{name}: {_value(value)}"
        for name, value in (("expected", v.expected), ("actual", v.actual))
        if value is not None
    ]
    if shown:
        lines.append(f"  {'':<{_WIDTH}}" + "   ".join(shown))
    for c in v.context[NAMED_IN_MESSAGE:]:  # (the message names the first few)
        lines.append(f"  {'':<{_WIDTH}}- {c.message}")
    rule = report.rules.get(v.rule_id)
    if rule is not None:
        lines.append(f"  {'':<{_WIDTH}}hint: {rule.hint} [{rule.cite}]")
    return lines


def summary_line(report: Report) -> str:
    """``N records read, N judged, N transport, N unreadable; N errors, N warnings, N info: PASSED``."""
    t = report.totals
    verdict = "FAILED" if report.failed else "PASSED"
    nothing = ""
    if report.unreadable_inputs:  # exit code 2: not a verdict on that input's traffic
        nothing = f"nothing readable in {', '.join(report.unreadable_inputs)}"
    elif report.nothing_judged:  # exit code 2 too (D25)
        nothing = "no exchange was judged against the protocol"
    if nothing:
        verdict = f"FAILED; {nothing}" if report.failed else f"NOT CHECKED: {nothing}"
    strict = " (strict)" if report.strict else ""
    return (
        f"{t.read} records read, {t.judged} judged, {t.transport} transport, {t.unreadable} unreadable; "
        f"{report.errors} errors, {report.warnings} warnings, {report.infos} info: {verdict}{strict}"
    )


def write_text(report: Report, out: TextIO, max_per_rule: int = 50) -> None:
    """Write the text report to ``out`` (it lists violations, not every entity: see :func:`render_text`)."""
    out.write(render_text(report, max_per_rule))


def render_text(report: Report, max_per_rule: int = 50) -> str:
    """The report as text; at most ``max_per_rule`` violations of each rule are spelt out (0: all).

    Totals always count everything; the JSON, JUnit and SARIF reports always list everything.
    """
    out: list[str] = []
    for i in report.inputs:
        if i.format == "unreadable":  # (its one record, the reason, is the finding below)
            out.append(f"input: {i.label} (unreadable)")
        else:
            out.append(f"input: {i.label} ({i.format}, {i.records} records)")
    if any(v.related for v in report.violations):
        har = any(i.format == "har" for i in report.inputs)
        out.append(
            "numbering: #N counts exchanges from 1 in the order read; FILE:LINE counts lines from 1"
            + ("; FILE:entries[N] is the HAR's own index, from 0" if har else "")
        )
    shown: Counter[str] = Counter()
    kept = []
    for v in report.violations:
        shown[v.rule_id] += 1
        if not max_per_rule or shown[v.rule_id] <= max_per_rule:
            kept.append(v)
    groups: dict[str | None, list[Violation]] = {}
    for v in kept:
        groups.setdefault(v.entity, []).append(v)
    general = groups.pop(None, [])
    states = {e.key: e.state for e in report.entities if e.key in groups}  # (one pass, few kept)
    for key, violations in groups.items():
        assert key is not None
        out.append("")
        state = states.get(key)
        out.append(key + (f"  (ends {state})" if state else ""))
        timeline: dict[int, str] = {}
        for v in violations:
            for r in v.related:
                timeline[r.index] = f"    #{r.index + 1:<5} {r.location}  {r.summary}"  # from 1, as lines
        if timeline:
            out.append("  timeline:")
            out.extend(timeline[i] for i in sorted(timeline))
        for v in violations:
            out.extend(_violation(v, report))
    if general:
        out.append("")
        out.append("log")
        for v in general:
            out.extend(_violation(v, report))
    if report.violations:
        out.append("")
        counts = ", ".join(f"{rule} x{n}" for rule, n in sorted(report.by_rule().items()))
        out.append(f"rules: {counts}")
        hidden = {rule: n - max_per_rule for rule, n in shown.items() if max_per_rule and n > max_per_rule}
        if hidden:
            listed = ", ".join(f"{n} {rule}" for rule, n in sorted(hidden.items()))
            lists = "every one kept" if report.untold else "all"
            how = f"--max-per-rule 0 shows all; --format json lists {lists}"
            out.append(f"not spelt out above: {listed} ({how})")
        if report.untold:
            out.append(report.untold_line())
    if report.nothing_judged:
        out.append("")
        out.append(f"not judged: {report.nothing_judged_line()}")
    out.append(summary_line(report))
    return "\n".join(line.translate(_CONTROLS) for line in out) + "\n"


_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if c != 0x09}
"""Control characters that traffic may bring (ESC among them: no terminal escapes), shown escaped."""
