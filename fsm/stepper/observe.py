"""Observations (D17): a read of an entity's status must equal the model's (expiry allowed for).

A status that changed with no call of the entity's own, after a call on its parent, breaks
independence; any other difference is a status mismatch. An entity first met in an observation is
adopted in the states its status allows (D18).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fsm.spec.model import MachineSpec, ObserveSpec, Spec
from fsm.stepper.call import Call
from fsm.stepper.clock import Timers
from fsm.stepper.entities import Entity, EntityStore, Seen, history_location, summary
from fsm.stepper.refs import MISSING, Reader, reader
from fsm.stepper.terms import Term, Terms
from fsm.stepper.unseen import Unseen
from fsm.violation import Finding, RelatedExchange

__all__ = ["Observations", "ObservePlan"]


@dataclass(frozen=True, slots=True)
class ObservePlan:
    """One ``observes`` entry compiled once at load: its machine, and its references as readers."""

    obs: ObserveSpec
    machine: MachineSpec
    read_each: Reader | None
    read_id: Reader
    read_code: Reader
    read_status: Reader
    record: tuple[Term, ...]
    expect: tuple[Term, ...]
    status_of: dict[str, str]  # state -> the status the API reports in it
    lists: bool  # records and expects nothing: a retired entity it lists may stay retired (stand_in)


class Observations:
    """Judges the ``observes`` of an accepted call."""

    def __init__(
        self, spec: Spec, store: EntityStore, timers: Timers, terms: Terms, unseen: Unseen | None = None
    ) -> None:
        self.machines = spec.machines
        self.unseen = unseen if unseen is not None else Unseen(spec)
        self.store = store
        self.timers = timers
        self.terms = terms
        self._status_of = {name: {s.name: s.status for s in m.states} for name, m in spec.machines.items()}

    def plan(self, obs: ObserveSpec) -> ObservePlan:
        """Compile one observation (once, at load)."""
        return ObservePlan(
            obs,
            self.machines[obs.machine],
            reader(obs.each) if obs.each is not None else None,
            reader(obs.ref.id),
            reader(obs.ref.code),
            reader(obs.status),
            self.terms.compile(obs.record),
            self.terms.compile(obs.expect),
            self._status_of[obs.machine],
            not obs.record and not obs.expect,
        )

    def observe(self, plan: ObservePlan, call: Call, acc: list[Finding]) -> None:
        """Compare each entity the answer shows with the model (findings added); adopt those never met."""
        ex, params, h, touched = call.ex, call.params, call.seen, call.touched
        if not ex.accepted:
            return
        m = plan.machine
        obs = plan.obs
        parent = self._parent(obs, touched)
        if plan.read_each is not None:
            items = plan.read_each(ex, params, MISSING)
            if not isinstance(items, list):
                return
            pairs: Iterator[tuple[int | None, Any]] = enumerate(items)
        else:
            pairs = iter([(None, MISSING)])
        read_id, read_code, read_status = plan.read_id, plan.read_code, plan.read_status
        for n, item in pairs:
            id_ = read_id(ex, params, item)
            code = read_code(ex, params, item)
            status = read_status(ex, params, item)
            if not isinstance(status, str) or (id_ is MISSING and code is MISSING):
                continue
            if plan.lists:  # (a retired entity listed in its final status: named again, nothing more)
                e = self.store.stand_in(m.name, id_, code, status, plan.status_of)
                if e is not None:
                    e.parent = parent  # (what linking it would do while it stands in: see stand_in)
                    e.observed = status
                    self.store.remember(e, h, own=parent is None)
                    touched.append(e)
                    continue
            base = "/response/body" + (f"{obs.each.key}/{n}" if obs.each is not None else "")
            e = self.store.find(m.name, id_, code)
            if e is None:
                e = self.store.adopt(m.name, id_, code, m.states_with_status(status) or m.state_names)
                self.terms.record(plan.record, e, ex, params, item)
                self.terms.record(plan.expect, e, ex, params, item)  # later answers are held to them (D17)
                e.observed = status
                self.store.link(e, parent)
                self.store.remember(e, h, own=parent is None)
                touched.append(e)
                continue
            self.store.file_code(e, code)
            if parent is not None:
                acc.extend(self._membership(e, parent, base))
            self.timers.tick(e, m.name, ex.time)
            acc.extend(self._compare(m, e, status, base + obs.status.key, h, own=parent is None))
            self.terms.record(plan.record, e, ex, params, item)
            if plan.expect:
                acc.extend(self.terms.expect(plan.expect, e, ex, params, item, base))
                self.terms.learn(plan.expect, e, ex, params, item)
            touched.append(e)

    @staticmethod
    def _parent(obs: ObserveSpec, touched: list[Entity]) -> Entity | None:
        """The entity whose children the observation reads (``member_of``), if the call named one."""
        if obs.member_of is None:
            return None
        return next((e for e in reversed(touched) if e.kind == obs.member_of), None)

    def _membership(self, e: Entity, parent: Entity, where: str) -> list[Finding]:
        """An entity read among ``parent``'s children must be one of them (D17).

        One of unknown membership (adopted, D18) becomes one.
        """
        if e.parent is None:
            self.store.link(e, parent)
            return []
        if e.parent is parent:
            return []
        state = e.state_text()
        return [
            Finding(
                "observe.membership",
                f"{e.key} ({state}) is listed in {parent.key} but belongs to {e.parent.key}",
                instance_path=where,
                entity=e.key,
                expected=e.parent.key,
                actual=parent.key,
                related=self.store.related(e),
                state=state,
            )
        ]

    def _compare(
        self, m: MachineSpec, e: Entity, status: str, where: str, h: Seen, *, own: bool = True
    ) -> list[Finding]:
        acc: list[Finding] = []
        status_of = self._status_of[m.name]
        predicted = {status_of[s] for s in e.states}
        if status in predicted:
            e.states = tuple(s for s in e.states if status_of[s] == status)
        elif e.expired_by_clock and status in self.timers.before[m.name]:
            pass  # the server may not report expiry yet (D17: expiry allowed for)
        elif unseen := tuple(s for s in self.unseen.reach(m.name, e.states) if status_of[s] == status):
            acc.append(self.unseen.finding(e.key, m.name, e.states, unseen, f"is observed {status}"))
            e.states = unseen  # (D28: the other party's call, not seen from this view)
        else:
            acc.append(self._mismatch(m, e, status, predicted, where))
            e.states = m.states_with_status(status) or e.states
        e.observed = status
        self.store.remember(e, h, own=own)
        return acc

    def _mismatch(self, m: MachineSpec, e: Entity, status: str, predicted: set[str], where: str) -> Finding:
        """``observe.independence`` when the change follows a call on the parent, else a mismatch."""
        state = e.state_text()
        expired = self.timers.expired_at(e)
        holds = (
            f"the model holds {state}"
            + (f" (expired at {expired})" if expired is not None else "")
            + (f", reported {' or '.join(sorted(predicted))}" if predicted != set(e.states) else "")
            + f"; the model follows the answer ({status}) from here"
        )
        blame = e.parent.last_event if e.parent is not None else None
        independent = (
            blame is not None
            and e.parent is not None
            and blame.exchange_index > e.last_own
            and e.parent.last_child != e.id
            and e.observed is not None
            and e.observed != status
        )
        if independent and blame is not None:
            b_hist = blame
            b_summary = summary(b_hist)
            rule = "observe.independence"
            message = (
                f"{e.key} was last seen {e.observed} and is now {status} with no call of its own; the last "
                f"call in its {e.parent.kind if e.parent else 'parent'} was {b_summary}; {holds}"
            )
            related = (
                *self.store.related(e),
                RelatedExchange(b_hist.exchange_index, history_location(b_hist), b_summary),
            )
        else:
            rule = "observe.status-mismatch"
            message = f"{e.key} is observed {status} but {holds}"
            related = self.store.related(e)
        return Finding(
            rule,
            message,
            instance_path=where,
            entity=e.key,
            expected=sorted(predicted),
            actual=status,
            related=related,
            state=state,
        )
