"""Prediction: what a trigger does to an entity's candidate states, three-valued (D16, D18).

For each candidate state and each value of the guards the log cannot decide, the engine (a
:class:`~fsm.machines.TransitionTable` compiled from the ``transitions`` Machine, or that Machine
itself) says where the trigger leads; where it leads nowhere, the machine file says which code the
refusal carries. The caller judges only what every outcome agrees on. Nothing here changes an entity.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fsm.machines import Engine
from fsm.pointer import MISSING, get, split
from fsm.spec.model import GuardSpec, MachineSpec, TransitionSpec
from fsm.stepper.entities import Entity

__all__ = ["Outcome", "Prediction", "Predictor"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """One predicted outcome from one candidate state: accepted into ``dest``, or refused with ``code``."""

    accept: bool
    state: str
    dest: str | None = None
    code: str | None = None
    rule: str | None = None
    transition: TransitionSpec | None = None
    pointer: str = ""


@dataclass(frozen=True, slots=True, init=False)
class Prediction:
    """The model's forecast for one call, made without changing the model.

    ``accepted``: True (every outcome accepts), False (every outcome refuses) or None (the model
    cannot tell: an entity adopted mid-flow, a guard the log does not decide, or an entity never met).
    ``leads_to``: the states the call's last entity may end in when accepted. ``status`` and
    ``code``: the refusal the docs prescribe (None: any 4xx, or no single code). ``spec_path``: the
    machine file and pointer of the transition or refusal that decided.
    """

    operation: str | None
    accepted: bool | None
    entity: str | None = None
    leads_to: tuple[str, ...] = ()
    status: int | None = None
    code: str | None = None
    rule: str | None = None
    spec_path: str = ""
    reason: str = ""

    def __init__(
        self,
        operation: str | None,
        accepted: bool | None,
        entity: str | None = None,
        leads_to: tuple[str, ...] = (),
        status: int | None = None,
        code: str | None = None,
        rule: str | None = None,
        spec_path: str = "",
        reason: str = "",
    ) -> None:
        # (the generated __init__ of a frozen class calls object.__setattr__ for each field; the
        # slots' own setters take half the time, and an enforcing middleware makes 2-3 a request)
        _operation(self, operation)
        _accepted(self, accepted)
        _entity(self, entity)
        _leads_to(self, leads_to)
        _status(self, status)
        _code(self, code)
        _rule(self, rule)
        _spec_path(self, spec_path)
        _reason(self, reason)


_operation, _accepted, _entity, _leads_to, _status, _code, _rule, _spec_path, _reason = (
    vars(Prediction)[name].__set__
    for name in (
        "operation",
        "accepted",
        "entity",
        "leads_to",
        "status",
        "code",
        "rule",
        "spec_path",
        "reason",
    )
)


class Predictor:
    """The predicted outcomes of a trigger on an entity, per machine (tables built once at load)."""

    def __init__(self, machines: Mapping[str, MachineSpec], engines: Mapping[str, Engine]) -> None:
        self.machines = machines
        self.engines = engines
        self.finals = {name: m.finals for name, m in machines.items()}
        self._by_state: dict[str, dict[tuple[str, str], tuple[TransitionSpec, ...]]] = {}
        for name, m in machines.items():
            table: dict[tuple[str, str], list[TransitionSpec]] = {}
            for t in m.transitions:
                for s in t.source:
                    table.setdefault((s, t.trigger), []).append(t)
            self._by_state[name] = {k: tuple(v) for k, v in table.items()}
        # outcomes of unguarded triggers depend on the state only: remembered (table engines only,
        # whose answers never depend on the entity)
        self._memo: dict[tuple[str, str, str], tuple[list[Outcome], list[Outcome]]] | None = (
            {} if all(getattr(e, "name", "") == "table" for e in engines.values()) else None
        )

    def transitions(self, machine: str, state: str, trigger: str) -> tuple[TransitionSpec, ...]:
        """The transitions ``trigger`` may take from ``state``, in file order."""
        return self._by_state[machine].get((state, trigger), ())

    def fixed(self, m: MachineSpec, state: str, trigger: str) -> tuple[list[Outcome], list[Outcome]] | None:
        """The outcomes of ``trigger`` from ``state`` when nothing else decides them, else None.

        Fixed: no refusing guard on the transitions, and an engine whose answers never depend on the
        entity (the compiled tables); the lifecycle compiles these once at load.
        """
        if self._memo is None or any(t.refusing_guards for t in self.transitions(m.name, state, trigger)):
            return None
        return self.outcomes(m, Entity(m.name, None, None, (state,)), (state,), trigger, None)

    def guard(self, g: GuardSpec, e: Entity, body: Any) -> bool | None:
        """The guard's value on ``e`` for a request with ``body``; None when the log cannot decide."""
        if g.children is not None:
            finals = self.finals[g.children]
            result: bool | None = True
            for child in e.children or ():
                if child.kind != g.children:
                    continue
                if all(s in finals for s in child.states):
                    continue
                if any(s in finals for s in child.states):
                    result = None
                else:
                    return False
            return result
        assert g.attribute is not None
        value = get(e.attrs, tuple(g.attribute.split("/")))
        if value is MISSING or value is None:
            return None
        if g.equals is not None:
            return bool(value == g.equals)
        assert g.equals_request is not None
        want = get(body, split(g.equals_request))
        if want is MISSING:
            return None
        return bool(value == want)

    def outcomes(
        self, m: MachineSpec, e: Entity, states: tuple[str, ...], trigger: str, body: Any
    ) -> tuple[list[Outcome], list[Outcome]]:
        """The predicted outcomes of ``trigger`` on ``e`` in ``states``, split: (accepting, refusing)."""
        memo = self._memo
        key = (m.name, states[0], trigger)
        if memo is not None and len(states) == 1:
            hit = memo.get(key)
            if hit is not None:
                return hit
        engine = self.engines[m.name]
        table = self._by_state[m.name]
        out: list[Outcome] = []
        guarded = False
        for state in states:
            transitions = table.get((state, trigger), ())
            if not transitions:
                refusal = m.refusal(state, trigger)
                out.append(
                    Outcome(
                        False,
                        state,
                        code=refusal.code if refusal else None,
                        rule=refusal.rule if refusal else None,
                        pointer=f"{m.file}#{refusal.pointer}" if refusal else f"{m.file}#/transitions",
                    )
                )
                continue
            names = list(dict.fromkeys(g.guard for t in transitions for g in t.refusing_guards))
            guarded = guarded or bool(names)
            known = {n: self.guard(m.guards[n], e, body) for n in names}
            unknown = [n for n, v in known.items() if v is None]
            for combo in itertools.product((True, False), repeat=len(unknown)):
                values = {n: bool(v) for n, v in known.items() if v is not None}
                values.update(zip(unknown, combo, strict=True))
                out.append(self._one(m, engine, e, state, trigger, transitions, values))
        split = ([o for o in out if o.accept], [o for o in out if not o.accept])
        if memo is not None and len(states) == 1 and not guarded:
            memo[key] = split
        return split

    @staticmethod
    def _one(
        m: MachineSpec,
        engine: Engine,
        e: Entity,
        state: str,
        trigger: str,
        transitions: tuple[TransitionSpec, ...],
        values: Mapping[str, bool],
    ) -> Outcome:
        """The outcome from ``state`` with every guard decided."""
        dest = engine.dest(e, state, trigger, values)
        if dest is not None:
            taken = next(t for t in transitions if all(values[g.guard] for g in t.refusing_guards))
            return Outcome(True, state, dest=dest, transition=taken, pointer=f"{m.file}#{taken.pointer}")
        code, pointer = None, ""
        for t in transitions:
            failed = next((g for g in t.refusing_guards if not values[g.guard]), None)
            if failed is not None:
                code, pointer = failed.refuse, f"{m.file}#{t.pointer}"
                break
        return Outcome(False, state, code=code, pointer=pointer)

    def allowed(self, m: MachineSpec, states: tuple[str, ...]) -> list[str]:
        """The operations that may be called in any of ``states`` (for 'allowed here' messages)."""
        engine = self.engines[m.name]
        ops = m.operation_of
        found: dict[str, None] = {}
        for s in states:
            for trig in engine.triggers(s):
                if trig in ops:
                    found[ops[trig]] = None
        return list(found)
