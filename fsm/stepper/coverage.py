"""What a run exercised: states entered, transitions taken, refusals seen (per machine)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["Coverage"]


@dataclass
class Coverage:
    """What a run exercised: states entered, transitions taken, refusals seen (per machine)."""

    states: Counter[tuple[str, str]] = field(default_factory=Counter)
    transitions: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    refusals: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)

    def took(self, machine: str, source: str, trigger: str, dest: str) -> None:
        """Count one transition (source ``[*]`` for a creation) and the state it entered."""
        self.transitions[(machine, source, trigger, dest)] += 1
        self.states[(machine, dest)] += 1

    def refused(self, machine: str, state: str, trigger: str, code: str) -> None:
        """Count one refusal the model predicted, with the code the server gave."""
        self.refusals[(machine, state, trigger, code)] += 1
