"""Diagrams generated from the spec: extract -> IR -> DOT / Mermaid -> SVG / PNG.

Every picture comes from the same spec the validator uses, so none can drift.
"""

from __future__ import annotations

from pathlib import Path

from fsm.diagrams.dot import sequence_dot, state_dot
from fsm.diagrams.extract import flow_diagram, state_diagram
from fsm.diagrams.mermaid import sequence_mermaid, state_mermaid
from fsm.diagrams.render import DotMissing, render_image
from fsm.spec.model import Spec

__all__ = ["FORMATS", "DotMissing", "diagram_texts", "write_diagrams"]

FORMATS = ("dot", "mermaid", "svg", "png")


def diagram_texts(
    spec: Spec, machines: tuple[str, ...] = (), *, with_errors: bool = True
) -> dict[str, tuple[str, str]]:
    """Every diagram as ``stem -> (dot text, mermaid text)``: machines (and with-errors variants), flows."""
    out: dict[str, tuple[str, str]] = {}
    for name, m in spec.machines.items():
        if machines and name not in machines:
            continue
        plain = state_diagram(m)
        errors = state_diagram(m, with_errors=True)
        out[name] = (state_dot(plain), state_mermaid(plain))
        if with_errors:
            out[f"{name}-with-errors"] = (state_dot(errors), state_mermaid(errors))
    if not machines:
        for flow in spec.flows:
            d = flow_diagram(spec, flow)
            out[f"flow-{flow.name}"] = (sequence_dot(d), sequence_mermaid(d))
    return out


def write_diagrams(
    spec: Spec,
    out: Path,
    formats: tuple[str, ...] = FORMATS,
    machines: tuple[str, ...] = (),
    *,
    with_errors: bool = True,
) -> list[Path]:
    """Write the diagrams in ``formats`` under ``out``; return the paths written."""
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        from fsm.errors import UsageError

        raise UsageError(f"unknown diagram format(s) {', '.join(unknown)}; use {', '.join(FORMATS)}")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, (dot_text, mermaid_text) in diagram_texts(spec, machines, with_errors=with_errors).items():
        if "dot" in formats:
            (out / f"{stem}.dot").write_text(dot_text, encoding="utf-8")
            written.append(out / f"{stem}.dot")
        if "mermaid" in formats:
            (out / f"{stem}.mmd").write_text(mermaid_text, encoding="utf-8")
            written.append(out / f"{stem}.mmd")
        for fmt in ("svg", "png"):
            if fmt in formats:
                written.append(render_image(dot_text, out / f"{stem}.{fmt}", fmt))
    return written
