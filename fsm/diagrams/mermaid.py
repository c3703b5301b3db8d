"""Diagram IR -> Mermaid text (stateDiagram-v2 and sequenceDiagram), for docs sites."""

from __future__ import annotations

from fsm.diagrams.dot import ordered_participants, sequence_marks
from fsm.diagrams.ir import SequenceDiagram, StateDiagram
from fsm.diagrams.style import DiagramStyle, load_style

__all__ = ["sequence_mermaid", "state_mermaid"]

# What marks each line in Mermaid (which cannot colour a transition): the text the renderer writes.
_STATE_SIGNS = {"timed": "after ...", "unseen": "never seen"}
_SEQUENCE_SIGNS = {"reply": "-->>", "broken": "red band"}


def _label(text: str) -> str:
    return text.replace("\n", " ").replace(":", "꞉").replace(";", ",")


def _state_legend(d: StateDiagram, s: DiagramStyle) -> list[str]:
    """A legend box: who calls (the label's parenthesis), deadlines, finals, refusals, never seen."""
    st = s.states
    # Mermaid draws every transition alike: its text is the mark (the caller in brackets, "after ...").
    actors = dict.fromkeys(e.actor for e in d.edges if not e.timed)
    used = [a for a in ("payer", "payee", "any") if a in actors] + [a for a in actors if a not in s.marks]
    used += ["timed"] * any(e.timed for e in d.edges) + ["unseen"] * any(e.count == 0 for e in d.edges)
    items = [f"{_STATE_SIGNS.get(m, '(' + m + ')')}: {s.mark(m).legend}" for m in used]
    items.append(f"green, with an arrow to the end circle: {st['final_legend']}")
    if any(n.notes for n in d.nodes):
        items.append(st["refusals_legend"])
    if any(e.count for e in d.edges):
        items.append(st["counts_legend"])
    if any(n.count == 0 for n in d.nodes):
        items.append(f"grey dotted: {s.mark('unseen').legend} (state)")
    lines = ['    state "legend" as legend']
    lines.extend(f"    legend : {_label(item)}" for item in items)
    lines.append(
        f"    classDef legendbox fill:{st['legend_fill']},stroke:{st['cluster_colour']},stroke-dasharray:2 2"
    )
    lines.append("    class legend legendbox")
    return lines


def state_mermaid(d: StateDiagram, style: DiagramStyle | None = None) -> str:
    """A stateDiagram-v2: [*] marks creation and finals; sub-states inside a composite state."""
    s = style or load_style()
    st = s.states
    direction = s.layout["state"].get("rankdir", "TB")
    lines = ["---", f"title: {d.title} lifecycle", "---", "stateDiagram-v2", f"    direction {direction}"]
    for group, label in sorted(d.groups.items()):
        members = [n for n in d.nodes if n.group == group]
        lines.append(f'    state "{label}" as {group} {{')
        lines.extend(f"        {n.id}" for n in members)
        lines.append("    }")
    for n in d.nodes:
        if n.notes:
            lines.append(f"    note right of {n.id}")
            lines.append("        refuses:")
            lines.extend(f"        {note}" for note in n.notes)
            lines.append("    end note")
    for e in d.edges:
        source = "[*]" if e.source == "__start__" else e.source
        lines.append(f"    {source} --> {e.target} : {_label(e.text)}")
    for n in d.nodes:
        if n.final:
            lines.append(f"    {n.id} --> [*]")
    lines.append(f"    classDef final fill:{st['final_fill']},stroke:{st['final_stroke']}")
    finals = [n.id for n in d.nodes if n.final and n.count != 0]
    if finals:
        lines.append(f"    class {','.join(finals)} final")
    unseen = [n.id for n in d.nodes if n.count == 0]
    if unseen:  # coverage overlays: Mermaid cannot style a transition, so never-seen ones say so
        grey = s.mark("unseen").colour
        lines.append(
            f"    classDef unseen fill:{st['unseen_fill']},color:{grey},stroke:{grey},stroke-dasharray:3 3"
        )
        lines.append(f"    class {','.join(unseen)} unseen")
    lines.extend(_state_legend(d, s))
    return "\n".join(lines) + "\n"


def sequence_mermaid(d: SequenceDiagram, style: DiagramStyle | None = None) -> str:
    """A sequenceDiagram: calls as solid arrows, answers dashed, broken rules as notes."""
    s = style or load_style()
    ids = ordered_participants(d, s)
    labels = dict(d.participants)
    lines = ["---", f"title: {d.title}", "---", "sequenceDiagram"]
    for pid in ids:
        lines.append(f"    participant {pid} as {labels[pid]}")
    for msg in d.messages:
        arrow = "-->>" if msg.reply else "->>"
        line = f"    {msg.source}{arrow}{msg.target}: {_label(msg.text)}"
        if msg.highlight:  # a red band around the call that broke a rule, with the rule ids
            lines.append("    rect rgba(214, 39, 40, 0.15)")
            lines.append("    " + line)
            lines.append(f"        Note over {msg.source},{msg.target}: broke {_label(msg.highlight)}")
            lines.append("    end")
        else:
            lines.append(line)
    kinds = [m for m in sequence_marks(d) if m in _SEQUENCE_SIGNS]  # who calls is the arrow's origin
    signs = [f"->>: {s.participants['call_legend']}"] + [
        f"{_SEQUENCE_SIGNS[m]}: {s.mark(m).legend}" for m in kinds
    ]
    lines.append(f"    Note over {ids[0]},{ids[-1]}: legend: {_label(', '.join(signs))}")
    return "\n".join(lines) + "\n"
