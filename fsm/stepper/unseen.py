"""One party's view (D28): the changes the other party's unseen calls could have made.

A validator fed from one party's client sees that party's calls only. Which calls the other party
(or either party) makes comes from the operation table's callers (``actors``); the machine
transitions those operations trigger are the unseen ones. A change the model did not predict but
that a run of unseen transitions reaches is adopted (``observe.unseen-call``, info) rather than
reported; every other change stays what it was. With the view ``all`` nothing is unseen.
"""

from __future__ import annotations

from collections.abc import Mapping

from fsm.spec.model import STAY, Spec
from fsm.violation import Finding

__all__ = ["Unseen"]

_EITHER = frozenset({"any", "anyone"})


class Unseen:
    """Per machine, the states reachable through transitions of calls the viewer does not see."""

    def __init__(self, spec: Spec, view: str = "all") -> None:
        self.view = view
        self.operations: frozenset[str] = frozenset()
        self._edges: dict[str, dict[str, frozenset[str]]] = {}
        self._triggers: dict[str, dict[str, str]] = {}
        if view == "all":
            return
        others = set(spec.callers.roles) - {view}
        self.operations = frozenset(
            op.id for op in spec.operations if set(op.actors) & (others | _EITHER) and op.steps
        )
        for name, m in spec.machines.items():
            edges: dict[str, set[str]] = {}
            triggers: dict[str, str] = {}
            for t in m.transitions:
                if t.operation not in self.operations or t.dest == STAY:
                    continue
                triggers[t.trigger] = t.operation
                for s in t.source:
                    edges.setdefault(s, set()).add(t.dest)
            self._edges[name] = {s: frozenset(d) for s, d in edges.items()}
            self._triggers[name] = triggers

    def __bool__(self) -> bool:
        return bool(self.operations)

    def reach(self, machine: str, states: tuple[str, ...]) -> tuple[str, ...]:
        """The states one or more unseen transitions lead to from ``states`` (not ``states`` themselves)."""
        edges: Mapping[str, frozenset[str]] = self._edges.get(machine, {})
        found: dict[str, None] = {}
        todo = list(states)
        while todo:
            for dest in edges.get(todo.pop(), ()):
                if dest not in found:
                    found[dest] = None
                    todo.append(dest)
        return tuple(s for s in found if s not in states)

    def calls(self, machine: str) -> list[str]:
        """The unseen operations that change ``machine`` (for messages)."""
        return sorted(set(self._triggers.get(machine, {}).values()))

    def finding(
        self, key: str, machine: str, was: tuple[str, ...], now: tuple[str, ...], why: str
    ) -> Finding:
        """The ``observe.unseen-call`` info for ``key``, adopted in ``now`` (the model had ``was``)."""
        calls = self.calls(machine)
        return Finding(
            "observe.unseen-call",
            f"{key} {why}, though the model had it {' or '.join(was)}: a call this {self.view}'s view "
            f"does not see ({', '.join(calls)}) explains it; adopted in {' or '.join(now)}",
            entity=key,
            expected=list(was),
            actual=list(now),
        )

    def unproven(self, key: str, children: list[str], rule: str) -> Finding:
        """The ``observe.unseen-call`` info for a warning this view cannot prove (``rule`` not given).

        ``children`` are not final in the model, but calls this view does not see could have
        finished each of them.
        """
        shown = ", ".join(children[:5]) + (", ..." if len(children) > 5 else "")
        return Finding(
            "observe.unseen-call",
            f"{key}: {rule} not reported: {shown} may have been finished by calls this {self.view}'s "
            "view does not see",
            entity=key,
            actual=children,
        )
