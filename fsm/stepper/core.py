"""The stepper: a thin driver that dispatches each operation's declarative keys to their checks.

As jsonschema dispatches a schema's keywords to one function each, the stepper runs, for an
operation, the check of every key the operation declares, in this order:

========================  ==============================================================
``auth: required``        :meth:`Stepper._auth` (``actor.unauthenticated``)
``steps``                 :class:`~fsm.stepper.lifecycle.Lifecycle` (machine steps, D16)
``observes``              :class:`~fsm.stepper.observe.Observations` (D17)
``actors``                :class:`~fsm.stepper.actors.Actors` (roles and scopes, D10)
``issues_token``          :meth:`~fsm.stepper.actors.Actors.issue` (learns a token's role)
``learns``                :meth:`~fsm.stepper.payments.Currencies.learn_from` (D14)
``payments``              :meth:`~fsm.stepper.payments.Currencies.check` (D14)
========================  ==============================================================

Each operation's plan (the checks it needs; its steps and observations compiled against the machines,
their references turned into readers) is made once, when the stepper is made, so the hot path does
not interpret the spec again for every exchange. A new check is a key in the data, a function here
(taking the :class:`~fsm.stepper.call.Call` and the findings list), and a row in :data:`CHECKS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import TypeVar

from fsm._shared import per_spec
from fsm.exchange import Exchange, parse_timestamp
from fsm.machines import Engine, engines_for
from fsm.matcher import Match
from fsm.schemacheck import SchemaChecker
from fsm.spec.model import MachineSpec, OperationSpec, Spec
from fsm.stepper.actors import Actors
from fsm.stepper.call import Call
from fsm.stepper.clock import CLOCK_SKEW, Clock, Timers
from fsm.stepper.coverage import Coverage
from fsm.stepper.entities import HISTORY, STEPPED_NAMES, Entity, EntityStore, Seen, stepped_lines
from fsm.stepper.lifecycle import (
    GENERATED,
    LIFECYCLE_NAMES,
    Lifecycle,
    StepFn,
    StepPlan,
    factory,
    step_lines,
    written,
)
from fsm.stepper.observe import Observations, ObservePlan
from fsm.stepper.payments import Currencies
from fsm.stepper.predict import Prediction, Predictor
from fsm.stepper.refs import MISSING
from fsm.stepper.terms import Terms
from fsm.stepper.unseen import Unseen
from fsm.violation import Finding, RelatedExchange

__all__ = ["CHECKS", "Check", "Stepper"]

_UNAUTHORIZED = "unauthorized"  # the generic code of a call without a token (D15)
_UNEXPECTED = "machine.unexpected-refusal"


Check = Callable[[Call, list[Finding]], object]
Run = Callable[[Exchange, Mapping[str, str], bool], list[Finding]]
"""An operation's whole step: ``run(ex, params, request_broken)`` is :meth:`Stepper.step`'s answer."""
P = TypeVar("P")

CHECKS: dict[str, tuple[Callable[[OperationSpec], bool], str]] = {
    "auth": (lambda op: op.auth == "required", "_auth"),
    "steps": (lambda op: bool(op.steps), "_lifecycle"),
    "observes": (lambda op: bool(op.observes), "_observe"),
    "actors": (lambda op: bool(op.actors), "_actors"),
    "issues_token": (lambda op: op.issues_token is not None, "_issue_token"),
    "learns": (lambda op: op.learns is not None, "_learn"),
    "payments": (lambda op: bool(op.payments), "_payments"),
}
"""Operation key -> (does the operation declare it, the Stepper method that checks it), in the order
the checks run."""


def _check_names(spec: Spec) -> dict[str, tuple[str, ...]]:
    """Per operation, the names of the Stepper methods that check it, in order."""
    return {
        op.id: tuple(check for declared, check in CHECKS.values() if declared(op)) for op in spec.operations
    }


class Stepper:
    """Holds the model of one run: entities, tokens, known currencies, the clock."""

    store_class: type[EntityStore] = EntityStore
    """The entity store's class (a subclass may record more, e.g. the order shards merge in)."""

    generated: bool = GENERATED
    """Whether each operation's step is one function written for it (:func:`_run_source`; by default in
    pure Python), or the generic :meth:`step` with its checks."""

    def __init__(
        self,
        spec: Spec,
        engines: Mapping[str, Engine],
        *,
        coverage: bool = False,
        clock_skew: float = CLOCK_SKEW,
        view: str = "all",
        max_live: int = 0,
        finished_in_ram: int = 0,
        retain_finished: float | None = None,
    ) -> None:
        """The model of one run; ``view``: whose calls the traffic holds (D28).

        ``max_live``, ``finished_in_ram``, ``retain_finished``: memory bounds (D27), see
        :class:`~fsm.stepper.entities.EntityStore`.
        """
        self.spec = spec
        self.unseen = Unseen(spec, view)  # one party's view (D28): what the other party's calls may change
        self.engines = engines
        self.coverage: Coverage | None = Coverage() if coverage else None
        self.store = self.store_class(
            spec.machines,
            engines,
            spec.callers.scope,
            max_live=max_live,
            finished_in_ram=finished_in_ram,
            retain_finished=retain_finished,
            words=per_spec("words", spec, lambda: _words(spec)),
        )
        self.timers = Timers(spec.machines, engines, clock_skew, self.coverage)
        shared = engines is engines_for(spec)  # the shared tables: so are the predictor and the plans
        if shared:  # (the predictor's memo is per state)
            self.predictor = per_spec("predictor", spec, lambda: Predictor(spec.machines, engines))
        else:
            self.predictor = Predictor(spec.machines, engines)
        self.terms = Terms(self.timers, spec.terms_by_value)
        self.actors = Actors(spec, self.store)
        self.currencies = Currencies(spec)
        self.lifecycle = Lifecycle(
            spec, self.store, self.predictor, self.timers, self.terms, self.actors, self.coverage, self.unseen
        )
        self.observations = Observations(spec, self.store, self.timers, self.terms, self.unseen)
        self._clock = Clock()
        self._touched: list[Entity] = []
        self._call: Call | None = None
        # Plans read only the spec and its shared tables: made once a spec (a sandbox makes a model a
        # context, and planning was most of the cost of making one).
        self._steps, self._observes = per_spec("plans", spec, self._plan) if shared else self._plan()
        names = per_spec("checks", spec, lambda: _check_names(spec))  # (planned once a spec)
        self._plans: dict[str, tuple[Check, ...]] = {
            op.id: tuple(self._bound(check, op) for check in names[op.id]) for op in spec.operations
        }
        self._schemas: SchemaChecker | None = None  # (likewise)
        self._refusals = spec.refusal_codes
        self._runs: dict[str, Run] = {}
        if self.generated:  # (written and compiled once a spec, made for this stepper)
            own = type(self.store).stepped is EntityStore.stepped  # (else the store's own is called)
            makers = (
                per_spec(f"runs {own}", spec, lambda: self._makers(names, own))
                if shared
                else self._makers(names, own)
            )
            self._runs = {op.id: self._run(op, makers[op.id]) for op in spec.operations}

    def _plan(
        self,
    ) -> tuple[dict[str, tuple[StepPlan, ...]], dict[str, tuple[ObservePlan, ...]]]:
        """Every operation's steps and observations compiled (they keep nothing of a run)."""
        ops = self.spec.operations
        steps = {op.id: tuple(self.lifecycle.plan(s) for s in op.steps) for op in ops}
        observes = {op.id: tuple(self.observations.plan(o) for o in op.observes) for op in ops}
        return steps, observes

    def _bound(self, check: str, op: OperationSpec) -> Check:
        """The check named ``check`` (a row of :data:`CHECKS`) for ``op``: bound to its plans, if it has any.

        ``_lifecycle`` and ``_observe`` run the operation's compiled steps and observations, one
        after the other: bound to them here, the stepper's own loop is not run for every exchange.
        """
        if check == "_lifecycle":
            steps = tuple(self._stepper(p) for p in self._steps[op.id])
            return steps[0] if len(steps) == 1 else _until_refused(steps)
        if check == "_observe":
            return _in_turn(self.observations.observe, self._observes[op.id])
        if check in _DIRECT:  # (the component's own check: no method of ours between)
            return _DIRECT[check](self)
        method: Check = getattr(self, check)
        return method

    def _stepper(self, plan: StepPlan) -> StepFn:
        """The generic step of ``plan`` (:meth:`Lifecycle.step <fsm.stepper.lifecycle.Lifecycle.step>`)."""
        return partial(self.lifecycle.step, plan)

    def _makers(self, names: Mapping[str, tuple[str, ...]], stepped: bool) -> dict[str, Callable[..., Run]]:
        """Per operation, the factory of its whole step written as one function (:func:`_run_source`).

        ``stepped``: the store's :meth:`~fsm.stepper.entities.EntityStore.stepped` written in too.
        """
        return {
            op.id: factory(_run_source(names[op.id], self._steps[op.id], self.actors.need[op.id], stepped))
            for op in self.spec.operations
        }

    def _run(self, op: OperationSpec, make: Callable[..., Run]) -> Run:
        """``op``'s whole step, made by ``make`` for this stepper: what :meth:`step` does."""
        checks, plans = self._plans[op.id], self._steps[op.id]
        steps = tuple(self._stepper(p) for p in plans)  # (those not written in are called)
        call = Call.__new__(Call)  # (filled anew for each exchange, as step's is)
        run: Run = make(self, self.lifecycle, checks, plans, steps, call, Seen, op, MISSING, HISTORY)
        return run

    # --------------------------------------------------------------- stepping
    def clock(self, ex: Exchange) -> Finding | None:
        """An exchange earlier than the one before it in the same input is a finding (D19)."""
        return self._clock.check(ex)

    def step(self, ex: Exchange, match: Match, *, request_broken: bool = False) -> list[Finding]:
        """Judge one routed exchange against the model; return its findings.

        ``request_broken``: the request breaks its schema, so the model predicts a refusal (D26).
        """
        run = self._runs.get(match.operation.id)
        if run is not None:  # (the operation's own function: the same, written for it)
            return run(ex, match.params, request_broken)
        findings: list[Finding] = []
        if ex.status == 0:
            return findings
        call = self._call  # (one, filled anew for each exchange: no call outlives its step)
        if call is None:
            call = self._call = Call(ex, match.operation, match.params, request_broken)
        else:
            call.fill(ex, match.operation, match.params, request_broken)
        for check in self._plans[call.op.id]:
            check(call, findings)
        if not call.accepted and findings and self._refusals:
            self._explained(call, findings)
        self._touched = call.touched
        self.store.stepped(call.touched, ex.index, ex.time)  # (final ones retired, the others rest: D27)
        return findings

    def _explained(self, call: Call, findings: list[Finding]) -> None:
        """Drop ``machine.unexpected-refusal`` where accepting would break a rule refused for (its code)."""
        if not any(f.rule_id == _UNEXPECTED for f in findings):
            return
        breaches = self._breaches(call.as_accepted())
        codes = {self._refusals[f.rule_id] for f in breaches}
        if call.ex.error_code in codes:
            findings[:] = [f for f in findings if f.rule_id != _UNEXPECTED]

    def _breaches(self, accepted: Call) -> list[Finding]:
        """The findings accepting this call draws that a server refuses it for (``refusal_codes``)."""
        found: list[Finding] = []
        if accepted.op.actors:
            self.actors.breaches(accepted, found)
        if accepted.op.payments:
            self.currencies.judge(accepted, found)
        return [f for f in found if f.rule_id in self._refusals]

    def _auth(self, call: Call, findings: list[Finding]) -> None:
        if call.token is None and call.ex.accepted:
            findings.append(
                Finding(
                    "actor.unauthenticated",
                    f"{call.op.id} needs an Authorization token but was accepted without one",
                    instance_path="/request/headers/authorization",
                )
            )

    def _lifecycle(self, call: Call, findings: list[Finding]) -> None:
        for plan in self._steps[call.op.id]:
            if not self.lifecycle.step(plan, call, findings):
                break

    def _observe(self, call: Call, findings: list[Finding]) -> None:
        for plan in self._observes[call.op.id]:
            self.observations.observe(plan, call, findings)

    def _actors(self, call: Call, findings: list[Finding]) -> None:
        """``actor.wrong-role`` and ``actor.wrong-context`` findings of an accepted call with a token."""
        self.actors.breaches(call, findings)

    def _issue_token(self, call: Call, findings: list[Finding]) -> None:
        self.actors.issue(call.op, call.ex, call.params)

    def _learn(self, call: Call, findings: list[Finding]) -> None:
        self.currencies.learn_from(call.op, call.ex, call.params)

    def _payments(self, call: Call, findings: list[Finding]) -> None:
        self.currencies.judge(call, findings)

    # ------------------------------------------------------------- the model
    @property
    def touched(self) -> tuple[Entity, ...]:
        """The entities the last exchange named, in order (an entity may come twice)."""
        return tuple(self._touched)

    @property
    def last_touched(self) -> tuple[str, ...]:
        """The keys of the entities the last exchange named, in order."""
        return tuple(dict.fromkeys(e.key for e in self._touched))

    def state_of(self, kind: str, ident: str, at: str | None = None) -> tuple[str, ...] | None:
        """The model's states for ``kind:ident``, or None if never met.

        ``at`` (ISO 8601): the states at that time, timed transitions (expiry, D2) taken, without
        changing the model.
        """
        states = self.store.state_of(kind, ident)
        if states is None or at is None or kind not in self.spec.machines:
            return states
        e = self.store.peek(kind, ident, MISSING)
        if e is None:
            return states
        try:
            ticked, _ = self.timers.ticked(e, kind, parse_timestamp(at))
        finally:
            if not self.store.is_filed(e):
                self.engines[kind].release(e)  # (a detached entity: no engine model left behind)
        return ticked

    def caller_role(self, token: str) -> str | None:
        """The role the run knows for ``token`` (D10), or None."""
        info = self.actors.info(token)
        return info.role if info is not None else None

    @staticmethod
    def related(e: Entity) -> tuple[RelatedExchange, ...]:
        """The entity's recent exchanges, oldest first."""
        return EntityStore.related(e)

    def outcomes(self) -> Iterator[tuple[str, str, str, bool, int]]:
        """(key, kind, state, final, exchanges that named it) for every entity met, live or retired."""
        return self.store.outcomes()

    def unfinished(self) -> Iterator[tuple[Entity, MachineSpec]]:
        """Entities not in a final state, in the order they were first met, with their machines.

        Their clocks run to the latest time of the log first: a voucher whose ``expiresAt`` lies
        before a later exchange is expired (D2), named again or not.
        """
        now = self._clock.latest
        for e in list(self.store.unfinished()):
            self.timers.tick(e, e.kind, now)
        for e in self.store.unfinished():
            yield e, self.spec.machines[e.kind]

    # ------------------------------------------------------------- prediction
    def predict(self, ex: Exchange, routed: Match, *, at: str | None = None) -> Prediction:
        """The model's forecast for a routed request, without changing the model.

        Arguments:
            ex: the request as an exchange (its response unknown); the bearer token of its headers
                tells the caller (D10).
            routed: its operation and path parameters, as the run's matcher routes it (with the
                run's API prefix and hosts, D25: :meth:`fsm.Validator.predict` routes it).
            at: the request's time (ISO 8601), for timed transitions (expiry, D2).

        The lifecycle steps of the operation are predicted with the same function the validator
        judges with (:meth:`Predictor.outcomes <fsm.stepper.predict.Predictor.outcomes>`).
        """
        op = routed.operation
        if op.auth == "required" and ex.token is None:
            return Prediction(
                op.id,
                False,
                status=self.spec.generic_statuses.get(_UNAUTHORIZED),
                code=_UNAUTHORIZED if _UNAUTHORIZED in self.spec.generic_errors else None,
                rule="actor.unauthenticated",
                reason=f"{op.id} needs an Authorization token",
            )
        broken = self._breaks_its_schema(ex, routed)
        if broken is not None:
            return Prediction(op.id, False, rule=broken.rule_id, reason=broken.message)
        now = parse_timestamp(at) if at else None
        leads: Prediction = Prediction(op.id, True, reason="no lifecycle step refuses it")
        touched: list[Entity] = []
        for plan in self._steps[op.id]:
            leads = self._predict_step(plan, op, ex, routed.params, now, touched)
            if leads.accepted is False:
                return leads
            if leads.accepted is None:
                break
        if self._refusals:  # accepting would break a rule a server refuses for: refused with its code
            asked = Call(ex, op, routed.params).as_accepted()
            asked.touched = touched
            for f in self._breaches(asked):
                code = self._refusals[f.rule_id]
                return Prediction(
                    op.id,
                    False,
                    f.entity or leads.entity,
                    status=self._status_for(op, code),
                    code=code,
                    rule=f.rule_id,
                    spec_path="operations.json#/refusal_codes",
                    reason=f"refused for {f.rule_id} (accepting it would break it): {f.message}",
                )
        return leads

    def _breaks_its_schema(self, ex: Exchange, routed: Match) -> Finding | None:
        """The first way the request's body or query breaks its schema: predicted refused (D26).

        A request asked about without a body or a query is not judged on them.
        """
        if self._schemas is None:
            self._schemas = SchemaChecker.shared(self.spec)
        given = {"schema.request": ex.req_has_body, "schema.query": bool(ex.query)}
        found = self._schemas.check(ex, routed, response=False)
        return next((f for f in found if given.get(f.rule_id, False)), None)

    def _predict_step(
        self,
        plan: StepPlan,
        op: OperationSpec,
        ex: Exchange,
        params: Mapping[str, str],
        now: float | None,
        touched: list[Entity],
    ) -> Prediction:
        m, step = plan.machine, plan.step
        if plan.creation is not None:
            return Prediction(op.id, True, f"{m.name}:(new)", (plan.creation.dest,), reason="creates it")
        id_ = plan.read_id(ex, params, MISSING) if plan.read_id is not None else MISSING
        code = plan.read_code(ex, params, MISSING) if plan.read_code is not None else MISSING
        if id_ is MISSING and code is MISSING:
            return Prediction(op.id, True, reason=f"names no {m.name}")
        live = self.store.peek(m.name, id_, code)
        if live is not None:
            touched.append(live)
        e = live if live is not None else Entity(m.name, None, None, m.state_names)
        try:
            states, _ = self.timers.ticked(e, m.name, now)
            accepts, refuses = self.predictor.outcomes(m, e, states, step.trigger, ex.req_body)
        finally:
            if not self.store.is_filed(e):
                self.engines[m.name].release(e)  # (a detached entity: no engine model left behind)
        key = e.key if live is not None else f"{m.name}:{id_ if isinstance(id_, str) else code}"
        if refuses and not accepts:
            codes = {o.code for o in refuses}
            only = codes.pop() if len(codes) == 1 else None
            rules = {o.rule for o in refuses}
            return Prediction(
                op.id,
                False,
                key,
                status=self._status_for(op, only),
                code=only,
                rule=rules.pop() if len(rules) == 1 else None,
                spec_path=refuses[0].pointer,
                reason=f"{step.trigger} is not allowed in {', '.join(states)}",
            )
        dests = tuple(dict.fromkeys(o.dest for o in accepts if o.dest))
        decided = not refuses
        return Prediction(
            op.id,
            True if decided else None,
            key,
            dests,
            spec_path=accepts[0].pointer,
            reason=f"{step.trigger} leads to {', '.join(dests)}"
            if decided
            else f"{key} may be in {', '.join(states)}: some outcomes refuse",
        )

    def _status_for(self, op: OperationSpec, code: str | None) -> int | None:
        """The HTTP status the docs give ``code`` for ``op`` (its own errors, then the generic ones)."""
        return None if code is None else self.spec.error_status(op, code)


