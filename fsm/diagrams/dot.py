"""Diagram IR -> Graphviz DOT text (deterministic, snapshot-friendly).

The look (colours, lines, fonts, spacing, legend texts) comes from the style file; this module
decides structure only:

- every diagram carries a legend of the marks it uses, under its title (an HTML-like graph label);
- a state diagram lists the calls that keep a state inside that state's box (a self-loop's label
  would be drawn outside its cluster), coloured like the caller's edges;
- a sequence diagram puts each message's text in an ``xlabel`` (``forcelabels=true``): a ``label``
  on an edge between two nodes of one rank makes dot route the arrow through a label node above
  the row, which bends it. Row nodes are invisible, so lifelines carry no marks, and every message
  is drawn from its left lifeline to its right one (``dir=back`` when it goes leftwards) so the
  lifelines keep the order of the participants.
"""

from __future__ import annotations

from fsm.diagrams.ir import Edge, SequenceDiagram, StateDiagram
from fsm.diagrams.style import DiagramStyle, Mark, load_style

__all__ = ["legend_marks", "sequence_dot", "state_dot"]

_LINE = {"solid": "solid", "dashed": "dashed", "dotted": "dotted", "bold": "bold"}


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _h(text: str) -> str:
    """Text for an HTML-like label."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _num(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _sample(mark: Mark) -> str:
    """A short line in the mark's colour and style, drawn as the bottom border of an empty cell."""
    width = 3 if mark.line == "bold" else 2
    style = "" if mark.line in ("solid", "bold") else f' STYLE="{mark.line}"'
    return (
        f'<TD WIDTH="34" HEIGHT="10" FIXEDSIZE="TRUE" BORDER="{width}" SIDES="B" '
        f'COLOR="{mark.colour}"{style}></TD>'
    )


def _graph_label(title: str, entries: list[tuple[str, str]], s: DiagramStyle) -> str:
    """Title, then the legend: ``(sample cell, text)`` pairs in rows of about the style's legend width.

    Each row is its own table (so columns do not line up across rows); rows of similar widths keep
    Graphviz from spreading a short row's cells over the width of a long one.
    """
    size = _num(s.legend_size)
    budget = float(s.layout["legend"]["width"]) * 72
    rows: list[list[tuple[str, str]]] = [[]]
    used = 0.0
    for sample, text in entries:
        need = 34 + text_width(text, s.legend_size) + 16
        if rows[-1] and used + need > budget:
            rows.append([])
            used = 0.0
        rows[-1].append((sample, text))
        used += need
    html = []
    for n, row in enumerate(rows):
        head = f'<TD><FONT POINT-SIZE="{size}">legend:</FONT></TD>' if n == 0 else ""
        cells = "".join(
            f'{sample}<TD ALIGN="LEFT"><FONT POINT-SIZE="{size}">{_h(text)}</FONT></TD>'
            for sample, text in row
        )
        html.append(
            '<TR><TD><TABLE BORDER="0" CELLBORDER="0" CELLSPACING="4" CELLPADDING="1">'
            f"<TR>{head}{cells}</TR></TABLE></TD></TR>"
        )
    return (
        '<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="2">'
        f'<TR><TD><FONT POINT-SIZE="{_num(s.title_size)}">{_h(title)}</FONT></TD></TR>'
        + "".join(html)
        + "</TABLE>>"
    )


def _box(fill: str, *, stroke: str, double: bool = False, dotted: bool = False) -> str:
    """A small state box for the legend."""
    style = ' STYLE="dotted"' if dotted else ""
    cell = f'<TD BGCOLOR="{fill}" WIDTH="22" HEIGHT="8" FIXEDSIZE="TRUE"></TD>'
    inner = (
        f'<TABLE BORDER="1" CELLBORDER="0" CELLSPACING="1" COLOR="{stroke}"{style}><TR>{cell}</TR></TABLE>'
    )
    if double:
        inner = (
            f'<TABLE BORDER="1" CELLBORDER="0" CELLSPACING="1" CELLPADDING="0" COLOR="{stroke}">'
            f"<TR><TD>{inner}</TD></TR></TABLE>"
        )
    return f"<TD>{inner}</TD>"


def legend_marks(d: StateDiagram) -> list[str]:
    """The marks a state diagram draws with, in legend order (callers first, then kinds of line)."""
    used: list[str] = []
    for key, edges in _merged(d).items():
        used.append(_edge_mark(key, edges))
    for e in d.edges:
        if e.source == e.target:
            used.append("unseen" if e.count == 0 else e.actor)
    order = ["payer", "payee", "any", "mixed", "server", "timed", "unseen"]
    return [m for m in order if m in used] + sorted(set(used) - set(order))


def _merged(d: StateDiagram) -> dict[tuple[str, str, bool, bool], list[Edge]]:
    """Edges between two different states, parallel ones merged (stacked edges overlap in Graphviz)."""
    merged: dict[tuple[str, str, bool, bool], list[Edge]] = {}
    for e in d.edges:
        if e.source != e.target:
            merged.setdefault((e.source, e.target, e.timed, e.count == 0), []).append(e)
    return merged


