"""The look of every diagram, read from ``fsm/protocol/diagram-style.json`` (checked at load).

Colours, line styles, fonts, spacing and legend texts are data; the renderers only decide
structure (which mark an edge gets, where labels go).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fsm._resources import protocol_dir
from fsm.spec.loader import check_file

__all__ = ["DiagramStyle", "Mark", "load_style"]


@dataclass(frozen=True, slots=True)
class Mark:
    """How one kind of line looks (a caller's calls, an answer, a deadline, ...) and what the legend says."""

    colour: str
    line: str  # solid, dashed, dotted or bold
    legend: str


@dataclass(frozen=True)
class DiagramStyle:
    """The whole style file, typed."""

    font: str
    title_size: float
    node_size: float
    edge_size: float
    legend_size: float
    marks: dict[str, Mark]
    states: dict[str, str]
    participants: dict[str, str]
    participant_order: tuple[str, ...]
    layout: dict[str, dict[str, Any]]

    def mark(self, name: str) -> Mark:
        """The mark called ``name`` (a caller or a kind of line); callers not in the file draw as ``any``."""
        return self.marks.get(name, self.marks["any"])


def load_style(path: Path | None = None) -> DiagramStyle:
    """Read and check the style file (default: the shipped one, read once per process)."""
    if path is None:
        return _shipped()
    return _read(path)


@functools.cache
def _shipped() -> DiagramStyle:
    return _read(protocol_dir() / "diagram-style.json")


def _read(path: Path) -> DiagramStyle:
    doc = check_file(path, "diagram-style")
    font = doc["font"]
    return DiagramStyle(
        font=font["name"],
        title_size=font["title"],
        node_size=font["node"],
        edge_size=font["edge"],
        legend_size=font["legend"],
        marks={k: Mark(v["colour"], v["line"], v["legend"]) for k, v in doc["marks"].items()},
        states=dict(doc["states"]),
        participants={k: v for k, v in doc["participants"].items() if isinstance(v, str)},
        participant_order=tuple(doc["participants"]["order"]),
        layout={k: dict(v) for k, v in doc["layout"].items()},
    )
