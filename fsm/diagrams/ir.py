"""The diagram IR: plain frozen data that the renderers read (nothing else)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "Edge",
    "Message",
    "Node",
    "SequenceDiagram",
    "StateDiagram",
]

# How the IR is drawn (colours, lines, legends) is data: fsm/protocol/diagram-style.json.


@dataclass(frozen=True, slots=True)
class Node:
    """A state (or the start point). ``group`` names the composite it sits in (sub-states)."""

    id: str
    label: str
    final: bool = False
    start: bool = False
    group: str | None = None
    notes: tuple[str, ...] = ()
    count: int | None = None  # coverage overlays: how often the log entered it (None: not an overlay)


@dataclass(frozen=True, slots=True)
class Edge:
    """A transition: ``label`` is the operation, ``actor`` who may call it."""

    source: str
    target: str
    label: str
    actor: str
    guards: tuple[str, ...] = ()
    warns: tuple[str, ...] = ()
    timed: bool = False
    count: int | None = None  # coverage overlays: how often the log took it (None: not an overlay)

    @property
    def text(self) -> str:
        """The full edge label: operation (actor), guards and warnings, and a count if any."""
        head = self.label if self.timed else f"{self.label} ({self.actor})"
        parts = [head]
        if self.guards:
            parts.append("[" + ", ".join(self.guards) + "]")
        if self.warns:
            parts.append("warns " + ", ".join(self.warns))
        if self.count is not None:
            parts.append(f"x{self.count}" if self.count else "never seen")
        return "\n".join(parts)


@dataclass(frozen=True)
class StateDiagram:
    """One machine."""

    name: str
    title: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    groups: dict[str, str] = field(default_factory=dict)  # group id -> label


@dataclass(frozen=True, slots=True)
class Message:
    """One arrow of a sequence diagram."""

    source: str
    target: str
    text: str
    reply: bool = False
    highlight: str | None = None  # a rule id when this exchange broke a rule


@dataclass(frozen=True)
class SequenceDiagram:
    """A flow between participants."""

    name: str
    title: str
    participants: tuple[tuple[str, str], ...]  # (id, label)
    messages: tuple[Message, ...]