def _edge_mark(key: tuple[str, str, bool, bool], edges: list[Edge]) -> str:
    _, _, timed, unseen = key
    if unseen:
        return "unseen"
    if timed:
        return "timed"
    actors = {e.actor for e in edges}
    return edges[0].actor if len(actors) == 1 else "mixed"


def _state_label(d: StateDiagram, node_id: str, label: str, notes: tuple[str, ...], s: DiagramStyle) -> str:
    """The state's name, the calls that keep it (self-loops), then what it refuses (with-errors)."""
    rows = [f"<TR><TD>{_h(label)}</TD></TR>"]
    edge_size = _num(s.edge_size)
    for e in d.edges:
        if e.source == node_id and e.target == node_id:
            mark = s.mark("unseen" if e.count == 0 else e.actor)
            lines = e.text.split("\n")
            text = "↻ " + _h(lines[0]) + "".join(f'<BR ALIGN="LEFT"/>   {_h(x)}' for x in lines[1:])
            rows.append(
                f'<TR><TD ALIGN="LEFT" BALIGN="LEFT"><FONT POINT-SIZE="{edge_size}" '
                f'COLOR="{mark.colour}">{text}<BR ALIGN="LEFT"/></FONT></TD></TR>'
            )
    if notes:
        body = '<BR ALIGN="LEFT"/>'.join(_h(n) for n in notes)
        rows.append(
            f'<TR><TD ALIGN="LEFT" BALIGN="LEFT" SIDES="T" BORDER="1">refuses:<BR ALIGN="LEFT"/>{body}'
            '<BR ALIGN="LEFT"/></TD></TR>'
        )
    return '<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="2">' + "".join(rows) + "</TABLE>>"


