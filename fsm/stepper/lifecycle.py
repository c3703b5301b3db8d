"""Lifecycle steps: one ``steps`` entry of an operation moves (or creates) one entity.

Each step is compiled once at load into a :class:`StepPlan`: its machine, its creation, its references
as readers, its terms, and a :class:`Move` for every state whose outcomes nothing else decides.
:meth:`Lifecycle.step` judges the exchange against the prediction (D16): accepted where every outcome
refuses is an illegal transition, refused where every outcome accepts an unexpected refusal, refused
with another code than the one predicted a wrong code. Refused calls never change the model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FunctionType
from typing import Any

from fsm.exchange import Exchange
from fsm.spec.model import CreateSpec, MachineSpec, OperationSpec, Ref, Spec, StepSpec
from fsm.stepper.actors import Actors
from fsm.stepper.call import Call
from fsm.stepper.clock import Timers
from fsm.stepper.coverage import Coverage
from fsm.stepper.entities import Entity, EntityStore
from fsm.stepper.predict import Outcome, Predictor
from fsm.stepper.refs import MISSING, Reader, reader
from fsm.stepper.terms import Term, Terms
from fsm.stepper.unseen import Unseen
from fsm.violation import Finding

__all__ = [
    "GENERATED",
    "LIFECYCLE_NAMES",
    "Lifecycle",
    "Move",
    "StepFn",
    "StepPlan",
    "factory",
    "move",
    "step_lines",
    "written",
]


@dataclass(frozen=True, slots=True)
class Move:
    """The predicted outcomes of a trigger from some candidate states, and what an accepted call does.

    ``states``: where an accepted call leaves the entity; ``took``: the one outcome coverage counts (a
    single accepting outcome with a destination); ``warns``: the accepting outcomes whose transitions
    may warn (none when some outcome refuses); ``binds``: the roles the accepting transitions give the
    caller, in order.
    """

    accepts: list[Outcome]
    refuses: list[Outcome]
    states: tuple[str, ...]
    took: Outcome | None
    warns: tuple[Outcome, ...]
    binds: tuple[str, ...]
    status: str | None  # the status the API reports in the one state an accepted call leads to


def move(
    accepts: list[Outcome], refuses: list[Outcome], roles: Sequence[str], status_of: Mapping[str, str]
) -> Move:
    """Compile predicted outcomes into a :class:`Move`.

    ``roles``: the roles a caller may hold; ``status_of``: state -> the status the API reports in it.
    """
    first = accepts[0].dest if len(accepts) == 1 else None
    states = (first,) if first else tuple(dict.fromkeys(o.dest for o in accepts if o.dest))
    warns = (
        ()
        if refuses
        else tuple(
            o
            for o in accepts
            if o.transition is not None and (o.transition.warn or o.transition.warning_guards)
        )
    )
    binds = tuple(
        o.transition.actor for o in accepts if o.transition is not None and o.transition.actor in roles
    )
    status = status_of[states[0]] if len(states) == 1 else None
    return Move(accepts, refuses, states, accepts[0] if first else None, warns, binds, status)


@dataclass(frozen=True, slots=True)
class StepPlan:
    """One step of an operation with its references resolved against the spec."""

    step: StepSpec
    machine: MachineSpec
    creation: CreateSpec | None
    stops_timer: bool  # the trigger is a timed transition's own: taking it clears 'expired by the clock'
    status_of: Mapping[str, str]  # state -> the status the API reports in it
    statuses: frozenset[str]  # every status of the machine
    read_id: Reader | None
    read_code: Reader | None
    read_status: Reader | None
    record: tuple[Term, ...]
    expect: tuple[Term, ...]
    moves: Mapping[tuple[str, ...], Move]  # (state,) -> the move from it, where nothing else decides
    timed: bool  # the machine has timed transitions
    ticks_children: bool = False  # a guard reads the children's states: their clocks run first (D24)


StepFn = Callable[[Call, list[Finding]], bool]
"""One step of an operation, made for its plan: ``step(call, findings)`` (see :meth:`Lifecycle.step`)."""


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
        self.partial = bool(self.unseen)  # one party's view: calls it does not see may explain answers (D28)
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
        self._roles = spec.callers.roles

    def plan(self, step: StepSpec) -> StepPlan:
        """Compile one step (once, at load)."""
        m = self._machines[step.machine]
        creation = self._creation.get((m.name, step.trigger)) if step.creates else None
        if step.creates:
            assert creation is not None  # (the spec lint: a creating step names a creation)
        guards = {
            g.guard for t in m.transitions_for(step.trigger) for g in (*t.refusing_guards, *t.warning_guards)
        }
        moves: dict[tuple[str, ...], Move] = {}  # (keyed by an entity's states: one state each)
        for state in m.state_names:
            fixed = self.predictor.fixed(m, state, step.trigger)
            if fixed is not None:
                moves[(state,)] = move(*fixed, self._roles, self._status_of[m.name])
        return StepPlan(
            step,
            m,
            creation,
            step.trigger in self.timers.triggers[m.name],
            self._status_of[m.name],
            m.statuses,
            reader(step.ref.id) if step.ref.id is not None else None,
            reader(step.ref.code) if step.ref.code is not None else None,
            reader(step.status) if step.status is not None else None,
            self.terms.compile(step.record),
            self.terms.compile(step.expect),
            moves,
            bool(self.timers.timed[m.name]),
            any(m.guards[g].children is not None for g in guards),
        )

    def step(self, plan: StepPlan, call: Call, findings: list[Finding]) -> bool:
        """Step one entity (added to ``call.touched``, if any); whether the later steps go on.

        A call whose request breaks its schema (``call.broken``) is predicted refused, with any code (D26).
        """
        ex, params = call.ex, call.params
        read = plan.read_id  # (a reader read into a local first: a call through a plan's field is slower)
        id_ = read(ex, params, MISSING) if read is not None else MISSING
        read = plan.read_code
        code = read(ex, params, MISSING) if read is not None else MISSING
        if plan.creation is not None:
            return self._create(plan, plan.creation, call, id_, code, findings)
        m = plan.machine
        e = self.store.find(m.name, id_, code)
        if e is None:
            if id_ is MISSING and code is MISSING:
                return True
            e = self.store.adopt(m.name, id_, code, m.state_names)
        call.touched.append(e)
        if plan.timed:
            self.timers.tick(e, m.name, ex.time)
        if plan.ticks_children:
            self._tick_children(e, ex.time)
        return self._judge(plan, call, e, plan.moves.get(e.states), findings)

    def _judge(self, plan: StepPlan, call: Call, e: Entity, mv: Move | None, findings: list[Finding]) -> bool:
        """Judge the call on ``e`` against ``mv``, its move from ``e.states``; follow it if accepted.

        ``e`` is found, touched and its clock run; ``mv`` None: predicted now. Whether the later steps go on.
        """
        ex, params, m = call.ex, call.params, plan.machine
        if mv is None:  # (several candidate states, or a guard decides: predicted now)
            accepts, refuses = self.predictor.outcomes(m, e, e.states, plan.step.trigger, ex.req_body)
            mv = move(accepts, refuses, self._roles, plan.status_of)
        if self.partial and (not mv.accepts if ex.accepted else not mv.refuses):
            mv = self._unseen(plan, e, ex, mv, findings)
        if ex.accepted:
            if not mv.accepts:
                lazy = self._lazy(plan, e, call.op, ex, mv.refuses)
                if lazy is None:
                    reported = self._reported(plan, e, ex, params)
                    findings.append(self._illegal(plan, e, call.op, ex, mv.refuses, reported))
                    self.terms.record(plan.record, e, ex, params)  # the server took the terms: follow it
                    self.store.remember(e, call.seen)
                    return True
                findings.append(lazy[0])
                mv = move(lazy[1], lazy[2], self._roles, plan.status_of)
            self._accept(plan, e, mv, call, findings)
        elif call.broken:
            pass  # a request that breaks its schema is predicted refused, with any code (D26)
        elif not mv.refuses:
            findings.append(self._unexpected_refusal(m, e, call.op, ex, mv.accepts))
        elif not mv.accepts:
            wrong = self._refused(plan, e, call.op, ex, mv.refuses)
            if wrong is not None:
                findings.append(wrong)
        self.store.remember(e, call.seen)
        return ex.accepted

    def _unseen(self, plan: StepPlan, e: Entity, ex: Exchange, mv: Move, findings: list[Finding]) -> Move:
        """An answer the model did not predict that an unseen call of the other party explains (D28).

        Accepted where every outcome refuses, or refused (with the code the docs give) where every
        outcome accepts: when a state that unseen transitions reach predicts the answer, the entity
        is adopted there with an ``observe.unseen-call`` info; otherwise the move stands.
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
            return mv
        did = "was accepted" if ex.accepted else f"was refused with {ex.error_code!r}"
        findings.append(self.unseen.finding(e.key, m.name, e.states, tuple(fits), f"{trigger} {did}"))
        e.states = tuple(fits)
        accepts, refuses = self.predictor.outcomes(m, e, e.states, trigger, ex.req_body)
        return move(accepts, refuses, self._roles, plan.status_of)

    def _unseen_clean(
        self, plan: StepPlan, e: Entity, ex: Exchange, mv: Move, findings: list[Finding]
    ) -> Move:
        """An accepted call that warns where the model is, but not where an unseen call leads (D28)."""
        m, trigger = plan.machine, plan.step.trigger
        fits = []
        for state in self.unseen.reach(m.name, e.states):
            acc, ref = self.predictor.outcomes(m, e, (state,), trigger, ex.req_body)
            if acc and not ref and not any(_warns(o) for o in acc):
                fits.append(state)
        if not fits:
            return mv
        findings.append(self.unseen.finding(e.key, m.name, e.states, tuple(fits), f"{trigger} was accepted"))
        e.states = tuple(fits)
        accepts, refuses = self.predictor.outcomes(m, e, e.states, trigger, ex.req_body)
        return move(accepts, refuses, self._roles, plan.status_of)

    def _may_have_finished(self, c: Entity) -> bool:
        """Whether calls this view does not see could have brought ``c`` to a final state (D28)."""
        finals = self._machines[c.kind].finals
        return any(s in finals for s in self.unseen.reach(c.kind, c.states))

    def _create(
        self,
        plan: StepPlan,
        created: CreateSpec,
        call: Call,
        id_: object,
        code: object,
        findings: list[Finding],
    ) -> bool:
        ex = call.ex
        if not ex.accepted:
            return False
        if not isinstance(id_, str):
            return True
        step, m = plan.step, plan.machine
        self._reused(plan, call, id_, findings)
        e = self.store.adopt(m.name, id_, code, (created.dest,))
        touched = call.touched
        if self.coverage is not None:
            self.coverage.took(m.name, "[*]", step.trigger, created.dest)
        parent = touched[-1] if touched and touched[-1].kind == step.parent else None
        self.store.link(e, parent)
        touched.append(e)
        if call.token:
            self.actors.bind(e, created.actor, call.token)
        if plan.record:
            self.terms.record(plan.record, e, ex, call.params)
        read = plan.read_status
        if read is not None:
            self._status(plan, read(ex, call.params, MISSING), e, findings)
        self.store.remember(e, call.seen)
        return True

    def _reused(self, plan: StepPlan, call: Call, id_: str, findings: list[Finding]) -> None:
        """A creation that names an id already seen, live or finished: ``entity.reused-id``.

        The old entity leaves its parent's children.
        """
        step, m = plan.step, plan.machine
        old = self.store.entities.get((m.name, id_))
        if old is None and self.store.finished[m.name].get(id_) is not None:
            old = self.store.find(m.name, id_, None)
        if old is not None:
            findings.append(
                Finding(
                    "entity.reused-id",
                    f"{call.op.id} created {m.name} {id_}, an id already seen",
                    instance_path="/response/body" + (step.ref.id.key if step.ref.id else ""),
                    entity=old.key,
                    actual=id_,
                    related=self.store.related(old),
                )
            )
            self.store.unlink(old)

    def _accept(self, plan: StepPlan, e: Entity, mv: Move, call: Call, findings: list[Finding]) -> None:
        """Follow an accepted call the model allows: warnings, the new states, roles, terms, status."""
        ex = call.ex
        if self.partial and any(_warns(o) for o in mv.warns):
            mv = self._unseen_clean(plan, e, ex, mv, findings)
        if mv.warns:
            findings.extend(self._agreed_warnings(mv.accepts, plan.machine, e, ex))
        if mv.took is not None and self.coverage is not None:
            self.coverage.took(plan.machine.name, mv.took.state, plan.step.trigger, mv.states[0])
        e.states = mv.states
        if plan.stops_timer:
            e.expired_by_clock = ()
        token = call.token
        if token:
            for actor in mv.binds:
                self.actors.bind(e, actor, token)
        if plan.record:
            self.terms.record(plan.record, e, ex, call.params)
        read = plan.read_status
        if read is not None:
            actual = read(ex, call.params, MISSING)
            if mv.status is not None and actual == mv.status:
                e.observed = actual  # (as the model predicts: the common case, decided here)
            else:
                self._status(plan, actual, e, findings)
        if plan.expect:
            findings.extend(self.terms.expect(plan.expect, e, ex, call.params))

    def _tick_children(self, e: Entity, now: float | None) -> None:
        """Run the children's clocks before a guard reads them: expired by the clock is final (D4, D24)."""
        for child in e.children or ():  # (a resting child's due time is packed: read back first)
            self.timers.tick(self.store.unpacked(child), child.kind, now)  # (still its parent's: D17)

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
        if plan.read_status is None:
            return None
        actual = plan.read_status(ex, params, MISSING)
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
                unfinished = [c for c in e.children or () if not self.store.is_final(c)]
                open_children = [c.key for c in unfinished]
                if self.partial and unfinished and all(self._may_have_finished(c) for c in unfinished):
                    acc.append(self.unseen.unproven(e.key, open_children, use.warn))
                    continue
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

    def _status(self, plan: StepPlan, actual: object, e: Entity, findings: list[Finding]) -> None:
        """The status the answer reports (``actual``) must be one the model predicts, else a mismatch."""
        if not isinstance(actual, str) or actual not in plan.statuses:
            return  # not a status of this machine at all: the schema check reports it
        status_of = plan.status_of
        if len(e.states) == 1 and status_of[e.states[0]] == actual:
            e.observed = actual
            return
        predicted = {status_of[s] for s in e.states}
        if actual in predicted:
            e.states = tuple(s for s in e.states if status_of[s] == actual)
            e.observed = actual
            return
        unseen = tuple(s for s in self.unseen.reach(plan.machine.name, e.states) if status_of[s] == actual)
        if unseen:
            answered = f"is answered {actual}"
            findings.append(self.unseen.finding(e.key, plan.machine.name, e.states, unseen, answered))
            e.states, e.observed = unseen, actual
            return
        assert plan.step.status is not None
        state = e.state_text()
        findings.append(
            Finding(
                "machine.status-mismatch",
                f"{e.key}: the response says {actual} but the model holds {state}"
                + (f" (reported {' or '.join(sorted(predicted))})" if predicted != set(e.states) else "")
                + f"; the model follows the answer ({actual}) from here",
                instance_path="/response/body" + plan.step.status.key,
                entity=e.key,
                expected=sorted(predicted),
                actual=actual,
                related=self.store.related(e),
                state=state,
            )
        )
        resync = plan.machine.states_with_status(actual)
        if resync:
            e.states = resync
        e.observed = actual


