"""Diagram IR -> Mermaid text (stateDiagram-v2 and sequenceDiagram), for docs sites."""

from __future__ import annotations

from fsm.diagrams.ir import ACTOR_COLOURS, UNSEEN, SequenceDiagram, StateDiagram

__all__ = ["sequence_mermaid", "state_mermaid"]


def _label(text: str) -> str:
    return text.replace("\n", " ").replace(":", "꞉").replace(";", ",")


def state_mermaid(d: StateDiagram) -> str:
    """A stateDiagram-v2: [*] marks creation and finals; sub-states inside a composite state."""
    lines = ["---", f"title: {d.title} lifecycle", "---", "stateDiagram-v2", "    direction LR"]
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
    lines.append("    classDef final fill:#e8f4e8,stroke:#2e7d32")
    finals = [n.id for n in d.nodes if n.final and n.count != 0]
    if finals:
        lines.append(f"    class {','.join(finals)} final")
    unseen = [n.id for n in d.nodes if n.count == 0]
    if unseen:  # coverage overlays: Mermaid cannot style a transition, so never-seen ones say so
        lines.append(f"    classDef unseen fill:#fafafa,color:{UNSEEN},stroke:{UNSEEN},stroke-dasharray:3 3")
        lines.append(f"    class {','.join(unseen)} unseen")
    return "\n".join(lines) + "\n"


def sequence_mermaid(d: SequenceDiagram) -> str:
    """A sequenceDiagram: calls as solid arrows, answers dashed, broken rules as notes."""
    lines = ["---", f"title: {d.title}", "---", "sequenceDiagram"]
    for pid, label in d.participants:
        lines.append(f"    participant {pid} as {label}")
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
    lines.append(f"    %% colours: payer {ACTOR_COLOURS['payer']}, payee {ACTOR_COLOURS['payee']}")
    return "\n".join(lines) + "\n"
