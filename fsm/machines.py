"""The machines, loaded into ``transitions``, and the tables compiled from them.

``transitions`` is the authority: each machine file becomes one
:class:`transitions.Machine` (``auto_transitions=False``, many models). The
validator's hot path asks a :class:`TransitionTable` compiled *from that
Machine* (not from the file), which answers the same question in a dict lookup.
Both implement :class:`Engine`; a test runs the whole corpus through both and
requires identical reports.

Guards are three-valued in the validator (unknown for adopted entities, D18);
an engine is only ever asked with every guard decided.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from transitions import Machine, MachineError

from fsm._shared import per_spec
from fsm.errors import SpecError, UsageError
from fsm.spec.model import MachineSpec, Spec

__all__ = [
    "Engine",
    "MachineModel",
    "TransitionTable",
    "TransitionsEngine",
    "build_machine",
    "engines_for",
]


class Engine(Protocol):
    """Answers where ``trigger`` leads from ``state`` with given guard values."""

    name: str

    def dest(self, holder: Any, state: str, trigger: str, guards: Mapping[str, bool]) -> str | None:
        """The target state, or None when the trigger is not allowed.

        ``holder`` is the validator's entity; engines that keep per-entity
        models store theirs in its ``model`` attribute.
        """

    def triggers(self, state: str) -> tuple[str, ...]:
        """Triggers that can fire from ``state`` (for 'allowed here' messages)."""

    def release(self, holder: Any) -> None:
        """Forget the per-entity model of ``holder``, if any."""


class MachineModel:
    """Base of the per-machine model classes; guard conditions read the event's guard values."""

    state: str


def _guard_reader(name: str) -> Callable[[Any, Any], bool]:
    def read(self: Any, event: Any) -> bool:
        return bool(event.kwargs["guards"][name])

    read.__name__ = name
    return read


def build_machine(spec: MachineSpec) -> tuple[Machine, type[MachineModel]]:
    """Load one machine file's spec into a strict :class:`transitions.Machine`.

    Returns the machine (with no models yet) and the model class to add to it.
    Only refusing guards become conditions; warning guards never block a call.
    """
    model_cls = type(
        f"{spec.title.replace(' ', '')}Model",
        (MachineModel,),
        {name: _guard_reader(name) for name in spec.guards},
    )
    machine = Machine(
        model=None,
        states=list(spec.state_names),
        initial=spec.creates[0].dest,
        auto_transitions=False,
        ignore_invalid_triggers=False,
        send_event=True,
        name=spec.name,
    )
    for t in spec.transitions:
        for source in t.source:
            machine.add_transition(
                t.trigger,
                source,
                t.dest_for(source),
                conditions=[g.guard for g in t.refusing_guards],
            )
    return machine, model_cls


class TransitionsEngine:
    """Runs entities as models of one shared :class:`transitions.Machine` (the reference)."""

    name = "transitions"

    def __init__(self, spec: MachineSpec) -> None:
        self.machine, self._model_cls = build_machine(spec)

    def dest(self, holder: Any, state: str, trigger: str, guards: Mapping[str, bool]) -> str | None:
        """Ask the Machine with ``may_<trigger>``, then fire it on the entity's model."""
        model = holder.model
        if model is None:
            model = holder.model = self._model_cls()
            self.machine.add_model(model, initial=state)
        else:
            self.machine.set_state(state, model=model)
        may = getattr(model, f"may_{trigger}", None)
        if may is None or not may(guards=guards):
            return None
        try:
            model.trigger(trigger, guards=guards)
        except MachineError as exc:  # may_ said yes: a disagreement inside transitions
            raise SpecError(
                f"machine {self.machine.name}: {trigger} from {state} was allowed by "
                f"may_{trigger} but failed: {exc.value}"
            ) from None
        return str(model.state)

    def triggers(self, state: str) -> tuple[str, ...]:
        """Triggers with a transition out of ``state``."""
        return tuple(self.machine.get_triggers(state))

    def release(self, holder: Any) -> None:
        """Remove the entity's model from the shared Machine so it can be freed."""
        if holder.model is not None:
            self.machine.remove_model(holder.model)
            holder.model = None


class TransitionTable:
    """A dict ``(state, trigger) -> ((dest, conditions), ...)`` compiled from a Machine."""

    name = "table"

    def __init__(self, machine: Machine) -> None:
        table: dict[tuple[str, str], tuple[tuple[str, tuple[str, ...]], ...]] = {}
        for trigger, event in machine.events.items():
            for source, transitions in event.transitions.items():
                entries = []
                for t in transitions:
                    if any(not c.target for c in t.conditions):
                        raise SpecError(f"{machine.name}.{trigger}: negated conditions are not compiled")
                    dest = t.dest if t.dest is not None else source  # internal transition: stays
                    entries.append((dest, tuple(str(c.func) for c in t.conditions)))
                table[(source, trigger)] = tuple(entries)
        self._table = table
        self._triggers: dict[str, tuple[str, ...]] = {}
        for source, trigger in table:
            self._triggers[source] = (*self._triggers.get(source, ()), trigger)

    @classmethod
    def from_spec(cls, spec: MachineSpec) -> TransitionTable:
        """Build the Machine for ``spec`` and compile it."""
        return cls(build_machine(spec)[0])

    def dest(self, holder: Any, state: str, trigger: str, guards: Mapping[str, bool]) -> str | None:
        """The first transition whose conditions all hold, as transitions itself picks."""
        for dest, conditions in self._table.get((state, trigger), ()):
            if all(guards[c] for c in conditions):
                return dest
        return None

    def triggers(self, state: str) -> tuple[str, ...]:
        """Triggers with a transition out of ``state``."""
        return self._triggers.get(state, ())

    def release(self, holder: Any) -> None:
        """Nothing to forget: the table keeps no per-entity state."""


def engines_for(spec: Spec, engine: str = "table") -> dict[str, Engine]:
    """One engine per machine: ``table`` (fast, compiled) or ``transitions`` (reference)."""
    if engine == "table":  # (tables keep no state of a run: compiled once a spec)
        return per_spec(
            "tables", spec, lambda: {name: TransitionTable.from_spec(m) for name, m in spec.machines.items()}
        )
    if engine == "transitions":
        return {name: TransitionsEngine(m) for name, m in spec.machines.items()}
    raise UsageError(f"unknown engine {engine!r}; use 'table' or 'transitions'")