def _warns(o: Outcome) -> bool:
    """Whether taking ``o``'s transition warns whatever the guards say (its own ``warn``)."""
    return o.transition is not None and o.transition.warn is not None


# ------------------------------------------------------------------ plans written as functions
_FACTORIES: dict[str, Callable[..., Any]] = {}
"""Compiled factories by their source (one a distinct shape of plan: shared by specs and runs)."""


def factory(source: str) -> Callable[..., Any]:
    """The function ``make`` that ``source`` defines (compiled once a process; the source deterministic)."""
    make = _FACTORIES.get(source)
    if make is None:
        scope: dict[str, Any] = {}
        exec(compile(source, "<fsm.stepper: a plan written as a function>", "exec"), scope)
        make = _FACTORIES[source] = scope["make"]
    return make


def _read(ref: Ref | None, reader_name: str) -> str:
    """An expression reading ``ref`` as its compiled reader does (``reader_name``), in place where it can.

    A path parameter, and one member of a body that is an object, are read in place; anything
    else through the reader.
    """
    if ref is None:
        return "MISSING"
    if ref.source == "path":
        return f"params.get({ref.key!r}, MISSING)"
    if len(ref.tokens) == 1 and ref.source in ("response", "request"):
        side = "resp" if ref.source == "response" else "req"
        return (
            f"(body.get({ref.tokens[0]!r}, MISSING) if type(body := ex.{side}_body) is dict"
            f" and ex.{side}_has_body else {reader_name}(ex, params, MISSING))"
        )
    return f"{reader_name}(ex, params, MISSING)"


