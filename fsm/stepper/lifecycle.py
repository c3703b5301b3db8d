"""Lifecycle steps: one ``steps`` entry of an operation moves (or creates) one entity.

Each step is compiled once at load into a :class:`StepPlan` (its machine, its creation, whether it
stops a timer); :meth:`Lifecycle.step` judges the exchange against the prediction (D16): accepted where
every outcome refuses is an illegal transition, refused where every outcome accepts an unexpected
refusal, refused with another code than the one predicted a wrong code. Refused calls never change the
model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fsm.exchange import Exchange
from fsm.spec.model import CreateSpec, MachineSpec, OperationSpec, Spec, StepSpec
from fsm.stepper.actors import Actors
from fsm.stepper.clock import Timers
from fsm.stepper.coverage import Coverage
from fsm.stepper.entities import Entity, EntityStore, Seen
from fsm.stepper.predict import Outcome, Predictor
from fsm.stepper.refs import MISSING, resolve
from fsm.stepper.terms import Terms
from fsm.violation import Finding

__all__ = ["Lifecycle", "StepPlan"]


@dataclass(frozen=True, slots=True)
class StepPlan:
    """One step of an operation with its references resolved against the spec."""

    step: StepSpec
    machine: MachineSpec
    creation: CreateSpec | None
    stops_timer: bool  # the trigger is a timed transition's own: taking it clears 'expired by the clock'
    status_of: Mapping[str, str]  # state -> the status the API reports in it
    ticks_children: bool = False  # a guard reads the children's states: their clocks run first (D24)


class Lifecycle:
    """Steps entities through their machines and judges each call against the prediction."""

    def __init__(
        self,
        spec: Spec,
        store: EntityStore,
        predictor: Predictor,
        timers: Timers,
        terms: Terms,
        actors: Actors,
        coverage: Coverage | None,
    ) -> None:
        self.rules = spec.rules
        self.store = store
        self.predictor = predictor
        self.timers = timers
        self.terms = terms
        self.actors = actors
        self.coverage = coverage
        self._status_of = {name: {s.name: s.status for s in m.states} for name, m in spec.machines.items()}
        self._creation = {
            (name, c.trigger): c for name, m in spec.machines.items() for c in reversed(m.creates)
        }
        self._machines = spec.machines

    def plan(self, step: StepSpec) -> StepPlan:
        """Compile one step (once, at load)."""
        m = self._machines[step.machine]
        creation = self._creation.get((m.name, step.trigger)) if step.creates else None
        if step.creates:
            assert creation is not None  # (the spec lint: a creating step names a creation)
        guards = {
            g.guard for t in m.transitions_for(step.trigger) for g in (*t.refusing_guards, *t.warning_guards)
        }
        return StepPlan(
            step,
            m,
            creation,
            step.trigger in self.timers.triggers[m.name],
            self._status_of[m.name],
            any(m.guards[g].children is not None for g in guards),
        )

    def step(
        self,
        plan: StepPlan,
        op: OperationSpec,
        ex: Exchange,
        params: Mapping[str, str],
        previous: Entity | None,
        h: Seen,
        token: str | None,
        broken: bool = False,
    ) -> tuple[Entity | None, list[Finding], bool]:
        """Step one entity; returns it (if any), the findings, and whether later steps go on.

        ``broken``: the request breaks its schema, so the model predicts a refusal (D26).
        """
        step = plan.step
        id_ = resolve(step.ref.id, ex, params) if step.ref.id else MISSING
        code = resolve(step.ref.code, ex, params) if step.ref.code else MISSING
        parent = previous if previous is not None and previous.kind == step.parent else None
        if plan.creation is not None:
            return self._create(plan, plan.creation, op, ex, params, id_, code, parent, h, token)
        out: list[Finding] = []
        m = plan.machine
        found = self.store.find(m.name, id_, code)
        if found is None:
            if id_ is MISSING and code is MISSING:
                return None, out, True
            found = self.store.adopt(m.name, id_, code, m.state_names)
        e = found
        self.timers.tick(e, m.name, ex.time)
        if plan.ticks_children:
            self._tick_children(e, ex.time)
        accepts, refuses = self.predictor.outcomes(m, e, e.states, step.trigger, ex.req_body)
        if ex.accepted:
            if not accepts:
                lazy = self._lazy(plan, e, op, ex, refuses)
                if lazy is None:
                    out.append(self._illegal(plan, e, op, ex, refuses, self._reported(plan, e, ex, params)))
                    self.terms.record(step.record, e, ex, params)  # the server took the terms: follow it
                    self.store.remember(e, h)
                    return e, out, True
                out.append(lazy[0])
                accepts, refuses = lazy[1], lazy[2]
            self._accept(plan, e, accepts, refuses, ex, params, token, out)
        elif broken:
            pass  # a request that breaks its schema is predicted refused, with any code (D26)
        elif not refuses:
            out.append(self._unexpected_refusal(m, e, op, ex, accepts))
        elif not accepts:
            wrong = self._refused(plan, e, op, ex, refuses)
            if wrong is not None:
                out.append(wrong)
        self.store.remember(e, h)
        return e, out, ex.accepted

    def _create(
        self,
        plan: StepPlan,
        created: CreateSpec,
        op: OperationSpec,
        ex: Exchange,
        params: Mapping[str, str],
        id_: object,
        code: object,
        parent: Entity | None,
        h: Seen,
        token: str | None,
    ) -> tuple[Entity | None, list[Finding], bool]:
        out: list[Finding] = []
        if not ex.accepted:
            return None, out, False
        if not isinstance(id_, str):
            return None, out, True
        step, m = plan.step, plan.machine
        old = self.store.entities.get((m.name, id_))
        if old is None and id_ in self.store.finished[m.name]:
            old = self.store.find(m.name, id_, None)
        if old is not None:
            out.append(
                Finding(
                    "entity.reused-id",
                    f"{op.id} created {m.name} {id_}, an id already seen",
                    instance_path="/response/body" + (step.ref.id.key if step.ref.id else ""),
                    entity=old.key,
                    actual=id_,
                    related=self.store.related(old),
                )
            )
            self.store.unlink(old)
        e = self.store.adopt(m.name, id_, code, (created.dest,))
        if self.coverage is not None:
            self.coverage.took(m.name, "[*]", step.trigger, created.dest)
        self.store.link(e, parent)
        if token:
            self.actors.bind(e, created.actor, token)
        if step.record:
            self.terms.record(step.record, e, ex, params)
        if step.status is not None:
            out.extend(self._status(plan, e, ex, params))
        self.store.remember(e, h)
        return e, out, True

    def _accept(
        self,
        plan: StepPlan,
        e: Entity,
        accepts: list[Outcome],
        refuses: list[Outcome],
        ex: Exchange,
        params: Mapping[str, str],
        token: str | None,
        out: list[Finding],
    ) -> None:
        """Follow an accepted call the model allows: warnings, the new states, roles, terms, status."""
        step, m = plan.step, plan.machine
        if not refuses and any(
            o.transition and (o.transition.warn or o.transition.warning_guards) for o in accepts
        ):
            out.extend(self._agreed_warnings(accepts, m, e, ex))
        if len(accepts) == 1 and accepts[0].dest:
            if self.coverage is not None:
                self.coverage.took(m.name, accepts[0].state, step.trigger, accepts[0].dest)
            e.states = (accepts[0].dest,)
        else:
            e.states = tuple(dict.fromkeys(o.dest for o in accepts if o.dest))
        if plan.stops_timer:
            e.expired_by_clock = ()
        if token:
            for o in accepts:
                if o.transition is not None:
                    self.actors.bind(e, o.transition.actor, token)
        if step.record:
            self.terms.record(step.record, e, ex, params)
        if step.status is not None:
            out.extend(self._status(plan, e, ex, params))
        if step.expect:
            out.extend(self.terms.expect(step.expect, e, ex, params))

    def _tick_children(self, e: Entity, now: float | None) -> None:
        """Run the children's clocks before a guard reads them: expired by the clock is final (D4, D24)."""
        for child in e.children or ():
            self.timers.tick(child, child.kind, now)  # (still its parent's child: independence, D17)

    def _lazy(
        self, plan: StepPlan, e: Entity, op: OperationSpec, ex: Exchange, refuses: list[Outcome]
    ) -> tuple[Finding, list[Outcome], list[Outcome]] | None:
        """An accepted call refused only by a lazy refusal (D24), or None.

        Returns its finding, and the outcomes from the states before the timed transition, which
        the model then follows.
        """
        m, trigger = plan.machine, plan.step.trigger
        before = e.expired_by_clock
        if not before or not all((r := m.refusal(o.state, trigger)) is not None and r.lazy for o in refuses):
            return None
        accepts, refusing = self.predictor.outcomes(m, e, before, trigger, ex.req_body)
        if not accepts:
            return None
        state = e.state_text()
        finding = Finding(
            refuses[0].rule or "machine.illegal-transition",
            f"{op.id} was accepted but {e.key} is {state} by the clock (expired at "
            f"{self.timers.expired_at(e)}); a server may expire lazily: the model follows it from "
            f"{', '.join(before)}",
            instance_path="/response/status",
            spec_path=refuses[0].pointer,
            entity=e.key,
            expected="refused (any 4xx)",
            actual=ex.status,
            related=self.store.related(e),
            state=state,
        )
        e.states = before
        return finding, accepts, refusing

    def _unexpected_refusal(
        self, m: MachineSpec, e: Entity, op: OperationSpec, ex: Exchange, accepts: list[Outcome]
    ) -> Finding:
        allowed = ", ".join(self.predictor.allowed(m, e.states))
        return Finding(
            "machine.unexpected-refusal",
            f"{op.id} was refused ({ex.status} {ex.error_code or 'no code'}) but {e.key} is "
            f"{e.state_text()}, where it is legal",
            instance_path="/response/status",
            spec_path=accepts[0].pointer,
            entity=e.key,
            expected=f"accepted (allowed here: {allowed})",
            actual=ex.status,
            related=self.store.related(e),
            state=e.state_text(),
        )

    def _refused(
        self, plan: StepPlan, e: Entity, op: OperationSpec, ex: Exchange, refuses: list[Outcome]
    ) -> Finding | None:
        """A refusal the model predicts: counted; a finding when its code is not the one predicted."""
        codes = {o.code for o in refuses}
        actual = ex.error_code
        if self.coverage is not None and len({(o.state, o.code) for o in refuses}) == 1:
            self.coverage.refused(
                plan.machine.name, refuses[0].state, plan.step.trigger, actual or str(ex.status)
            )
        if len(codes) != 1 or None in codes or actual is None or actual in codes:
            return None
        want = codes.pop()
        return Finding(
            "machine.wrong-refusal-code",
            f"{op.id} on {e.key} ({e.state_text()}) was refused with {actual!r}; expected {want!r}",
            instance_path="/response/body/code",
            spec_path=refuses[0].pointer,
            entity=e.key,
            expected=want,
            actual=actual,
            related=self.store.related(e),
            state=e.state_text(),
        )

    def _reported(
        self, plan: StepPlan, e: Entity, ex: Exchange, params: Mapping[str, str]
    ) -> tuple[str, ...] | None:
        """The states the answer reports ``e`` in, where they differ from the model's (else None)."""
        if plan.step.status is None:
            return None
        actual = resolve(plan.step.status, ex, params)
        if not isinstance(actual, str) or actual not in plan.machine.statuses:
            return None
        states = plan.machine.states_with_status(actual)
        return states if states and set(states) != set(e.states) else None

    def _illegal(
        self,
        plan: StepPlan,
        e: Entity,
        op: OperationSpec,
        ex: Exchange,
        refuses: list[Outcome],
        reported: tuple[str, ...] | None = None,
    ) -> Finding:
        """The call was accepted where every outcome refuses it.

        The model then follows the states the answer reports (``reported``), as the message says.
        """
        m, step = plan.machine, plan.step
        rules = {o.rule for o in refuses}
        only = rules.pop() if len(rules) == 1 else None
        rule = only if only is not None else "machine.illegal-transition"
        codes = sorted({o.code for o in refuses if o.code})
        want = (
            f"refused with {' or '.join(codes)}"
            if codes and all(o.code for o in refuses)
            else "refused (any 4xx)"
        )
        allowed = self.predictor.allowed(m, e.states)
        expired = self.timers.expired_at(e)
        why = f" (expired at {expired})" if expired is not None else ""
        state = e.state_text()
        follows = ""
        if reported is not None:
            e.states = reported
            follows = f"; the model follows the answer ({e.state_text()}) from here"
        return Finding(
            rule,
            f"{op.id} was accepted but {e.key} is {state}{why}: {step.trigger} must be "
            f"{want}; allowed here: {', '.join(allowed) if allowed else 'nothing (final)'}{follows}",
            instance_path="/response/status",
            spec_path=refuses[0].pointer,
            entity=e.key,
            expected=want,
            actual=ex.status,
            related=self.store.related(e),
            state=state,
        )

    def _agreed_warnings(
        self, accepts: list[Outcome], m: MachineSpec, e: Entity, ex: Exchange
    ) -> list[Finding]:
        """The warnings every accepting outcome gives, once each.

        An entity adopted in several states (D18) is warned only of what holds in all of them.
        """
        each = [self._warnings(o, m, e, ex) for o in accepts]
        common = set.intersection(*({f.rule_id for f in found} for found in each))
        return list({f.rule_id: f for f in each[0] if f.rule_id in common}.values())

    def _warnings(self, o: Outcome, m: MachineSpec, e: Entity, ex: Exchange) -> list[Finding]:
        acc: list[Finding] = []
        t = o.transition
        if t is None:
            return acc
        state = e.state_text()
        if t.warn:
            rule = self.rules[t.warn]
            acc.append(
                Finding(
                    t.warn,
                    f"{e.key} ({state}): {rule.title.lower()}",
                    spec_path=o.pointer,
                    entity=e.key,
                    related=self.store.related(e),
                    state=state,
                )
            )
        for use in t.warning_guards:
            if self.predictor.guard(m.guards[use.guard], e, ex.req_body) is False:
                assert use.warn is not None
                rule = self.rules[use.warn]
                open_children = [c.key for c in e.children or () if not self.store.is_final(c)]
                acc.append(
                    Finding(
                        use.warn,
                        f"{e.key} ({state}): {rule.title.lower()}"
                        + (f" ({', '.join(open_children[:5])})" if open_children else ""),
                        spec_path=o.pointer,
                        entity=e.key,
                        expected=m.guards[use.guard].description,
                        actual=open_children,
                        related=self.store.related(e),
                        state=state,
                    )
                )
        return acc

    def _status(
        self, plan: StepPlan, e: Entity, ex: Exchange, params: Mapping[str, str]
    ) -> tuple[Finding, ...]:
        step, m = plan.step, plan.machine
        if step.status is None:
            return ()
        actual = resolve(step.status, ex, params)
        if not isinstance(actual, str) or actual not in m.statuses:
            return ()  # not a status of this machine at all: the schema check reports it
        status_of = plan.status_of
        if len(e.states) == 1 and status_of[e.states[0]] == actual:
            e.observed = actual
            return ()
        predicted = {status_of[s] for s in e.states}
        if actual in predicted:
            e.states = tuple(s for s in e.states if status_of[s] == actual)
            e.observed = actual
            return ()
        state = e.state_text()
        finding = Finding(
            "machine.status-mismatch",
            f"{e.key}: the response says {actual} but the model holds {state}"
            + (f" (reported {' or '.join(sorted(predicted))})" if predicted != set(e.states) else "")
            + f"; the model follows the answer ({actual}) from here",
            instance_path="/response/body" + step.status.key,
            entity=e.key,
            expected=sorted(predicted),
            actual=actual,
            related=self.store.related(e),
            state=state,
        )
        resync = m.states_with_status(actual)
        if resync:
            e.states = resync
        e.observed = actual
        return (finding,)
