"""Stepper stage: each matched exchange steps the machines of the entities it names.

The model predicts every call's outcome (D16): accepted into a state, or refused
with a code. An entity's state is kept as a set of *candidate* states: one state
normally, several for an entity adopted mid-flow (D18) whose past the log does
not show. A prediction is judged only where every candidate (and every value of
a guard the log cannot decide) agrees, so adopted entities are never blamed for
their missing past. Refused calls never change the model.

Also here, because they need the entities: observations (D17, independence),
expiry (D2), actors (D10) and the token registry (D14).
"""

from __future__ import annotations

import base64
import itertools
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from fsm.exchange import Exchange, iso_seconds
from fsm.machines import Engine
from fsm.matcher import Match
from fsm.secrets import fingerprint, redact_value, shown, shown_path
from fsm.spec.model import (
    GuardSpec,
    MachineSpec,
    ObserveSpec,
    OperationSpec,
    Ref,
    Spec,
    StepSpec,
    TransitionSpec,
)
from fsm.violation import Finding, RelatedExchange, SourceLocation

__all__ = ["Coverage", "Entity", "Stepper", "history_location"]

_HISTORY = 5  # exchanges remembered per entity, for 'related' and timelines
_MISSING = object()

# A remembered exchange: (index, file, position, is_entry, method, path, status, error code)
_Hist = tuple[int, str, "int | None", bool, str, str, int, "str | None"]


def _summary(h: _Hist) -> str:
    tail = f" {shown(h[7])}" if h[7] and not 200 <= h[6] < 300 else ""
    return f"{shown(h[4])} {shown_path(h[5])} -> {h[6]}{tail}"


def history_location(h: _Hist) -> SourceLocation:
    """Where a remembered exchange was read: ``FILE:LINE`` or ``FILE:entries[N]``."""
    return SourceLocation(h[1], entry=h[2]) if h[3] else SourceLocation(h[1], line=h[2])


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


class Entity:
    """One context, session or voucher as the validator knows it."""

    __slots__ = (
        "attrs",
        "children",
        "code",
        "expired_by_clock",
        "history",
        "id",
        "kind",
        "last_event",
        "last_own",
        "model",
        "observed",
        "parent",
        "payee_token",
        "payer_token",
        "seen",
        "states",
    )

    def __init__(self, kind: str, id: str | None, code: str | None, states: tuple[str, ...]) -> None:
        self.kind = kind
        self.id = id
        self.code = code
        self.states = states
        self.attrs: dict[str, Any] = {}
        self.parent: Entity | None = None
        self.children: list[Entity] | None = None
        self.history: list[_Hist] = []
        self.seen = 0  # exchanges that named it, all of them (history keeps the last few)
        self.model: Any = None
        self.observed: str | None = None
        self.last_own = -1
        self.last_event: tuple[int, _Hist, str | None] | None = None
        self.expired_by_clock = False
        self.payer_token: int | None = None  # hash of the token: never the secret itself
        self.payee_token: int | None = None

    @property
    def key(self) -> str:
        """``kind:id`` (or ``kind:code=...`` when only the code is known)."""
        return f"{self.kind}:{self.id}" if self.id else f"{self.kind}:code={self.code}"

    def state_text(self) -> str:
        """The state, or ``one of A, B`` for an adopted entity."""
        return self.states[0] if len(self.states) == 1 else "one of " + ", ".join(self.states)


@dataclass(frozen=True, slots=True)
class _Outcome:
    accept: bool
    state: str
    dest: str | None = None
    code: str | None = None
    rule: str | None = None
    transition: TransitionSpec | None = None
    pointer: str = ""


@dataclass(slots=True)
class _Token:
    role: str  # "payee" (resource token) or "user"
    code: str | None  # the context code a resource token is scoped to


def _pointer_get(value: Any, tokens: tuple[str, ...]) -> Any:
    for t in tokens:
        if isinstance(value, dict):
            value = value.get(t, _MISSING)
        elif isinstance(value, list) and t.isdigit() and int(t) < len(value):
            value = value[int(t)]
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


def _parse_time(value: Any) -> float | None:
    return iso_seconds(value) if isinstance(value, str) else None