def _record_source(record: tuple[Term, ...], p: str, pad: str) -> list[str]:
    """:meth:`Terms.record <fsm.stepper.terms.Terms.record>` of ``record`` written out, term by term.

    A timed attribute (its due time kept beside it) is recorded by ``Terms.record`` itself.
    """
    lines = [f"{pad}attrs = e.attrs"]
    for i, term in enumerate(record):
        value = _read(term.ref, f"{p}RECORD[{i}].read")
        if term.timed:
            lines += [f"{pad}record({p}RECORD[{i}:{i + 1}], e, ex, params)"]
            continue
        inner = pad + "    "
        if term.choice is not None:  # (kept only where that side has a JSON body: else its shape is unknown)
            side = {"request": "ex.req_has_body", "response": "ex.resp_has_body"}.get(term.ref.source)
            inner = inner if side else pad
            lines += [f"{pad}if {side}:"] if side else []
            lines += [
                f"{inner}then, other = {p}RECORD[{i}].choice",
                f"{inner}value = then if {value} is not MISSING else other",
            ]
        else:
            lines += [f"{pad}value = {value}", f"{pad}if value is not MISSING and value is not None:"]
        lines += [f"{inner}attrs[{term.name!r}] = value"]
    return lines


LIFECYCLE_NAMES = [
    "    store, timers, terms, actors = lc.store, lc.timers, lc.terms, lc.actors",
    "    find, adopt, judge, entities = store.find, store.adopt, lc._judge, store.entities",
    "    partial, coverage, record, expect = lc.partial, lc.coverage, terms.record, terms.expect",
    "    tick, bind, agreed, status = timers.tick, actors.bind, lc._agreed_warnings, lc._status",
    "    tick_children, reused, link = lc._tick_children, lc._reused, store.link",
]
"""What written steps read of the :class:`Lifecycle` (``lc``), named once in a factory."""


