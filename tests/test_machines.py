"""The machine files loaded into transitions, and the tables compiled from them."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import pytest
from transitions import Machine

from fsm.machines import TransitionsEngine, TransitionTable, build_machine
from fsm.spec import Spec


def _holder() -> SimpleNamespace:
    return SimpleNamespace(model=None)


def test_machines_are_strict_with_no_auto_transitions(spec: Spec) -> None:
    """No to_<state> triggers exist: only the transitions the files declare."""
    for m in spec.machines.values():
        machine, _ = build_machine(m)
        assert isinstance(machine, Machine)
        assert not any(name.startswith("to_") for name in machine.events)
        assert set(machine.events) == set(m.triggers)


def test_one_machine_holds_many_models(spec: Spec) -> None:
    """Entities are models of one shared Machine per kind, not a Machine each."""
    engine = TransitionsEngine(spec.machines["voucher"])
    holders = [_holder() for _ in range(3)]
    assert engine.dest(holders[0], "RESERVED", "redeem", {}) == "REDEEMED"
    assert engine.dest(holders[1], "REDEEMED", "resolve", {}) == "RESOLVED"
    assert engine.dest(holders[2], "RESERVED", "discard", {}) == "DISCARDED"
    assert len(engine.machine.models) == 3
    for h in holders:
        engine.release(h)
    assert engine.machine.models == []


def test_compiled_table_agrees_with_transitions_on_every_state_trigger_and_guard_value(spec: Spec) -> None:
    """For every machine, state, trigger and guard assignment, both engines give the same target."""
    checked = 0
    for m in spec.machines.values():
        table = TransitionTable.from_spec(m)
        reference = TransitionsEngine(m)
        holder = _holder()
        for state, trigger in itertools.product(m.state_names, m.triggers):
            names = sorted(m.guards)
            for values in itertools.product((True, False), repeat=len(names)):
                guards = dict(zip(names, values, strict=True))
                assert table.dest(None, state, trigger, guards) == reference.dest(
                    holder, state, trigger, guards
                ), (m.name, state, trigger, guards)
                checked += 1
    assert checked > 100


def test_refused_trigger_leaves_the_model_where_it_was(spec: Spec) -> None:
    """may_<trigger> is asked first; a refused trigger never raises MachineError and never moves."""
    engine = TransitionsEngine(spec.machines["voucher"])
    h = _holder()
    assert engine.dest(h, "RESOLVED", "redeem", {}) is None
    assert h.model.state == "RESOLVED"


def test_guards_decide_negotiate(spec: Spec) -> None:
    """negotiate needs a SIMPLE voucher on the same network (D8)."""
    table = TransitionTable.from_spec(spec.machines["voucher"])
    assert table.dest(None, "REDEEMED", "negotiate", {"is_simple": True, "same_network": True}) == "REDEEMED"
    assert table.dest(None, "REDEEMED", "negotiate", {"is_simple": False, "same_network": True}) is None
    assert table.dest(None, "REDEEMED", "negotiate", {"is_simple": True, "same_network": False}) is None


@pytest.mark.parametrize(
    ("machine", "state"),
    [
        ("voucher", "RESOLVED"),
        ("voucher", "DISCARDED"),
        ("voucher", "EXPIRED"),
        ("session", "CLOSED"),
        ("context", "CLOSED"),
    ],
)
def test_final_states_have_no_way_out(spec: Spec, machine: str, state: str) -> None:
    """Final states stay final: no trigger leads anywhere from them."""
    assert TransitionTable.from_spec(spec.machines[machine]).triggers(state) == ()
