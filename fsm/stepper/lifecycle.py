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
from fsm.stepper.unseen import Unseen
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
        unseen: Unseen | None = None,
    ) -> None:
        self.rules = spec.rules
        self.unseen = unseen if unseen is not None else Unseen(spec)
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
        return StepPlan(
            step, m, creation, step.trigger in self.timers.triggers[m.name], self._status_of[m.name]
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
    ) -> tuple[Entity | None, list[Finding], bool]:
        """Step one entity; returns it (if any), the findings, and whether later steps go on."""
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
        accepts, refuses = self.predictor.outcomes(m, e, e.states, step.trigger, ex.req_body)
        if self.unseen and (not accepts if ex.accepted else not refuses):
            accepts, refuses = self._unseen(plan, e, ex, accepts, refuses, out)
        if ex.accepted:
            if not accepts:
                out.append(self._illegal(plan, e, op, ex, refuses))
                self.terms.record(step.record, e, ex, params)  # the server took the terms: follow it
                self.store.remember(e, h)
                return e, out, True
            self._accept(plan, e, accepts, refuses, ex, params, token, out)
        elif not refuses:
            out.append(self._unexpected_refusal(m, e, op, ex, accepts))
        elif not accepts:
            wrong = self._refused(plan, e, op, ex, refuses)
            if wrong is not None:
                out.append(wrong)
        self.store.remember(e, h)
        return e, out, ex.accepted

    def _unseen(
        self,
        plan: StepPlan,
        e: Entity,
        ex: Exchange,
        accepts: list[Outcome],
        refuses: list[Outcome],
        out: list[Finding],
    ) -> tuple[list[Outcome], list[Outcome]]:
        """An answer the model did not predict that an unseen call of the other party explains (D28).

        Accepted where every outcome refuses, or refused (with the code the docs give) where every
        outcome accepts: when a state that unseen transitions reach predicts the answer, the entity
        is adopted there with an ``observe.unseen-call`` info; otherwise the outcomes stand.
        """
        m, trigger = plan.machine, plan.step.trigger
        fits: list[str] = []
        for state in self.unseen.reach(m.name, e.states):
            acc, ref = self.predictor.outcomes(m, e, (state,), trigger, ex.req_body)
            if ex.accepted:
                fit = bool(acc) and not ref
            else:
                codes = {o.code for o in ref}  # (None: any 4xx)
                fit = bool(ref) and not acc and (None in codes or ex.error_code in codes)
            if fit:
                fits.append(state)
        if not fits:
            return accepts, refuses
        did = "was accepted" if ex.accepted else f"was refused with {ex.error_code!r}"
        out.append(self.unseen.finding(e.key, m.name, e.states, tuple(fits), f"{plan.step.trigger} {did}"))
        e.states = tuple(fits)
        return self.predictor.outcomes(m, e, e.states, trigger, ex.req_body)

    def _may_have_finished(self, c: Entity) -> bool:
        """Whether calls this view does not see could have brought ``c`` to a final state (D28)."""
        finals = self._machines[c.kind].finals
        return any(s in finals for s in self.unseen.reach(c.kind, c.states))

    def _unseen_clean(
        self, plan: StepPlan, e: Entity, ex: Exchange, accepts: list[Outcome], out: list[Finding]
    ) -> tuple[list[Outcome], list[Outcome]]:
        """An accepted call that warns where the model is, but not where an unseen call leads (D28)."""
        m, trigger = plan.machine, plan.step.trigger
        fits = []
        for state in self.unseen.reach(m.name, e.states):
            acc, ref = self.predictor.outcomes(m, e, (state,), trigger, ex.req_body)
            if acc and not ref and not any(_warns(o) for o in acc):
                fits.append(state)
        if not fits:
            return accepts, []
        out.append(self.unseen.finding(e.key, m.name, e.states, tuple(fits), f"{trigger} was accepted"))
        e.states = tuple(fits)
        return self.predictor.outcomes(m, e, e.states, trigger, ex.req_body)

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
        if not refuses and self.unseen and any(_warns(o) for o in accepts):
            accepts, refuses = self._unseen_clean(plan, e, ex, accepts, out)
        if not refuses:
            for o in accepts:
                t = o.transition
                if t is not None and (t.warn or t.warning_guards):
                    out.extend(self._warnings(o, m, e, ex))
        if len(accepts) == 1 and accepts[0].dest:
            if self.coverage is not None:
                self.coverage.took(m.name, accepts[0].state, step.trigger, accepts[0].dest)
            e.states = (accepts[0].dest,)
        else:
            e.states = tuple(dict.fromkeys(o.dest for o in accepts if o.dest))
        if plan.stops_timer:
            e.expired_by_clock = False
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
        )

    def _refused(
        self, plan: StepPlan, e: Entity, op: OperationSpec, ex: Exchange, refuses: list[Outcome]
    ) -> Finding | None:
        """A refusal the model predicts: counted; a finding when its code is not the one predicted."""
        codes = {o.code for o in refuses}
        actual = ex.error_code
        if self.coverage is not None and len(refuses) == 1:
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
        )

    def _illegal(
        self, plan: StepPlan, e: Entity, op: OperationSpec, ex: Exchange, refuses: list[Outcome]
    ) -> Finding:
        """The call was accepted where every outcome refuses it."""
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
        return Finding(
            rule,
            f"{op.id} was accepted but {e.key} is {e.state_text()}{why}: {step.trigger} must be "
            f"{want}; allowed here: {', '.join(allowed) if allowed else 'nothing (final)'}",
            instance_path="/response/status",
            spec_path=refuses[0].pointer,
            entity=e.key,
            expected=want,
            actual=ex.status,
            related=self.store.related(e),
        )

    def _warnings(self, o: Outcome, m: MachineSpec, e: Entity, ex: Exchange) -> list[Finding]:
        acc: list[Finding] = []
        t = o.transition
        if t is None:
            return acc
        if t.warn:
            rule = self.rules[t.warn]
            acc.append(
                Finding(
                    t.warn,
                    f"{e.key}: {rule.title.lower()}",
                    spec_path=o.pointer,
                    entity=e.key,
                    related=self.store.related(e),
                )
            )
        for use in t.warning_guards:
            if self.predictor.guard(m.guards[use.guard], e, ex.req_body) is False:
                assert use.warn is not None
                rule = self.rules[use.warn]
                unfinished = [c for c in e.children or () if not self.store.is_final(c)]
                open_children = [c.key for c in unfinished]
                if self.unseen and unfinished and all(self._may_have_finished(c) for c in unfinished):
                    acc.append(self.unseen.unproven(e.key, open_children, use.warn))
                    continue
                acc.append(
                    Finding(
                        use.warn,
                        f"{e.key}: {rule.title.lower()}"
                        + (f" ({', '.join(open_children[:5])})" if open_children else ""),
                        spec_path=o.pointer,
                        entity=e.key,
                        expected=m.guards[use.guard].description,
                        actual=open_children,
                        related=self.store.related(e),
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
        unseen = tuple(s for s in self.unseen.reach(m.name, e.states) if status_of[s] == actual)
        if unseen:
            adopted = self.unseen.finding(e.key, m.name, e.states, unseen, f"is answered {actual}")
            e.states, e.observed = unseen, actual
            return (adopted,)
        finding = Finding(
            "machine.status-mismatch",
            f"{e.key}: the response says {actual} but the model predicts {' or '.join(sorted(predicted))}",
            instance_path="/response/body" + step.status.key,
            entity=e.key,
            expected=sorted(predicted),
            actual=actual,
            related=self.store.related(e),
        )
        resync = m.states_with_status(actual)
        if resync:
            e.states = resync
        e.observed = actual
        return (finding,)


def _warns(o: Outcome) -> bool:
    """Whether taking ``o``'s transition warns whatever the guards say (its own ``warn``)."""
    return o.transition is not None and o.transition.warn is not None