class Stepper:
    """Holds the model of one run: entities, tokens, known currencies, the clock."""

    def __init__(self, spec: Spec, engines: Mapping[str, Engine], *, coverage: bool = False) -> None:
        self.spec = spec
        self.engines = engines
        self.coverage: Coverage | None = Coverage() if coverage else None
        self._touched: list[Entity] = []
        self.entities: dict[tuple[str, str], Entity] = {}
        self.by_code: dict[tuple[str, str], Entity] = {}
        # Final entities are retired to these compact maps (key -> final state), so memory
        # grows with the live entities, not with the length of the log.
        self.finished: dict[str, dict[str, str]] = {name: {} for name in spec.machines}  # kind -> id -> state
        self.finished_codes: dict[str, dict[str, str]] = {name: {} for name in spec.machines}
        self.finished_seen: dict[str, dict[str, int]] = {name: {} for name in spec.machines}  # id -> count
        self.tokens: dict[int, _Token | None] = {}
        self.currencies: dict[tuple[str, str], str] = {}
        self.addresses: dict[tuple[str, str], str] = {}
        for symbol, network, address in spec.tokens:
            self._learn(symbol, network, address)
        self.last_time: float | None = None
        self._clocks: dict[str, float] = {}  # per input: the time of its last exchange
        self._resource = re.compile(spec.resource_pattern)
        self._by_state: dict[str, dict[tuple[str, str], tuple[TransitionSpec, ...]]] = {}
        self._timed: dict[str, tuple[TransitionSpec, ...]] = {}
        self._timed_triggers: dict[str, frozenset[str]] = {}
        self._time_attrs: set[str] = set()
        self._op_of: dict[str, dict[str, str]] = {}
        self._memo: dict[tuple[str, str, str], tuple[list[_Outcome], list[_Outcome]]] | None = (
            {} if all(getattr(e, "name", "") == "table" for e in engines.values()) else None
        )
        for name, m in spec.machines.items():
            table: dict[tuple[str, str], list[TransitionSpec]] = {}
            for t in m.transitions:
                for s in t.source:
                    table.setdefault((s, t.trigger), []).append(t)
            self._by_state[name] = {k: tuple(v) for k, v in table.items()}
            self._timed[name] = tuple(t for t in m.transitions if t.timed_attribute)
            self._timed_triggers[name] = frozenset(t.trigger for t in self._timed[name])
            self._time_attrs |= {t.timed_attribute for t in self._timed[name] if t.timed_attribute}
            self._op_of[name] = {t.trigger: t.operation for t in m.transitions if t.operation}
        # lookups the hot path makes for every exchange, answered from plain dicts
        self._finals = {name: m.finals for name, m in spec.machines.items()}
        self._status_of = {name: {s.name: s.status for s in m.states} for name, m in spec.machines.items()}
        self._creation = {
            (name, c.trigger): c for name, m in spec.machines.items() for c in reversed(m.creates)
        }
        self._due_keys = {
            name: tuple((t, f"{t.timed_attribute}#t") for t in timed) for name, timed in self._timed.items()
        }
        self._need = {
            op.id: ("payer" if "payer" in op.actors else "payee")
            if "payer" in op.actors or "payee" in op.actors
            else None
            for op in spec.operations
        }

    @property
    def last_touched(self) -> tuple[str, ...]:
        """The keys of the entities the last exchange named, in order."""
        return tuple(dict.fromkeys(e.key for e in self._touched))

    # ----------------------------------------------------------------- values
    @staticmethod
    def _get(ref: Ref, ex: Exchange, params: Mapping[str, str], item: Any = _MISSING) -> Any:
        src = ref.source
        if src == "response":
            if not ex.resp_has_body:
                return _MISSING
            value = ex.resp_body
        elif src == "path":
            return params.get(ref.key, _MISSING)
        elif src == "request":
            if not ex.req_has_body:
                return _MISSING
            value = ex.req_body
        elif item is _MISSING:
            return _MISSING
        else:
            value = item
        tokens = ref.tokens
        if len(tokens) == 1 and type(value) is dict:  # most pointers: one member of an object
            return value.get(tokens[0], _MISSING)
        return _pointer_get(value, tokens)

    @staticmethod
    def _has_body(ref: Ref, ex: Exchange) -> bool:
        if ref.source == "request":
            return ex.req_has_body
        if ref.source == "response":
            return ex.resp_has_body
        return True

    # ---------------------------------------------------------------- entities
    def _find(self, kind: str, id: Any, code: Any) -> Entity | None:
        if isinstance(id, str):
            found = self.entities.get((kind, id))
            if found is not None:
                return found
            state = self.finished[kind].pop(id, None)
            if state is not None:  # a retired entity named again: bring it back in its final state
                back = self._adopt(kind, id, code, (state,))
                back.seen = self.finished_seen[kind].pop(id, 0)
                return back
        if isinstance(code, str) and not isinstance(id, str):
            found = self.by_code.get((kind, code))
            if found is not None:
                return found
            state = self.finished_codes[kind].pop(code, None)
            if state is not None:
                return self._adopt(kind, None, code, (state,))
        return None

    def _settle(self, e: Entity) -> None:
        """Retire ``e`` once it is final: keep only its state, free everything else."""
        if len(e.states) != 1 or e.states[0] not in self._finals[e.kind]:
            return
        state = e.states[0]
        if e.id is not None and self.entities.get((e.kind, e.id)) is e:
            del self.entities[(e.kind, e.id)]
            self.finished[e.kind][e.id] = state
            self.finished_seen[e.kind][e.id] = e.seen
        if e.code is not None and self.by_code.get((e.kind, e.code)) is e:
            del self.by_code[(e.kind, e.code)]
            self.finished_codes[e.kind][e.code] = state
        parent = e.parent
        if parent is not None and parent.children is not None and e in parent.children:
            parent.children.remove(e)
        self.engines[e.kind].release(e)
        e.history = []
        e.attrs = {}

    def _adopt(self, kind: str, id: Any, code: Any, states: tuple[str, ...]) -> Entity:
        e = Entity(kind, id if isinstance(id, str) else None, code if isinstance(code, str) else None, states)
        if e.id:
            self.entities[(kind, e.id)] = e
        if e.code:
            self.by_code[(kind, e.code)] = e
        return e

    def _link(self, child: Entity, parent: Entity | None) -> None:
        if parent is None or child.parent is parent:
            return
        child.parent = parent
        if parent.children is None:
            parent.children = []
        parent.children.append(child)

    def _remember(self, e: Entity, ex: Exchange, hist: _Hist) -> None:
        e.history.append(hist)
        if len(e.history) > _HISTORY:
            del e.history[0]
        if e.last_own != ex.index:
            e.seen += 1
        e.last_own = ex.index
        parent = e.parent
        if parent is not None:
            parent.last_event = (ex.index, hist, e.id)
        e.last_event = (ex.index, hist, None)

    @staticmethod
    def related(e: Entity) -> tuple[RelatedExchange, ...]:
        """The entity's recent exchanges, oldest first."""
        return tuple(RelatedExchange(h[0], history_location(h), _summary(h)) for h in e.history)

    def _context_of(self, entity: Entity | None) -> Entity | None:
        while entity is not None and entity.kind != "context":
            entity = entity.parent
        return entity

    # ------------------------------------------------------------------ tokens
    def _token(self, token: str) -> _Token | None:
        key = hash(token)
        if key in self.tokens:
            return self.tokens[key]
        info = self._claims(token)
        self.tokens[key] = info
        return info

    def _claims(self, token: str) -> _Token | None:
        """Role from the token's unverified JWT claims (D10), or None (unknown)."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            payload = parts[1] + "=" * (-len(parts[1]) % 4)
            claims = orjson.loads(base64.urlsafe_b64decode(payload))
        except (ValueError, orjson.JSONDecodeError):
            return None
        if not isinstance(claims, dict):
            return None
        resource = claims.get("resource")
        if claims.get("type") == "resource" or isinstance(resource, str):
            m = self._resource.match(resource) if isinstance(resource, str) else None
            return _Token("payee", m.group("code") if m else None)
        if any(k in claims for k in ("userId", "deviceId")):
            return _Token("user", None)
        return None

    def _issue_token(self, op: OperationSpec, ex: Exchange, params: Mapping[str, str]) -> None:
        spec = op.issues_token
        if spec is None or not ex.accepted:
            return
        token = self._get(spec.token, ex, params)
        kind = self._get(spec.type, ex, params)
        if not isinstance(token, str) or not isinstance(kind, str):
            return
        role = self.spec.token_types.get(kind)
        if role is None:
            return
        code = None
        if spec.resource is not None:
            resource = self._get(spec.resource, ex, params)
            if isinstance(resource, str):
                m = self._resource.match(resource)
                code = m.group("code") if m else None
        self.tokens[hash(token)] = _Token(role, code)

    # -------------------------------------------------------------- currencies
    def _learn(self, symbol: str, network: str, address: str) -> None:
        self.currencies[(symbol, network)] = address.lower()
        self.addresses[(network, address.lower())] = symbol

    def _learn_from(self, op: OperationSpec, ex: Exchange, params: Mapping[str, str]) -> None:
        spec = op.learns
        if spec is None or not ex.accepted:
            return
        items = self._get(spec["tokens"], ex, params)
        if not isinstance(items, list):
            return
        for item in items:
            symbol = self._get(spec["symbol"], ex, params, item)
            network = self._get(spec["network"], ex, params, item)
            address = self._get(spec["address"], ex, params, item)
            if isinstance(symbol, str) and isinstance(network, str) and isinstance(address, str):
                self._learn(symbol, network, address)

    def _payments(self, op: OperationSpec, ex: Exchange, params: Mapping[str, str]) -> list[Finding]:
        acc: list[Finding] = []
        for ref in op.payments:
            pay = self._get(ref, ex, params)
            if not isinstance(pay, dict):
                continue
            network, symbol, address = pay.get("network"), pay.get("currency"), pay.get("currencyAddress")
            if not (isinstance(network, str) and isinstance(symbol, str) and isinstance(address, str)):
                continue
            where = f"/request/body{ref.key}"
            known = self.currencies.get((symbol, network))
            owner = self.addresses.get((network, address.lower()))
            if known is not None and known != address.lower():
                acc.append(
                    Finding(
                        "network.mismatch",
                        f"{symbol} on {network} has address {known}, not {address}",
                        instance_path=where + "/currencyAddress",
                        expected=known,
                        actual=address,
                    )
                )
            elif owner is not None and owner != symbol:
                acc.append(
                    Finding(
                        "network.mismatch",
                        f"{address} on {network} is {owner}, not {symbol}",
                        instance_path=where + "/currency",
                        expected=owner,
                        actual=symbol,
                    )
                )
            elif known is None and owner is None:
                acc.append(
                    Finding(
                        "network.unknown-currency",
                        f"{symbol} on {network} ({address}) is not in the token registry",
                        instance_path=where,
                        actual={"currency": symbol, "network": network, "currencyAddress": address},
                    )
                )
        return acc

    # ------------------------------------------------------------------ guards
    def _guard(self, g: GuardSpec, e: Entity, ex: Exchange) -> bool | None:
        if g.children is not None:
            finals = self._finals[g.children]
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
        value = _pointer_get(e.attrs, tuple(g.attribute.split("/")))
        if value is _MISSING or value is None:
            return None
        if g.equals is not None:
            return bool(value == g.equals)
        assert g.equals_request is not None
        want = _pointer_get(ex.req_body, tuple(g.equals_request.split("/")[1:]))
        if want is _MISSING:
            return None
        return bool(value == want)

    # ------------------------------------------------------------- prediction
    def _outcomes(
        self, m: MachineSpec, e: Entity, trigger: str, ex: Exchange
    ) -> tuple[list[_Outcome], list[_Outcome]]:
        """The predicted outcomes of ``trigger`` on ``e``, split: (accepting, refusing)."""
        memo = self._memo
        key = (m.name, e.states[0], trigger)
        if memo is not None and len(e.states) == 1:
            hit = memo.get(key)
            if hit is not None:
                return hit
        engine = self.engines[m.name]
        table = self._by_state[m.name]
        out: list[_Outcome] = []
        guarded = False
        for state in e.states:
            transitions = table.get((state, trigger), ())
            if not transitions:
                refusal = m.refusal(state, trigger)
                out.append(
                    _Outcome(
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
            known = {n: self._guard(m.guards[n], e, ex) for n in names}
            unknown = [n for n, v in known.items() if v is None]
            for combo in itertools.product((True, False), repeat=len(unknown)):
                values = {n: bool(v) for n, v in known.items() if v is not None}
                values.update(zip(unknown, combo, strict=True))
                dest = engine.dest(e, state, trigger, values)
                if dest is not None:
                    taken = next(t for t in transitions if all(values[g.guard] for g in t.refusing_guards))
                    out.append(
                        _Outcome(
                            True,
                            state,
                            dest=dest,
                            transition=taken,
                            pointer=f"{m.file}#{taken.pointer}",
                        )
                    )
                else:
                    code, pointer = None, ""
                    for t in transitions:
                        failed = next((g for g in t.refusing_guards if not values[g.guard]), None)
                        if failed is not None:
                            code, pointer = failed.refuse, f"{m.file}#{t.pointer}"
                            break
                    out.append(_Outcome(False, state, code=code, pointer=pointer))
        split = ([o for o in out if o.accept], [o for o in out if not o.accept])
        if memo is not None and len(e.states) == 1 and not guarded:
            memo[key] = split
        return split

    def _allowed(self, m: MachineSpec, e: Entity) -> list[str]:
        engine = self.engines[m.name]
        ops = self._op_of[m.name]
        found: dict[str, None] = {}
        for s in e.states:
            for trig in engine.triggers(s):
                if trig in ops:
                    found[ops[trig]] = None
        return list(found)

    def _tick(self, m: MachineSpec, e: Entity, ex: Exchange) -> None:
        """Fire timed transitions (expiry, D2) whose time lies before this exchange."""
        if ex.time is None or not e.attrs:
            return
        for t, key in self._due_keys[m.name]:
            due = e.attrs.get(key)
            if due is None or ex.time <= due:
                continue
            engine = self.engines[m.name]
            states = []
            for s in e.states:
                dest = engine.dest(e, s, t.trigger, {})
                states.append(dest if dest is not None else s)
                if dest is not None and dest != s:
                    e.expired_by_clock = True
            e.states = tuple(dict.fromkeys(states))

    def _record(
        self, rec: Mapping[str, Any], e: Entity, ex: Exchange, params: Mapping[str, str], item: Any = _MISSING
    ) -> None:
        for name, how in rec.items():
            if isinstance(how, tuple):
                ref, then, other = how
                if not self._has_body(ref, ex):
                    continue  # no JSON body on that side: the shape is unknown
                value = then if self._get(ref, ex, params, item) is not _MISSING else other
            else:
                value = self._get(how, ex, params, item)
                if value is _MISSING or value is None:
                    continue
            e.attrs[name] = value
            if name in self._time_attrs:
                t = _parse_time(value)
                if t is not None:
                    e.attrs[name + "#t"] = t

    def _expect(
        self,
        exp: Mapping[str, Ref],
        e: Entity,
        ex: Exchange,
        params: Mapping[str, str],
        item: Any = _MISSING,
        base: str = "/response/body",
    ) -> list[Finding]:
        acc: list[Finding] = []
        for name, ref in exp.items():
            if name not in e.attrs:
                continue
            actual = self._get(ref, ex, params, item)
            if actual is _MISSING or actual is None or actual == e.attrs[name]:
                continue
            acc.append(
                Finding(
                    "machine.terms-changed",
                    f"{e.key}: {name} is {_brief(redact_value(actual, name))} here but was fixed as "
                    f"{_brief(redact_value(e.attrs[name], name))}",  # (fixed by an earlier exchange)
                    instance_path=base + ref.key,
                    entity=e.key,
                    expected=e.attrs[name],
                    actual=actual,
                    related=self.related(e),
                )
            )
        return acc

    # ------------------------------------------------------------------- step
    def clock(self, ex: Exchange) -> Finding | None:
        """An exchange earlier than the one before it in the same input is a finding (D19).

        Each input file has its own clock: captures from several places interleave.
        """
        if ex.time is None:
            return None
        previous = self._clocks.get(ex.file)
        self._clocks[ex.file] = self.last_time = ex.time
        if previous is not None and ex.time < previous:
            return Finding(
                "time.backwards",
                f"timestamp {ex.time_text} is earlier than the previous exchange's in {ex.file}",
                instance_path="/time",
                actual=ex.time_text,
            )
        return None

    def step(self, ex: Exchange, match: Match) -> list[Finding]:
        """Judge one routed exchange against the model; return its findings."""
        findings: list[Finding] = []
        if ex.status == 0:
            return findings
        op = match.operation
        params = match.params
        hist: _Hist = (
            ex.index,
            ex.file,
            ex.position,
            ex.is_entry,
            ex.method,
            ex.path,
            ex.status,
            ex.error_code if not ex.accepted else None,
        )
        token = ex.token
        if op.auth == "required" and token is None and ex.accepted:
            findings.append(
                Finding(
                    "actor.unauthenticated",
                    f"{op.id} needs an Authorization token but was accepted without one",
                    instance_path="/request/headers/authorization",
                )
            )
        touched: list[Entity] = []
        previous: Entity | None = None
        for step in op.steps:
            entity, step_findings, ok = self._step(step, op, ex, params, previous, hist, token)
            if step_findings:
                findings.extend(step_findings)
            if entity is not None:
                touched.append(entity)
                previous = entity
            if not ok:
                break
        for obs in op.observes:
            findings.extend(self._observe(obs, ex, params, hist, touched))
        if token is not None and ex.accepted:
            findings.extend(self._actors(op, ex, params, token, touched))
        if ex.accepted:
            if op.issues_token is not None:
                self._issue_token(op, ex, params)
            if op.learns is not None:
                self._learn_from(op, ex, params)
            if op.payments:
                findings.extend(self._payments(op, ex, params))
        self._touched = touched
        for e in touched:
            self._settle(e)  # (only final entities are retired)
        return findings

    def _step(
        self,
        step: StepSpec,
        op: OperationSpec,
        ex: Exchange,
        params: Mapping[str, str],
        previous: Entity | None,
        hist: _Hist,
        token: str | None,
    ) -> tuple[Entity | None, list[Finding], bool]:
        m = self.spec.machines[step.machine]
        id_ = self._get(step.ref.id, ex, params) if step.ref.id else _MISSING
        code = self._get(step.ref.code, ex, params) if step.ref.code else _MISSING
        out: list[Finding] = []
        parent = previous if previous is not None and previous.kind == step.parent else None
        if step.creates:
            if not ex.accepted:
                return None, out, False
            created = self._creation.get((m.name, step.trigger))
            assert created is not None
            if not isinstance(id_, str):
                return None, out, True
            old = self.entities.get((m.name, id_))
            if old is None and id_ in self.finished[m.name]:
                old = self._find(m.name, id_, None)
            if old is not None:
                out.append(
                    Finding(
                        "entity.reused-id",
                        f"{op.id} created {m.name} {id_}, an id already seen",
                        instance_path="/response/body" + (step.ref.id.key if step.ref.id else ""),
                        entity=old.key,
                        actual=id_,
                        related=self.related(old),
                    )
                )
                if old.parent is not None and old.parent.children is not None:
                    old.parent.children.remove(old)
            e = self._adopt(m.name, id_, code, (created.dest,))
            if self.coverage is not None:
                self.coverage.took(m.name, "[*]", step.trigger, created.dest)
            self._link(e, parent)
            if created.actor in ("payer", "payee") and token:
                self._bind(e, created.actor, token)
            self._record(step.record, e, ex, params)
            out.extend(self._status(step, m, e, ex, params))
            self._remember(e, ex, hist)
            return e, out, True
        found = self._find(m.name, id_, code)
        if found is None:
            if id_ is _MISSING and code is _MISSING:
                return None, out, True
            found = self._adopt(m.name, id_, code, m.state_names)
        e = found
        self._tick(m, e, ex)
        accepts, refuses = self._outcomes(m, e, step.trigger, ex)
        if ex.accepted:
            if not accepts:
                out.append(self._illegal(m, e, step, op, ex, refuses))
                self._record(step.record, e, ex, params)  # the server took the terms: follow it
                self._remember(e, ex, hist)
                return e, out, True
            if not refuses:
                for o in accepts:
                    t = o.transition
                    if t is not None and (t.warn or t.warning_guards):
                        out.extend(self._warnings(o, m, e, ex))
            if self.coverage is not None and len(accepts) == 1 and accepts[0].dest:
                self.coverage.took(m.name, accepts[0].state, step.trigger, accepts[0].dest)
            if len(accepts) == 1 and accepts[0].dest:
                e.states = (accepts[0].dest,)
            else:
                e.states = tuple(dict.fromkeys(o.dest for o in accepts if o.dest))
            if step.trigger in self._timed_triggers[m.name]:
                e.expired_by_clock = False
            if token:
                for o in accepts:
                    if o.transition is not None and o.transition.actor in ("payer", "payee"):
                        self._bind(e, o.transition.actor, token)
            self._record(step.record, e, ex, params)
            out.extend(self._status(step, m, e, ex, params))
            out.extend(self._expect(step.expect, e, ex, params))
        elif not refuses:
            allowed = ", ".join(self._allowed(m, e))
            out.append(
                Finding(
                    "machine.unexpected-refusal",
                    f"{op.id} was refused ({ex.status} {ex.error_code or 'no code'}) but {e.key} is "
                    f"{e.state_text()}, where it is legal",
                    instance_path="/response/status",
                    spec_path=accepts[0].pointer,
                    entity=e.key,
                    expected=f"accepted (allowed here: {allowed})",
                    actual=ex.status,
                    related=self.related(e),
                )
            )
        elif not accepts:
            codes = {o.code for o in refuses}
            actual = ex.error_code
            if self.coverage is not None and len(refuses) == 1:
                self.coverage.refused(m.name, refuses[0].state, step.trigger, actual or str(ex.status))
            if len(codes) == 1 and None not in codes and actual is not None and actual not in codes:
                want = codes.pop()
                out.append(
                    Finding(
                        "machine.wrong-refusal-code",
                        f"{op.id} on {e.key} ({e.state_text()}) was refused with {actual!r}; "
                        f"expected {want!r}",
                        instance_path="/response/body/code",
                        spec_path=refuses[0].pointer,
                        entity=e.key,
                        expected=want,
                        actual=actual,
                        related=self.related(e),
                    )
                )
        self._remember(e, ex, hist)
        return e, out, ex.accepted

    def _illegal(
        self,
        m: MachineSpec,
        e: Entity,
        step: StepSpec,
        op: OperationSpec,
        ex: Exchange,
        refuses: list[_Outcome],
    ) -> Finding:
        rules = {o.rule for o in refuses}
        only = rules.pop() if len(rules) == 1 else None
        rule = only if only is not None else "machine.illegal-transition"
        codes = sorted({o.code for o in refuses if o.code})
        want = (
            f"refused with {' or '.join(codes)}"
            if codes and all(o.code for o in refuses)
            else "refused (any 4xx)"
        )
        allowed = self._allowed(m, e)
        why = ""
        if e.expired_by_clock:
            why = f" (expired at {e.attrs.get('expiresAt')})"
        return Finding(
            rule,
            f"{op.id} was accepted but {e.key} is {e.state_text()}{why}: {step.trigger} must be "
            f"{want}; allowed here: {', '.join(allowed) if allowed else 'nothing (final)'}",
            instance_path="/response/status",
            spec_path=refuses[0].pointer,
            entity=e.key,
            expected=want,
            actual=ex.status,
            related=self.related(e),
        )

    def _warnings(self, o: _Outcome, m: MachineSpec, e: Entity, ex: Exchange) -> list[Finding]:
        acc: list[Finding] = []
        t = o.transition
        if t is None:
            return acc
        if t.warn:
            rule = self.spec.rules[t.warn]
            acc.append(
                Finding(
                    t.warn,
                    f"{e.key}: {rule.title.lower()}",
                    spec_path=o.pointer,
                    entity=e.key,
                    related=self.related(e),
                )
            )
        for use in t.warning_guards:
            if self._guard(m.guards[use.guard], e, ex) is False:
                assert use.warn is not None
                rule = self.spec.rules[use.warn]
                open_children = [
                    c.key for c in e.children or () if not all(s in self._finals[c.kind] for s in c.states)
                ]
                acc.append(
                    Finding(
                        use.warn,
                        f"{e.key}: {rule.title.lower()}"
                        + (f" ({', '.join(open_children[:5])})" if open_children else ""),
                        spec_path=o.pointer,
                        entity=e.key,
                        expected=m.guards[use.guard].description,
                        actual=open_children,
                        related=self.related(e),
                    )
                )
        return acc

    def _status(
        self, step: StepSpec, m: MachineSpec, e: Entity, ex: Exchange, params: Mapping[str, str]
    ) -> tuple[Finding, ...]:
        if step.status is None:
            return ()
        actual = self._get(step.status, ex, params)
        if not isinstance(actual, str) or actual not in m.statuses:
            return ()  # not a status of this machine at all: the schema check reports it
        status_of = self._status_of[m.name]
        if len(e.states) == 1 and status_of[e.states[0]] == actual:
            e.observed = actual
            return ()
        predicted = {status_of[s] for s in e.states}
        if actual in predicted:
            e.states = tuple(s for s in e.states if status_of[s] == actual)
            e.observed = actual
            return ()
        finding = Finding(
            "machine.status-mismatch",
            f"{e.key}: the response says {actual} but the model predicts {' or '.join(sorted(predicted))}",
            instance_path="/response/body" + step.status.key,
            entity=e.key,
            expected=sorted(predicted),
            actual=actual,
            related=self.related(e),
        )
        resync = m.states_with_status(actual)
        if resync:
            e.states = resync
        e.observed = actual
        return (finding,)

    # ------------------------------------------------------------ observations
    def _observe(
        self, obs: ObserveSpec, ex: Exchange, params: Mapping[str, str], hist: _Hist, touched: list[Entity]
    ) -> list[Finding]:
        acc: list[Finding] = []
        if not ex.accepted:
            return acc
        m = self.spec.machines[obs.machine]
        if obs.each is not None:
            items = self._get(obs.each, ex, params)
            if not isinstance(items, list):
                return acc
            pairs: Iterator[tuple[int | None, Any]] = enumerate(items)
        else:
            pairs = iter([(None, _MISSING)])
        for n, item in pairs:
            id_ = self._get(obs.ref.id, ex, params, item) if obs.ref.id else _MISSING
            code = self._get(obs.ref.code, ex, params, item) if obs.ref.code else _MISSING
            status = self._get(obs.status, ex, params, item)
            if not isinstance(status, str) or (id_ is _MISSING and code is _MISSING):
                continue
            base = "/response/body" + (f"/{n}" if n is not None else "")
            e = self._find(m.name, id_, code)
            if e is None:
                e = self._adopt(m.name, id_, code, m.states_with_status(status) or m.state_names)
                self._record(obs.record, e, ex, params, item)
                e.observed = status
                self._remember(e, ex, hist)
                touched.append(e)
                continue
            if e.code is None and isinstance(code, str):
                e.code = code
                self.by_code[(m.name, code)] = e
            self._tick(m, e, ex)
            acc.extend(self._compare(m, e, status, ex, base + obs.status.key, hist))
            self._record(obs.record, e, ex, params, item)
            acc.extend(self._expect(obs.expect, e, ex, params, item, base))
            touched.append(e)
        return acc

    def _compare(
        self, m: MachineSpec, e: Entity, status: str, ex: Exchange, where: str, hist: _Hist
    ) -> list[Finding]:
        acc: list[Finding] = []
        status_of = self._status_of[m.name]
        predicted = {status_of[s] for s in e.states}
        if status in predicted:
            e.states = tuple(s for s in e.states if status_of[s] == status)
        elif e.expired_by_clock and status in self._pre_expiry(m):
            pass  # the server may not report expiry yet (D17: expiry allowed for)
        else:
            blame = e.parent.last_event if e.parent is not None else None
            independent = (
                blame is not None
                and blame[0] > e.last_own
                and blame[2] != e.id
                and e.observed is not None
                and e.observed != status
            )
            if independent and blame is not None:
                b_hist = blame[1]
                b_index, loc, b_summary = b_hist[0], history_location(b_hist), _summary(b_hist)
                rule = "observe.independence"
                message = (
                    f"{e.key} was {e.observed} and is now {status} with no call of its own; the last "
                    f"call in its {e.parent.kind if e.parent else 'parent'} was {b_summary}"
                )
                related = (*self.related(e), RelatedExchange(b_index, loc, b_summary))
            else:
                rule = "observe.status-mismatch"
                message = (
                    f"{e.key} is observed {status} but the model predicts {' or '.join(sorted(predicted))}"
                )
                related = self.related(e)
            acc.append(
                Finding(
                    rule,
                    message,
                    instance_path=where,
                    entity=e.key,
                    expected=sorted(predicted),
                    actual=status,
                    related=related,
                )
            )
            e.states = m.states_with_status(status) or e.states
        e.observed = status
        self._remember(e, ex, hist)
        return acc

    def _pre_expiry(self, m: MachineSpec) -> set[str]:
        return {m.status_of(s) for t in self._timed[m.name] for s in t.source}

    # ------------------------------------------------------------------ actors
    def _bind(self, e: Entity, actor: str, token: str) -> None:
        """Remember ``token`` as the entity's payer or payee, unless it already has a role.

        Nothing to do when the entity or one of its parents already records that role:
        roles are looked up along the parent chain.
        """
        holder: Entity | None = e
        while holder is not None:
            if (holder.payer_token if actor == "payer" else holder.payee_token) is not None:
                return
            holder = holder.parent
        info = self._token(token)
        if info is not None and info.role == "payee" and actor == "payer":
            return
        if self._role_in(token, e) is not None:
            return
        if actor == "payer" and e.payer_token is None:
            e.payer_token = hash(token)
        elif actor == "payee" and e.payee_token is None:
            e.payee_token = hash(token)

    def _role_in(self, token: str, e: Entity | None) -> str | None:
        """The role ``token`` holds on ``e`` or its parents: payee wins over payer."""
        payer = False
        key = hash(token)
        while e is not None:
            if e.payee_token == key:
                return "payee"
            if e.payer_token == key:
                payer = True
            e = e.parent
        return "payer" if payer else None

    def _actors(
        self, op: OperationSpec, ex: Exchange, params: Mapping[str, str], token: str, touched: list[Entity]
    ) -> list[Finding]:
        acc: list[Finding] = []
        if not ex.accepted:
            return acc
        info = self._token(token)
        target = touched[-1] if touched else None
        need = self._need[op.id]
        if need is not None:
            role = "payee" if info is not None and info.role == "payee" else None
            role = role or self._role_in(token, target)
            if role is not None and role != need:
                acc.append(
                    Finding(
                        "actor.wrong-role",
                        f"{op.id} is for the {need} only but was accepted from the {role}'s token "
                        f"{fingerprint(token)}",
                        instance_path="/request/headers/authorization",
                        entity=target.key if target else None,
                        expected=need,
                        actual=role,
                    )
                )
        if info is not None and info.role == "payee" and info.code is not None:
            ctx = None
            for e in touched:
                ctx = self._context_of(e)
                if ctx is not None:
                    break
            if ctx is not None and ctx.code is not None and ctx.code != info.code:
                acc.append(
                    Finding(
                        "actor.wrong-context",
                        f"resource token {fingerprint(token)} is scoped to context code {info.code} "
                        "but was used on "
                        f"{(target or ctx).key} of context {ctx.code}",
                        instance_path="/request/headers/authorization",
                        entity=(target or ctx).key,
                        expected=info.code,
                        actual=ctx.code,
                    )
                )
        return acc

    # ------------------------------------------------------------------ finish
    def outcomes(self) -> Iterator[tuple[str, str, str, bool, int]]:
        """(key, kind, state, final, exchanges that named it) for every entity met, live or retired."""
        for (kind, _), e in self.entities.items():
            finals = self.spec.machines[kind].finals
            yield e.key, kind, e.state_text(), all(s in finals for s in e.states), e.seen
        for kind, done in self.finished.items():
            seen = self.finished_seen[kind]
            for id_, state in done.items():
                yield f"{kind}:{id_}", kind, state, True, seen.get(id_, 0)

    def unfinished(self) -> Iterator[tuple[Entity, MachineSpec]]:
        """Entities not in a final state, in the order they were first met."""
        for (kind, _), e in self.entities.items():
            m = self.spec.machines[kind]
            if not all(s in m.finals for s in e.states):
                yield e, m
        for (kind, _), e in self.by_code.items():
            if e.id is None:
                m = self.spec.machines[kind]
                if not all(s in m.finals for s in e.states):
                    yield e, m


def _brief(value: Any) -> str:
    text = orjson.dumps(value).decode() if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