_DIRECT: dict[str, Callable[[Stepper], Check]] = {
    "_actors": lambda stepper: stepper.actors.breaches,
    "_payments": lambda stepper: stepper.currencies.judge,
}
"""Checks a component makes itself, bound straight to it (the Stepper's method of the same name calls it)."""


def _in_turn(run: Callable[[P, Call, list[Finding]], None], plans: Sequence[P]) -> Check:
    """A check that runs ``run`` for each of ``plans`` in turn."""
    if len(plans) == 1:
        return partial(run, plans[0])  # (one plan, most operations: run without a loop of ours)

    def each(call: Call, findings: list[Finding]) -> None:
        for plan in plans:
            run(plan, call, findings)

    return each


def _until_refused(steps: Sequence[StepFn]) -> Check:
    """A check that runs ``steps`` in turn until one says the later steps do not go on."""

    def each(call: Call, findings: list[Finding]) -> None:
        for step in steps:
            if not step(call, findings):
                break

    return each


def _words(spec: Spec) -> list[str]:
    """What a resting entity's packed text is made of: calls, attribute and payment field names.

    The compression dictionary of :meth:`EntityStore.pack <fsm.stepper.entities.EntityStore.pack>`.
    """
    out = [f'0,false,"{op.method}","{spec.prefix}{op.path}",200,null]' for op in spec.operations]
    for op in spec.operations:
        out += (f'"{name}":' for step in op.steps for name in step.record)
        out += (f'"{name}":' for obs in op.observes for name in obs.record)
    fields = spec.payment_fields
    out += (f'"{name}":"' for name in (fields.network, fields.currency, fields.address))
    out += (
        f'"{network}","{fields.currency}":"{symbol}","{fields.address}":"{address}"'
        for symbol, network, address in spec.tokens
    )
    return list(dict.fromkeys(out))