def state_dot(d: StateDiagram, style: DiagramStyle | None = None) -> str:
    """A left-to-right state graph: finals doubled, sub-states clustered, edges coloured by caller."""
    s = style or load_style()
    st = s.states
    layout = s.layout["state"]
    font = f"fontname={_q(s.font)}"
    marks = legend_marks(d)
    entries = [(_sample(s.mark(m)), s.mark(m).legend) for m in marks]
    entries.append((_box(st["final_fill"], stroke=st["stroke"], double=True), st["final_legend"]))
    if any(e.source == e.target for e in d.edges):
        entries.append(("<TD></TD>", st["loops_legend"]))
    if any(n.notes for n in d.nodes):
        entries.append(("<TD></TD>", st["refusals_legend"]))
    if any(e.count for e in d.edges):
        entries.append(("<TD></TD>", st["counts_legend"]))
    if any(n.count == 0 for n in d.nodes):
        unseen = s.mark("unseen")
        entries.append(
            (_box(st["unseen_fill"], stroke=unseen.colour, dotted=True), unseen.legend + " (state)")
        )
    lines = [
        f"digraph {_q(d.name)} {{",
        f"  graph [label={_graph_label(d.title + ' lifecycle', entries, s)}, labelloc=t, "
        f"rankdir={layout['rankdir']}, nodesep={_num(layout['nodesep'])}, ranksep={_num(layout['ranksep'])}, "
        f"{font}];",
        f'  node [shape=box, style="rounded,filled", fillcolor={_q(st["fill"])}, color={_q(st["stroke"])}, '
        f"fontsize={_num(s.node_size)}, {font}];",
        f"  edge [fontsize={_num(s.edge_size)}, {font}];",
    ]
    grouped: dict[str, list[str]] = {}
    for n in d.nodes:
        if n.start:
            lines.append(f'  {_q(n.id)} [shape=point, width=0.2, label=""];')
            continue
        attrs = []
        if n.final:
            attrs.append("peripheries=2")
        if n.count == 0:  # a coverage overlay's never-entered state
            unseen = s.mark("unseen")
            attrs += [
                f"fillcolor={_q(st['unseen_fill'])}",
                f"color={_q(unseen.colour)}",
                f"fontcolor={_q(unseen.colour)}",
                'style="rounded,filled,dotted"',
            ]
        elif n.final:
            attrs.append(f"fillcolor={_q(st['final_fill'])}")
        attrs.append(f"label={_state_label(d, n.id, n.label, n.notes, s)}")
        line = f"{_q(n.id)} [{', '.join(attrs)}];"
        if n.group:
            grouped.setdefault(n.group, []).append("    " + line)
        else:
            lines.append("  " + line)
    for group, members in sorted(grouped.items()):
        lines.append(f"  subgraph {_q('cluster_' + group)} {{")
        lines.append(
            f'    label={_q(d.groups[group])}; style="rounded,dashed"; color={_q(st["cluster_colour"])};'
        )
        lines.extend(members)
        lines.append("  }")
    for key, edges in _merged(d).items():
        source, target, _, _ = key
        mark = s.mark(_edge_mark(key, edges))
        attrs = [
            f"label={_q(chr(10).join(e.text for e in edges))}",
            f"color={_q(mark.colour)}",
            f"fontcolor={_q(mark.colour)}",
        ]
        if mark.line != "solid":
            attrs.append(f"style={_LINE[mark.line]}")
        total = sum(e.count or 0 for e in edges)
        if total:
            attrs.append(f"penwidth={min(1 + total**0.5, 6):.1f}")
        lines.append(f"  {_q(source)} -> {_q(target)} [{', '.join(attrs)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def sequence_marks(d: SequenceDiagram) -> list[str]:
    """The marks a sequence diagram draws with: its callers, answers, and broken calls if any."""
    callers = [p for p, _ in d.participants if any(m.source == p and not m.reply for m in d.messages)]
    used = callers + (["reply"] if any(m.reply for m in d.messages) else [])
    return used + (["broken"] if any(m.highlight for m in d.messages) else [])


def sequence_dot(d: SequenceDiagram, style: DiagramStyle | None = None) -> str:
    """A ladder laid out here, not by dot: lifelines in the style's order, one row per message.

    Every node is pinned (``pos="x,y!"``, drawn by neato): each message runs between two
    invisible points of one row, so it is straight and level; its text is a plain node centred
    above the arrow; columns are spread so that each text fits between the lifelines it joins.
    """
    s = style or load_style()
    layout = s.layout["sequence"]
    font = f"fontname={_q(s.font)}"
    ids = ordered_participants(d, s)
    labels = dict(d.participants)
    column = {p: i for i, p in enumerate(ids)}
    texts = [m.text + (f"\n!! {m.highlight}" if m.highlight else "") for m in d.messages]
    # Each gap between neighbouring lifelines is as wide as the widest text that spans it (shared
    # evenly over the gaps a message crosses), and never narrower than the style's nodesep.
    gaps = [float(layout["nodesep"]) * 72] * (len(ids) - 1)
    for msg, text in zip(d.messages, texts, strict=True):
        a, b = sorted((column[msg.source], column[msg.target]))
        need = (text_width(text, s.edge_size) + 24) / max(b - a, 1)
        for g in range(a, b):
            gaps[g] = max(gaps[g], need)
    xs = [0.0]
    for gap in gaps:
        xs.append(xs[-1] + gap)
    line_h = s.edge_size * 1.25
    step = float(layout["ranksep"]) * 72
    ys = []
    y = 0.0
    for text in texts:
        y -= step + line_h * (text.count("\n") + 1)
        ys.append(y)
    bottom = y - step
    entries = [(_sample(s.mark(m)), s.mark(m).legend) for m in sequence_marks(d)]
    lines = [
        f"digraph {_q(d.name)} {{",
        f"  graph [label={_graph_label(d.title, entries, s)}, labelloc=t, layout=neato, inputscale=72, "
        f"splines=false, outputorder=edgesfirst, {font}];",
        f"  node [{font}, fontsize={_num(s.node_size)}, "
        'shape=point, style=invis, width=0, height=0, label=""];',
        f"  edge [{font}, fontsize={_num(s.edge_size)}];",
    ]
    lifeline = s.participants["lifeline"]
    for p in ids:
        x = xs[column[p]]
        lines.append(
            f"  {_q('h_' + p)} [pos={_q(f'{x:.0f},20!')}, label={_q(labels[p])}, shape=box, "
            f'style="rounded,filled", fillcolor={_q(s.participants["fill"])}, width=1.5, height=0.5];'
        )
        lines.append(f"  {_q('end_' + p)} [pos={_q(f'{x:.0f},{bottom:.0f}!')}];")
        lines.append(
            f"  {_q('h_' + p)} -> {_q('end_' + p)} [arrowhead=none, style=dashed, color={_q(lifeline)}];"
        )
    for i, (msg, text) in enumerate(zip(d.messages, texts, strict=True)):
        caller = msg.target if msg.reply else msg.source
        mark = s.mark("broken") if msg.highlight else s.mark(caller)
        line = s.mark("reply").line if msg.reply else mark.line
        xa, xb, y = xs[column[msg.source]], xs[column[msg.target]], ys[i]
        label_y = y + line_h * (text.count("\n") + 1) / 2 + 2
        lines.append(
            f"  {_q(f'm{i}_from')} [pos={_q(f'{xa:.0f},{y:.0f}!')}]; "
            f"{_q(f'm{i}_to')} [pos={_q(f'{xb:.0f},{y:.0f}!')}]; "
            f"{_q(f'm{i}_text')} [pos={_q(f'{(xa + xb) / 2:.0f},{label_y:.0f}!')}, label={_q(text)}, "
            f"shape=plaintext, style=solid, fontsize={_num(s.edge_size)}, fontcolor={_q(mark.colour)}];"
        )
        lines.append(
            f"  {_q(f'm{i}_from')} -> {_q(f'm{i}_to')} [color={_q(mark.colour)}, style={_LINE[line]}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


def ordered_participants(d: SequenceDiagram, s: DiagramStyle) -> list[str]:
    """The participants' ids in the style's lifeline order (any others after them, as given)."""
    order = list(s.participant_order)
    return sorted((p for p, _ in d.participants), key=lambda p: order.index(p) if p in order else len(order))


def text_width(text: str, size: float) -> float:
    """A generous estimate of how wide ``text`` is drawn, in points (its longest line)."""
    return max(len(line) for line in text.split("\n")) * size * 0.6
