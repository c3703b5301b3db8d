"""Spec -> diagram IR. The only diagram module that reads the spec."""

from __future__ import annotations

from collections.abc import Mapping

from fsm.diagrams.ir import Edge, Message, Node, SequenceDiagram, StateDiagram
from fsm.spec.model import FlowSpec, MachineSpec, Spec

__all__ = ["flow_diagram", "state_diagram"]

START = "__start__"


def state_diagram(
    m: MachineSpec,
    *,
    with_errors: bool = False,
    counts: Mapping[tuple[str, str, str], int] | None = None,
    state_counts: Mapping[str, int] | None = None,
) -> StateDiagram:
    """The machine as nodes and edges; ``with_errors`` lists refusal codes per state.

    ``counts`` maps (source, trigger, target) to how often a log took the transition
    (coverage overlays); creations use source ``[*]``. ``state_counts`` maps a state to
    how often the log entered it.
    """
    statuses = [s.status for s in m.states]
    groups = {st: st for st in statuses if statuses.count(st) > 1}
    nodes = [Node(START, "", start=True)]
    op_of = m.operation_of
    for s in m.states:
        notes: list[str] = []
        if with_errors:
            for trig in op_of:
                if any(s.name in t.source for t in m.transitions if t.trigger == trig):
                    continue
                r = m.refusal(s.name, trig)
                notes.append(f"{op_of[trig]}: {r.code if r and r.code else 'any 4xx'}")
        seen = None if state_counts is None else state_counts.get(s.name, 0)
        nodes.append(
            Node(s.name, s.name, final=s.final, group=groups.get(s.status), notes=tuple(notes), count=seen)
        )
    edges = []
    for c in m.creates:
        n = None if counts is None else counts.get(("[*]", c.trigger, c.dest), 0)
        edges.append(Edge(START, c.dest, c.operation, c.actor, count=n))
    for t in m.transitions:
        for source in t.source:
            dest = t.dest_for(source)
            n = None if counts is None else counts.get((source, t.trigger, dest), 0)
            warns = tuple(([t.warn] if t.warn else []) + [g.warn for g in t.warning_guards if g.warn])
            if t.timed_attribute:
                edges.append(Edge(source, dest, f"after {t.timed_attribute}", t.actor, timed=True, count=n))
            else:
                edges.append(
                    Edge(
                        source,
                        dest,
                        t.operation or t.trigger,
                        t.actor,
                        guards=tuple(g.guard for g in t.guards if g.refuse),
                        warns=warns,
                        count=n,
                    )
                )
    return StateDiagram(m.name, m.title, tuple(nodes), tuple(edges), groups)


def flow_diagram(spec: Spec, flow: FlowSpec) -> SequenceDiagram:
    """A declared flow: each call and the state its answer leads to."""
    ops = {op.id: op for op in spec.operations}
    participants = (
        ("payer", spec.participants["payer"]),
        ("payee", spec.participants["payee"]),
        ("server", spec.participants["server"]),
    )
    messages = []
    for step in flow.steps:
        op = ops[step.operation]
        text = f"{op.method} {op.path}" + (f" ({step.note})" if step.note else "")
        messages.append(Message(step.actor, "server", text))
        messages.append(Message("server", step.actor, _answer(spec, step.operation), reply=True))
    return SequenceDiagram(flow.name, flow.title, participants, tuple(messages))


def _answer(spec: Spec, op_id: str) -> str:
    """``200`` plus the state the call leads to, when the machines say it unambiguously."""
    op = next(o for o in spec.operations if o.id == op_id)
    states = []
    for step in op.steps:
        m = spec.machines[step.machine]
        if step.creates:
            created = m.creation(step.trigger)
            if created is not None:
                states.append(f"{m.name} {created.dest}")
            continue
        dests = {t.dest_for(s) for t in m.transitions_for(step.trigger) for s in t.source}
        moving = {d for t in m.transitions_for(step.trigger) for s in t.source if (d := t.dest_for(s)) != s}
        if len(moving) == 1 and len(dests) <= len(moving) + 2:
            states.append(f"{m.name} {moving.pop()}")
    if op.issues_token:
        states.append("token")
    return "200" + (": " + ", ".join(states) if states else "")