def _breaches_lines(need: str | None) -> list[str]:
    """:meth:`Actors.breaches <fsm.stepper.actors.Actors.breaches>`, written out.

    For an operation for ``need``, the one role it is for (None: any caller).
    """
    role = [
        "            target = touched[-1] if touched else None",
        "            role = RESOURCE if resource else role_in(token, target)",
        f"            if role is not None and role != {need!r}:",
        f"                findings.append(wrong_role(OP, token, target, {need!r}, role))",
    ]
    return [
        "        if token is not None and accepted:",
        "            known = tokens.ram.get(hash(token), UNSEEN)  # (Actors.info: most often in RAM)",
        "            if known is UNSEEN:",
        "                known = info(token)",
        "            resource = known is not None and known.role == RESOURCE",
        *(role if need is not None else []),
        "            if resource and known.code is not None:",
        "                for e in touched:  # (Actors.check_scope: the first scope up from the touched)",
        "                    while e is not None and e.kind != SCOPE:",
        "                        e = e.parent",
        "                    if e is not None:",
        "                        if e.code is not None and e.code != known.code:  # (the finding made there)",
        "                            check_scope(touched, token, known.code, findings)",
        "                        break",
    ]


def _run_source(
    names: tuple[str, ...], plans: Sequence[StepPlan], need: str | None = None, written_stepped: bool = False
) -> str:
    """The source of a factory of an operation's whole step: :meth:`Stepper.step` written out.

    Its checks (``names``, as :data:`CHECKS` names them) are called in turn, not looped over; its
    lifecycle steps (``plans``) are written in (:func:`~fsm.stepper.lifecycle.step_lines`), each
    after the one before says the later steps go on; the call is filled in place (:meth:`Call.fill
    <fsm.stepper.call.Call.fill>`, :func:`seen <fsm.stepper.entities.seen>`, the caller's token as
    :attr:`Exchange.token <fsm.exchange.Exchange.token>` reads it) and ``auth`` judged in place;
    with ``written_stepped``, the store's bookkeeping after the step too (:func:`stepped_lines
    <fsm.stepper.entities.stepped_lines>`). Deterministic: only literals of the spec's names and
    keys are written into it.
    """
    lines = [
        "def make(st, lc, checks, plans, steps, call, Seen, OP, MISSING, HISTORY):",
        "    stepped, explained, refusals = st.store.stepped, st._explained, st._refusals",
        *(STEPPED_NAMES if written_stepped else []),
        "    new = tuple.__new__",
        "    from fsm.exchange import bearer_token as bearer",
        "    actors = st.actors",
        "    info, role_in, wrong_role = actors.info, actors.role_in, actors.wrong_role",
        "    check_scope, tokens, UNSEEN = actors.check_scope, actors.tokens, object()",
        "    RESOURCE, SCOPE = actors.callers.resource_role, st.store.scope",
        *(LIFECYCLE_NAMES if plans else []),
        *(f"    c{i} = checks[{i}]" for i in range(len(names))),
        *(f"    s{i} = steps[{i}]" for i in range(len(plans))),
    ]
    body = []
    for i, name in enumerate(names):
        if name == "_actors":  # (Actors.breaches)
            body += _breaches_lines(need)
        elif name == "_auth":
            body += ["        if token is None and accepted:", f"            c{i}(call, findings)"]
        elif name == "_lifecycle":
            for n, plan in enumerate(plans):
                pad = "        " + "    " * n
                body += [f"{pad[:-4]}if goes_on:"] if n else []
                if written(plan):
                    bound, steps = step_lines(plan, n, pad)
                    lines += bound
                    body += steps
                else:
                    body += [f"{pad}goes_on = s{n}(call, findings)"]
        else:
            body += [f"        c{i}(call, findings)"]
    stepped = ["        stepped(touched, ex.index, ex.time)"]
    if written_stepped:  # (the store's bookkeeping written in too)
        stepped = stepped_lines("        ")
    return "\n".join(
        [
            *lines,
            "",
            "    def run(ex, params, broken):",
            "        findings = []",
            "        if ex.status == 0:",
            "            return findings",
            "        call.ex = ex",
            "        call.broken = broken",
            "        call.op = OP",
            "        call.params = params",
            "        call.accepted = accepted = ex.accepted",
            "        call.seen = seen = new(Seen, (ex.index, ex.file, ex.position, ex.is_entry, ex.method,"
            " ex.path, ex.status, None if accepted else ex.error_code))",
            "        token = ex._token  # (Exchange.token written out: read once, on first use)",
            '        if token == "":',
            '            auth = ex.headers.get("authorization")',
            '            if auth and auth.startswith("Bearer "):  # (as bearer_token reads it)',
            "                token = auth[7:].strip() or None",
            "            else:",
            "                token = bearer(auth)",
            "            ex._token = token",
            "        call.token = token",
            "        call.touched = touched = []",
            *body,
            "        if not accepted and findings and refusals:",
            "            explained(call, findings)",
            "        st._touched = touched",
            *stepped,
            "        return findings",
            "",
            "    return run",
            "",
        ]
    )