def written(plan: StepPlan) -> bool:
    """Whether :func:`step_lines` writes ``plan``'s step.

    Not for a timed transition's own trigger: no operation of the protocol takes one.
    """
    return not plan.stops_timer


def step_lines(plan: StepPlan, i: int, pad: str) -> tuple[list[str], list[str]]:
    """``plans[i]``'s step written out: the names its factory binds, and its body, at ``pad``.

    :meth:`Lifecycle.step` with the plan's choices made: the body reads ``call``, ``ex``, ``params``,
    ``token``, ``touched``, ``seen`` and ``findings`` and leaves in ``goes_on`` whether the later steps
    go on. Deterministic (the same plan, the same text); only literals of the spec's names and keys
    are written into it, with ``repr``. The judging of anything but an accepted call the plan's fixed
    move allows is :meth:`Lifecycle._judge`'s; what that case does is :meth:`Lifecycle._accept`'s
    and :meth:`EntityStore.remember <fsm.stepper.entities.EntityStore.remember>`'s.
    """
    step, m, p = plan.step, plan.machine, f"p{i}_"
    kind = repr(m.name)
    names = [
        f"    {p}plan = plans[{i}]",
        f"    {p}moves, {p}states, {p}machine = {p}plan.moves, {p}plan.machine.state_names, {p}plan.machine",
        f"    {p}read_id, {p}read_code = {p}plan.read_id, {p}plan.read_code",
        f"    {p}read_status = {p}plan.read_status",
        f"    {p}RECORD, {p}EXPECT = {p}plan.record, {p}plan.expect",
    ]
    _ = pad + "    "  # (one level in)
    __ = _ + "    "
    read_id, read_code = _read(step.ref.id, f"{p}read_id"), _read(step.ref.code, f"{p}read_code")
    if plan.creation is not None:  # (Lifecycle._create)
        made = plan.creation
        names += [f"    {p}finished = store.finished[{kind}]"]
        body = [
            f"{pad}if not ex.accepted:",
            f"{_}goes_on = False",
            f"{pad}else:",
            f"{_}id_ = {read_id}",
            f"{_}code = {read_code}",
            f"{_}if not isinstance(id_, str):",
            f"{__}goes_on = True",
            f"{_}else:",
            f"{__}if ({kind}, id_) in entities or {p}finished.get(id_) is not None:",
            f"{__}    reused({p}plan, call, id_, findings)",
            f"{__}e = adopt({kind}, id_, code, {(made.dest,)!r})",
            f"{__}if coverage is not None:",
            f"{__}    coverage.took({kind}, '[*]', {step.trigger!r}, {made.dest!r})",
            f"{__}if touched and touched[-1].kind == {step.parent!r}:",
            f"{__}    link(e, touched[-1])",
            f"{__}touched.append(e)",
            f"{__}if token:",
            f"{__}    bind(e, {made.actor!r}, token)",
        ]
        if plan.record:
            body += _record_source(plan.record, p, __)
        if plan.read_status is not None:
            body += [f"{__}status({p}plan, {_read(step.status, f'{p}read_status')}, e, findings)"]
        return names, [*body, *_remember(__)]
    refs = (("id_", step.ref.id), ("code", step.ref.code))
    named = " and ".join(f"{n} is MISSING" for n, ref in refs if ref is not None) or "True"
    body = [
        f"{pad}id_ = {read_id}",
        f"{pad}code = {read_code}",
        f"{pad}e = entities.get(({kind}, id_)) if type(id_) is str else None  # (live, filed by id)",
        f"{pad}if e is None or e.packed is not None:",
        f"{_}e = find({kind}, id_, code)",
        f"{pad}if e is None and {named}:",
        f"{_}goes_on = True",
        f"{pad}else:",
        f"{_}if e is None:",
        f"{__}e = adopt({kind}, id_, code, {p}states)",
        f"{_}touched.append(e)",
    ]
    if plan.timed:
        body += [f"{_}if e.attrs:  # (no attributes: no due time)", f"{__}tick(e, {kind}, ex.time)"]
    if plan.ticks_children:
        body += [f"{_}tick_children(e, ex.time)"]
    body += [
        f"{_}mv = {p}moves.get(e.states)",
        f"{_}if mv is None or partial or not ex.accepted or not mv.accepts:",
        f"{__}goes_on = judge({p}plan, call, e, mv, findings)",
        f"{_}else:",
        f"{__}if mv.warns:",
        f"{__}    findings.extend(agreed(mv.accepts, {p}machine, e, ex))",
        f"{__}if coverage is not None and mv.took is not None:",
        f"{__}    coverage.took({kind}, mv.took.state, {step.trigger!r}, mv.states[0])",
        f"{__}e.states = mv.states",
        f"{__}if token:",
        f"{__}    for actor in mv.binds:  # (Actors.bind: nothing to do where the family holds the role)",
        f"{__}        holder = e",
        f"{__}        while holder is not None:",
        f"{__}            if holder.callers is not None and actor in holder.callers:",
        f"{__}                break",
        f"{__}            holder = holder.parent",
        f"{__}        else:",
        f"{__}            bind(e, actor, token)",
    ]
    if plan.record:
        body += _record_source(plan.record, p, __)
    if plan.read_status is not None:
        body += [
            f"{__}actual = {_read(step.status, f'{p}read_status')}",
            f"{__}if mv.status is not None and actual == mv.status:",
            f"{__}    e.observed = actual",
            f"{__}else:",
            f"{__}    status({p}plan, actual, e, findings)",
        ]
    for n, term in enumerate(plan.expect):  # (a value the answer contradicts: Terms.expect says how)
        body += [
            f"{__}fixed = e.attrs.get({term.name!r}, MISSING)",
            f"{__}if fixed is not MISSING:",
            f"{__}    actual = {_read(term.ref, f'{p}EXPECT[{n}].read')}",
            f"{__}    if actual is not MISSING and actual is not None and actual != fixed:",
            f"{__}        findings.extend(expect({p}EXPECT[{n}:{n + 1}], e, ex, params))",
        ]
    return names, [*body, *_remember(__)]


def _remember(pad: str) -> list[str]:
    """:meth:`EntityStore.remember <fsm.stepper.entities.EntityStore.remember>`, written out.

    Of the call's own entity ``e``; then the later steps go on.
    """
    __ = pad
    return [
        f"{__}history = e.history",
        f"{__}history.append(seen)",
        f"{__}if len(history) > HISTORY:",
        f"{__}    del history[0]",
        f"{__}if e.last_own != ex.index:",
        f"{__}    e.seen += 1",
        f"{__}e.last_own = ex.index",
        f"{__}parent = e.parent",
        f"{__}if parent is not None:",
        f"{__}    parent.last_event = seen",
        f"{__}    parent.last_child = e.id",
        f"{__}e.last_event = seen",
        f"{__}e.last_child = None",
        f"{__}goes_on = True",
    ]


GENERATED = isinstance(step_lines, FunctionType)
"""Whether a stepper writes each operation's step as its own function (:func:`step_lines`) by default:
in pure Python (in the compiled build, where this module's functions are no Python functions, the
generic, compiled :meth:`Lifecycle.step` is the faster)."""
