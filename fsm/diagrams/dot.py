"""Diagram IR -> Graphviz DOT text (deterministic, snapshot-friendly)."""

from __future__ import annotations

from fsm.diagrams.ir import ACTOR_COLOURS, UNSEEN, Edge, SequenceDiagram, StateDiagram

__all__ = ["sequence_dot", "state_dot"]

_FONT = 'fontname="Helvetica"'


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def state_dot(d: StateDiagram) -> str:
    """A left-to-right state graph: finals doubled, sub-states clustered, edges coloured by caller."""
    lines = [
        f"digraph {_q(d.name)} {{",
        f"  graph [label={_q(d.title + ' lifecycle')}, labelloc=t, fontsize=18, rankdir=LR, nodesep=0.6, "
        f"ranksep=1.1, {_FONT}];",
        f'  node [shape=box, style="rounded,filled", fillcolor="#f5f5f5", fontsize=12, {_FONT}];',
        f"  edge [fontsize=10, {_FONT}];",
    ]
    grouped: dict[str, list[str]] = {}
    for n in d.nodes:
        if n.start:
            lines.append(f'  {_q(n.id)} [shape=point, width=0.2, label=""];')
            continue
        label = n.label if not n.notes else n.label + "\n—\nrefuses:\n" + "\n".join(n.notes)
        attrs = [f"label={_q(label)}"]
        if n.final:
            attrs.append("peripheries=2")
        if n.count == 0:  # a coverage overlay's never-entered state
            attrs += [
                'fillcolor="#fafafa"',
                f'color="{UNSEEN}"',
                f'fontcolor="{UNSEEN}"',
                'style="rounded,filled,dotted"',
            ]
        elif n.final:
            attrs.append('fillcolor="#e8f4e8"')
        if n.group:
            grouped.setdefault(n.group, []).append(f"    {_q(n.id)} [{', '.join(attrs)}];")
        else:
            lines.append(f"  {_q(n.id)} [{', '.join(attrs)}];")
    for group, members in sorted(grouped.items()):
        lines.append(f"  subgraph {_q('cluster_' + group)} {{")
        lines.append(f'    label={_q(d.groups[group])}; style="rounded,dashed"; color="#888888";')
        lines.extend(members)
        lines.append("  }")
    # Parallel edges (same source and target, e.g. several self-loops) become one edge with
    # one label line per transition: stacked loops overlap in Graphviz.
    merged: dict[tuple[str, str, bool, bool], list[Edge]] = {}
    for e in d.edges:
        merged.setdefault((e.source, e.target, e.timed, e.count == 0), []).append(e)
    for (source, target, timed, unseen), edges in merged.items():
        actors = {e.actor for e in edges}
        colour = ACTOR_COLOURS.get(edges[0].actor, "#000000") if len(actors) == 1 else "#333333"
        if unseen:  # a coverage overlay's never-taken transition
            colour, style = UNSEEN, "dotted"
        else:
            style = "dashed" if timed else ""
        attrs = [
            f"label={_q(chr(10).join(e.text for e in edges))}",
            f'color="{colour}"',
            f'fontcolor="{colour}"',
        ]
        if style:
            attrs.append(f"style={style}")
        total = sum(e.count or 0 for e in edges)
        if total:
            attrs.append(f"penwidth={min(1 + total**0.5, 6):.1f}")
        lines.append(f"  {_q(source)} -> {_q(target)} [{', '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def sequence_dot(d: SequenceDiagram) -> str:
    """A ladder: one lifeline per participant, one row per message."""
    ids = [p for p, _ in d.participants]
    lines = [
        f"digraph {_q(d.name)} {{",
        f"  graph [label={_q(d.title)}, labelloc=t, fontsize=16, rankdir=TB, nodesep=2.2, ranksep=0.35, "
        f"splines=false, {_FONT}];",
        f"  node [{_FONT}, fontsize=12];",
        f"  edge [{_FONT}, fontsize=10];",
        "  { rank=same; "
        + " ".join(
            f'{_q("h_" + p)} [label={_q(label)}, shape=box, style="rounded,filled", fillcolor="#eeeeee"];'
            for p, label in d.participants
        )
        + " }",
    ]
    for i in range(len(d.messages)):
        row = " ".join(f'{_q(f"{p}_{i}")} [shape=point, width=0.01, label=""];' for p in ids)
        lines.append(f"  {{ rank=same; {row} }}")
    for p in ids:
        chain = [f"h_{p}"] + [f"{p}_{i}" for i in range(len(d.messages))]
        lines.append(
            "  " + " -> ".join(_q(c) for c in chain) + ' [arrowhead=none, style=dashed, color="#aaaaaa"];'
        )
    for i, msg in enumerate(d.messages):
        colour = (
            "#d62728"
            if msg.highlight
            else ACTOR_COLOURS.get(msg.source if not msg.reply else msg.target, "#000000")
        )
        label = msg.text + (f"\n!! {msg.highlight}" if msg.highlight else "")
        style = "dashed" if msg.reply else ("bold" if msg.highlight else "solid")
        lines.append(
            f'  {_q(f"{msg.source}_{i}")} -> {_q(f"{msg.target}_{i}")} [label={_q(label)}, color="{colour}", '
            f'fontcolor="{colour}", style={style}, constraint=false];'
        )
    lines.append("}")
    return "\n".join(lines) + "\n"
