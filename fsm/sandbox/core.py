"""The sandbox's state and answers: one model a context, answered through the library's prediction.

Each context has its own :class:`fsm.Validator` (its model) and its own lock. A call on a context is
answered in four moves: the request body is checked against its schema (``validation_failed`` with
the JSON pointers that failed); :meth:`fsm.Validator.predict` says whether the protocol accepts it
now (on the sandbox clock) or which code refuses it; an accepted call gets a body built from the
sandbox's data with the statuses the model gives; and the exchange is fed to the same validator, so
the model moves exactly as a validator of the recording moves. Faults (``faults.json``) bend these
answers on purpose. Nothing here knows an operation's lifecycle: that is the model's.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from importlib import resources
from typing import Any, TypeVar

import orjson

from fsm.errors import UsageError
from fsm.exchange import Exchange, bearer_token, format_timestamp, request_exchange
from fsm.matcher import Match, Router
from fsm.pipeline import Validator
from fsm.pointer import get
from fsm.schemacheck import SchemaChecker
from fsm.spec import Spec, load_spec
from fsm.spec.model import EntityRef
from fsm.stepper import Prediction

__all__ = ["FAULTS", "Answer", "Fault", "Sandbox", "SandboxClock"]

Answer = tuple[int, Any, dict[str, str]]
"""(HTTP status, JSON body or None, extra response headers)."""

_START_US = 1_781_006_400_000_000  # 2026-06-09T12:00:00Z in POSIX microseconds: the fixed clock's start
_STEP_US = 5_000  # the fixed clock moves 5 ms a request
_ALNUM = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def _load(name: str) -> Any:
    return orjson.loads(resources.files("fsm.sandbox").joinpath(name).read_bytes())


@dataclass(frozen=True)
class Fault:
    """A deliberate server bug: its name, the rule it must trigger first, what it does and where."""

    name: str
    rule: str
    kind: str
    when: dict[str, str]
    description: str


FAULTS: dict[str, Fault] = {
    f["name"]: Fault(f["name"], f["rule"], f["kind"], dict(f["when"]), f["description"])
    for f in _load("faults.json")["faults"]
}
"""Every fault the sandbox knows, by name (``fsm/sandbox/faults.json``)."""

_FINANCE = _load("finance.json")
_ANSWERS = _load("answers.json")
_TTL_US = round(float(_ANSWERS["voucher_ttl_seconds"]) * 1_000_000)
_INVALID = _ANSWERS["refusal_without_code"]  # (a generic code, D15)


def _iso(t: datetime) -> str:
    """``t`` as the API writes times: to the millisecond, with a ``Z``."""
    return format_timestamp((t - _EPOCH) // _MICROSECOND)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class SandboxClock:
    """The sandbox's time: fixed (starts at 2026-06-09T12:00Z, 5 ms a request) or real (wall clock).

    Either is moved forward by :meth:`advance` and set by :meth:`set`, never backwards (a recording
    whose times go back is a ``time.backwards`` finding). Kept in whole microseconds.
    """

    def __init__(self, real: bool = False) -> None:
        self.real = real
        self._lock = threading.Lock()
        self._offset = 0  # microseconds the real clock was moved forward
        self._fixed = _START_US
        self._last = _START_US if not real else time.time_ns() // 1000

    def stamp(self) -> tuple[int, str]:
        """The time of a request being answered now (never before the last one): microseconds, text."""
        with self._lock:
            if self.real:
                t = time.time_ns() // 1000 + self._offset
            else:
                self._fixed += _STEP_US
                t = self._fixed
            if t < self._last:
                t = self._last
            self._last = t
        return t, format_timestamp(t)

    def now(self) -> datetime:
        """The time of a request being answered now (never before the last one)."""
        return _EPOCH + timedelta(microseconds=self.stamp()[0])

    def peek(self) -> datetime:
        """The clock's time, without moving it."""
        with self._lock:
            return _EPOCH + timedelta(microseconds=self._last)

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward by ``seconds`` (>= 0)."""
        if not seconds >= 0:
            raise UsageError("the sandbox clock only moves forward: advance by a number of seconds >= 0")
        step = timedelta(seconds=seconds) // _MICROSECOND
        with self._lock:
            moved = _EPOCH + timedelta(microseconds=self._last + step)  # (past 9999: OverflowError, unmoved)
            self._offset += step
            self._fixed += step
            self._last += step
            return moved

    def set(self, when: datetime) -> datetime:
        """Set the clock to ``when`` (not before its current time)."""
        current = self.peek()
        if when < current:
            raise UsageError(f"the sandbox clock only moves forward: it is {_iso(current)} already")
        return self.advance((when - current).total_seconds())


@dataclass
class _Voucher:
    id: str
    code: str
    ctx: _Context
    session: str | None
    expires: str
    created: str
    updated: str
    terms: dict[str, Any] = field(default_factory=dict)  # type, expectedPayment, suppliedPayment, ...
    signed: bool = False


@dataclass
class _Session:
    id: str
    code: str
    ctx: _Context
    created: str
    updated: str
    vouchers: list[str] = field(default_factory=list)


@dataclass
class _Context:
    id: str
    code: str
    format: str
    payers: list[Any]
    owner: str  # the user who opened it
    created: str
    updated: str | None
    model: Validator
    lock: threading.Lock = field(default_factory=threading.Lock)
    sessions: dict[str, _Session] = field(default_factory=dict)
    vouchers: dict[str, _Voucher] = field(default_factory=dict)
    shown: dict[str, str] = field(default_factory=dict)  # voucher id -> status a fault shows instead


_Entity = TypeVar("_Entity", _Voucher, _Session, _Context)  # what a state-changing call stamps


@dataclass
class _Token:
    role: str  # "user" or "payee" (the spec's token_types)
    user: str | None  # a user's id
    code: str | None  # the context code a resource token is for


class Sandbox:
    """A stateful Bleepay server answering from the spec; the ASGI app (:func:`fsm.sandbox.app`) wraps it.

    Arguments:
        seed: fixes every id, code and token it draws (for the same calls in the same order).
        faults: names of faults (``FAULTS``) switched on from the start.
        record: a file to write the served traffic to (JSONL, or HAR for ``.har``), secrets
            fingerprinted (D29).
        real_clock: use the wall clock instead of the fixed one (for browsers, whose HARs have wall times).
        keep_secrets: record tokens, passwords and signatures as they were (D29: only on purpose).
        spec: the protocol (default: the shipped one).
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        faults: tuple[str, ...] | list[str] = (),
        record: str | None = None,
        real_clock: bool = False,
        keep_secrets: bool = False,
        spec: Spec | None = None,
    ) -> None:
        from fsm.sandbox.recorder import Recorder

        self.spec = spec if spec is not None else load_spec()
        self.prefix = self.spec.prefix
        self.router = Router.shared(self.spec)
        self._resource = re.compile(self.spec.resource_pattern)
        self.schemas = SchemaChecker.shared(self.spec)
        self.clock = SandboxClock(real_clock)
        self.rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._lock = threading.Lock()  # the maps below (a context's own state has its own lock)
        self.faults: set[str] = set()
        self.set_faults(on=faults)
        self.acted: list[dict[str, Any]] = []  # where each fault acted: {"fault", "exchange", "operation"}
        self.recorder = Recorder(record, keep_secrets=keep_secrets) if record else None
        self.exchanges = 0  # answered (and recorded) so far
        self.self_findings = 0  # findings the sandbox's own models reported on its answers
        self._status = {name: {s.name: s.status for s in m.states} for name, m in self.spec.machines.items()}
        self._handlers: dict[str, Callable[[_Call], Any]] = {
            op.id: getattr(self, "_op_" + op.id.replace("-", "_")) for op in self.spec.operations
        }
        self.reset()

    # ------------------------------------------------------------------ control
    def reset(self, context: str | None = None) -> bool:
        """Forget every context (and token), or one context with its sessions and vouchers.

        The clock and the random draws go on (ids are never reused in one recording).
        Returns False when ``context`` is unknown.
        """
        with self._lock:
            if context is None:
                self.contexts: dict[str, _Context] = {}
                self.by_code: dict[str, _Context] = {}
                self.owner_of: dict[str, _Context] = {}  # session or voucher id -> its context
                self.tokens: dict[str, _Token] = {}
                self.users: dict[str, str] = {}  # sign-in identity -> user id
                return True
            ctx = self.contexts.pop(context, None)
            if ctx is None:
                return False
            self.by_code.pop(ctx.code, None)
            for ident in [*ctx.sessions, *ctx.vouchers]:
                self.owner_of.pop(ident, None)
            return True

    def set_faults(self, on: tuple[str, ...] | list[str] = (), off: tuple[str, ...] | list[str] = ()) -> None:
        """Switch faults on and off by name."""
        unknown = [n for n in (*on, *off) if n not in FAULTS]
        if unknown:
            raise UsageError(f"unknown fault(s) {', '.join(unknown)}; known: {', '.join(FAULTS)}")
        self.faults |= set(on)
        self.faults -= set(off)

    def inspect(self, kind: str, ident: str) -> dict[str, Any] | None:
        """What the sandbox holds for ``kind`` (context, session, voucher) ``ident``, or None."""
        with self._lock:
            ctx = self.contexts.get(ident) if kind == "context" else self.owner_of.get(ident)
        if ctx is None:
            return None
        with ctx.lock:
            now = _iso(self.clock.peek())
            body: Any
            if kind == "context":
                body = self._context_body(ctx, now)
            elif kind == "session" and ident in ctx.sessions:
                body = self._session_body(ctx.sessions[ident], now)
            elif kind == "voucher" and ident in ctx.vouchers:
                body = self._voucher_body(ctx.vouchers[ident], now)
            else:
                return None
            states = ctx.model.state_of(f"{kind}:{ident}", at=now)
            return {"kind": kind, "id": ident, "context": ctx.id, "states": list(states or ()), "body": body}

    def close(self) -> None:
        """Close the recording."""
        if self.recorder is not None:
            self.recorder.close()

    # -------------------------------------------------------------- answering
    def handle(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], raw: bytes
    ) -> Answer:
        """Answer one API request; never raises for anything a client sends."""
        now_t, now = self.clock.stamp()
        body: Any = None
        bad_json = False
        if raw:
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError:
                bad_json = True
        rel = path[len(self.prefix) :] if path.startswith(self.prefix + "/") else None
        routed = self.router.route(method, rel) if rel is not None else None
        if not isinstance(routed, Match):
            return self._finish(
                None, now, method, path, query, headers, body, self._generic("not_found", "no such API call")
            )
        call = _Call(self, routed, method, path, query, headers, body, now, now_t)
        if bad_json:
            answer = self._generic("validation_failed", "the body is not JSON", errors=[{"pointer": ""}])
            return self._finish(call, now, method, path, query, headers, body, answer)
        problems = self._schema_problems(call)
        if problems:
            answer = self._generic("validation_failed", "the request breaks its schema", errors=problems)
            return self._finish(call, now, method, path, query, headers, body, answer)
        op = routed.operation
        if op.auth == "required":
            if call.token is None:
                answer = self._generic("unauthorized", f"{op.id} needs an Authorization: Bearer token")
                return self._finish(call, now, method, path, query, headers, body, answer)
            if call.caller is None:
                answer = self._generic("unauthorized", "this token was not issued by the sandbox")
                return self._finish(call, now, method, path, query, headers, body, answer)
        try:
            ctx = self._context_of(call)
        except _Refused as refused:
            return self._finish(call, now, method, path, query, headers, body, refused.answer)
        if ctx is None:  # a call on no context (sign-in, finance, lists)
            answer = self._answer(call)
            return self._finish(call, now, method, path, query, headers, body, answer)
        with ctx.lock:
            call.ctx = ctx
            answer = self._answer(call)
            return self._finish(call, now, method, path, query, headers, body, answer)

    def _answer(self, call: _Call) -> Answer:
        ctx = call.ctx
        op = call.op
        if ctx is not None:
            call.prediction = p = ctx.model.predict(
                call.method, call.path, call.headers, call.body, at=call.now
            )
            if p.accepted is False and not self._fault_accepts(call, p):
                return self._refusal(call, p)
        try:
            result = self._handlers[op.id](call)
        except _Refused as refused:
            return refused.answer
        status, out = (200, result) if not isinstance(result, tuple) else result
        if status == 200 and ctx is not None:
            out = self._fault_bends(call, out)
        return status, out, call.extra

    def _refusal(self, call: _Call, p: Prediction) -> Answer:
        code = p.code or _ANSWERS["refusal_without_code"]  # the docs give it no code: a generic one (D15)
        status = p.status or self.spec.generic_statuses.get(code, 400)
        fault = self._fault("wrong-code", call)
        if fault is not None and p.code is not None and p.rule is None:
            documented = sorted({c for codes in call.op.errors.values() for c in codes} - {p.code})
            other = next((c for c in documented if c != "unauthorized"), "validation_failed")
            self._acted(fault, call)
            code, status = other, self.spec.error_status(call.op, other) or 400
        return _error(status, code, p.reason or f"{call.op.id} is refused here")

    def _finish(
        self,
        call: _Call | None,
        now: str,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: Any,
        answer: Answer,
    ) -> Answer:
        """Feed the exchange to its context's model and record it (before the answer leaves)."""
        status, out, extra = answer
        request: dict[str, Any] = {"method": method, "path": path, "headers": headers}
        if query:
            request["query"] = query
        if body is not None:
            request["body"] = body
        response: dict[str, Any] = {"status": status, "headers": {"content-type": "application/json"}}
        if out is not None:
            response["body"] = out
        record = {"time": now, "request": request, "response": response}
        ctx = call.ctx if call is not None else None
        if ctx is not None:
            found = ctx.model.feed(record)
            if found:
                self.self_findings += len(found)
        with self._lock:
            index = self.exchanges
            self.exchanges += 1
            if call is not None:
                for name in call.acted:
                    self.acted.append({"fault": name, "exchange": index, "operation": call.op.id})
        if self.recorder is not None:
            self.recorder.write(record)
        if call is not None and call.acted:
            extra = {**extra, "x-sandbox-fault": ",".join(call.acted)}
        return status, out, extra

    def _schema_problems(self, call: _Call) -> list[dict[str, str]]:
        op = call.op
        if op.request is None:
            return []
        ex = request_exchange(call.method, call.path, call.headers, call.body, "<sandbox>")
        if not isinstance(ex, Exchange):
            return [{"pointer": "", "message": "the request cannot be read"}]
        out = []
        for f in self.schemas.check(ex, call.match, response=False):
            if f.rule_id != "schema.request":
                continue  # (style findings are advice, not refusals)
            for c in f.context or (f,):
                out.append({"pointer": c.instance_path.removeprefix("/request/body"), "message": c.message})
        return out

    # ----------------------------------------------------------------- lookup
    def _context_of(self, call: _Call) -> _Context | None:
        """The context a call is about (None: none), found as its steps name their entities (the spec).

        An entity named by a path parameter is looked up by id; a context named by a code in the
        request body, by its code. A call that makes its context, or names no entity, has none yet.
        """
        op, params = call.op, call.match.params
        if op.steps and op.steps[0].creates:
            return None
        scope = self.spec.callers.scope  # the machine whose entity holds a model (the context)
        names: list[tuple[str, EntityRef]] = [(n.machine, n.ref) for n in op.steps]
        names += [(n.machine, n.ref) for n in op.observes]
        for machine, ref in names:
            ident, code = ref.id, ref.code
            if ident is not None and ident.source == "path" and ident.key in params:
                with self._lock:
                    found = (self.contexts if machine == scope else self.owner_of).get(params[ident.key])
                if found is None:
                    raise _Refused(self._generic("not_found", f"{op.id}: no such {machine}"))
                return found
            if machine == scope and code is not None and code.source == "request":
                value = get(call.body, code.tokens)
                with self._lock:
                    found = self.by_code.get(value) if isinstance(value, str) else None
                if found is None:
                    raise _Refused(_error(*self._unknown_code(op), "no open context has this code"))
                return found
        for value in params.values():  # a call that steps nothing still names its entity in the path
            with self._lock:
                found = self.owner_of.get(value) or self.contexts.get(value)
            if found is None:
                raise _Refused(self._generic("not_found", f"{op.id}: no such entity"))
            return found
        return None

    def _generic(self, code: str, message: str, **extra: Any) -> Answer:
        """A refusal any operation may give (D15), with the status the spec gives ``code``."""
        return _error(self.spec.generic_statuses[code], code, message, **extra)

    def _found(self, table: dict[str, _Entity], ident: str, what: str) -> _Entity:
        """The ``what`` (voucher, session) of the caller's context with id ``ident``; else not_found."""
        found = table.get(ident)
        if found is None:
            raise _Refused(self._generic("not_found", f"no such {what}"))
        return found

    def _unknown_code(self, op: Any) -> tuple[int, str]:
        code = _ANSWERS["unknown_context_code"]
        for status, codes in op.errors.items():
            if code in codes:
                return status, code
        return self.spec.generic_statuses.get("not_found", 404), "not_found"

    def states(self, ctx: _Context, kind: str, ident: str, now: str) -> str:
        """The status the API shows for an entity now: the model's state, expiry taken."""
        states = ctx.model.state_of(f"{kind}:{ident}", at=now)
        state = states[0] if states else next(iter(self._status[kind]))
        return self._status[kind][state]

    # ------------------------------------------------------------------ draws
    def _hex(self, n: int) -> str:
        with self._rng_lock:
            return f"{self.rng.getrandbits(4 * n):0{n}x}"

    def _code(self, digits: bool = False) -> str:
        alphabet = "0123456789" if digits else _ALNUM
        with self._rng_lock:
            return "".join(self.rng.choices(alphabet, k=6))

    def _new_id(self, prefix: str) -> str:
        with self._lock:
            n = len(self.owner_of) + len(self.contexts) + self.exchanges
        return f"{prefix}{self._hex(10)}{n:x}"

    def _token(self, claims: dict[str, Any]) -> str:
        from fsm.generate import _jwt

        return _jwt({**claims, "jti": self._hex(16)})

    # ------------------------------------------------------------------- bodies
    def _context_body(self, ctx: _Context, now: str) -> dict[str, Any]:
        body = {
            "id": ctx.id,
            "code": ctx.code,
            "status": self.states(ctx, "context", ctx.id, now),
            "format": ctx.format,
            "payers": ctx.payers,
            "createdAt": ctx.created,
        }
        if ctx.updated is not None:
            body["updatedAt"] = ctx.updated
        return body

    def _session_body(self, s: _Session, now: str) -> dict[str, Any]:
        ctx = s.ctx
        return {
            "id": s.id,
            "code": s.code,
            "status": self.states(ctx, "session", s.id, now),
            "type": "SESSION_DEFAULT",
            "vouchers": [{"id": v, "status": self._voucher_status(ctx, v, now)} for v in s.vouchers],
            "createdAt": s.created,
            "updatedAt": s.updated,
        }

    def _voucher_status(self, ctx: _Context, ident: str, now: str) -> str:
        return ctx.shown.get(ident) or self.states(ctx, "voucher", ident, now)

    def _voucher_body(self, v: _Voucher, now: str) -> dict[str, Any]:
        body: dict[str, Any] = {"id": v.id, "code": v.code, "status": self._voucher_status(v.ctx, v.id, now)}
        body.update(v.terms)
        body["expiresAt"] = v.expires
        body["createdAt"] = v.created
        body["updatedAt"] = v.updated
        return body

    # ------------------------------------------------------------------- faults
    def _fault(self, kind: str, call: _Call) -> Fault | None:
        """The switched-on fault of ``kind`` whose ``when`` fits ``call`` (operation, code, rule, role)."""
        if not self.faults:
            return None
        for name in self.faults:
            f = FAULTS[name]
            if f.kind != kind:
                continue
            w = f.when
            p = call.prediction
            if "operation" in w and w["operation"] != call.op.id:
                continue
            if "code" in w and (p is None or p.code != w["code"]):
                continue
            if "rule" in w and (p is None or p.rule != w["rule"]):
                continue
            if "role" in w and (call.caller is None or self._role(call.caller) != w["role"]):
                continue
            return f
        return None

    def _role(self, token: _Token) -> str:
        return "payee" if token.role == self.spec.callers.resource_role else "user"

    def _acted(self, fault: Fault, call: _Call) -> None:
        call.acted.append(fault.name)

    def _fault_accepts(self, call: _Call, p: Prediction) -> bool:
        fault = self._fault("accept", call)
        if fault is None:
            return False
        self._acted(fault, call)
        return True

    def _fault_bends(self, call: _Call, out: Any) -> Any:
        """An accepted answer as the switched-on faults bend it."""
        fault = self._fault("wrong-status", call)
        if fault is not None and isinstance(out, dict) and "status" in out:
            out = {**out, "status": fault.when["status"]}
            self._acted(fault, call)
        fault = self._fault("drop-field", call)
        if fault is not None and isinstance(out, dict) and fault.when["field"] in out:
            out = {k: v for k, v in out.items() if k != fault.when["field"]}
            self._acted(fault, call)
        fault = self._fault("change-terms", call)
        if fault is not None and isinstance(out, dict) and isinstance(out.get("expectedPayment"), dict):
            pay = out["expectedPayment"]
            out = {**out, "expectedPayment": {**pay, "amount": str(Decimal(pay["amount"]) + 1)}}
            self._acted(fault, call)
        ctx = call.ctx
        fault = self._fault("couple-fates", call)
        if fault is not None and ctx is not None:  # closing the session: its redeemed vouchers look discarded
            session = ctx.sessions.get(call.match.params.get("sessionId", ""))
            for vid in session.vouchers if session else ():
                if self.states(ctx, "voucher", vid, call.now) == "REDEEMED":
                    ctx.shown[vid] = "DISCARDED"
        if ctx is not None and ctx.shown and isinstance(out, dict) and out.get("id") in ctx.shown:
            shown = next((FAULTS[n] for n in self.faults if FAULTS[n].kind == "couple-fates"), None)
            if shown is not None and call.op.observes:  # ... acting where a GET shows it
                self._acted(shown, call)
        return out

    # ------------------------------------------------------------- operations
    def _op_sign_in(self, call: _Call) -> Any:
        body = call.body
        kind, data = body["type"], body["data"]
        callers = self.spec.callers
        if self.spec.token_types.get(kind) == callers.resource_role:
            found = self._resource.match(data["resource"])
            code = found.group("code") if found else None
            resource = data["resource"]
            with self._lock:
                known = code is not None and code in self.by_code
            if not known:
                refused = _ANSWERS["unknown_resource_code"]
                status = self.spec.error_status(call.op, refused) or self.spec.generic_statuses[_INVALID]
                return status, _error(status, refused, "no open context has this code")[1]
            token = self._token({callers.type_claim: callers.resource_type, callers.resource_claim: resource})
            role = self.spec.token_types.get(kind, "payee")
            with self._lock:
                self.tokens[token] = _Token(role, None, code)
        else:
            who = f"{kind}:{data.get('installationId') or data.get('email')}"
            with self._lock:
                user = self.users.get(who)
            if user is None:
                user = self._new_id("usr_")
                with self._lock:
                    self.users[who] = user
            claims = (
                {"userId": user} if kind == "email-password" else {"userId": user, "deviceId": self._hex(16)}
            )
            token = self._token(claims)
            with self._lock:
                self.tokens[token] = _Token(self.spec.token_types.get(kind, "user"), user, None)
        return {"authorization": {"token": token}}

    def _op_sign_up(self, call: _Call) -> Any:
        user = self._new_id("usr_")
        return {"id": user, "role": "user", "createdAt": call.now, "updatedAt": call.now}

    def _op_get_challenge(self, call: _Call) -> Any:
        return {"challenge": self._hex(48)}

    def _op_context_open(self, call: _Call) -> Any:
        caller = call.caller
        assert caller is not None
        fmt = call.body["format"]
        code = self._code(digits=fmt == "numeric")
        with self._lock:
            while code in self.by_code:
                code = self._code(digits=fmt == "numeric")
        ctx = _Context(
            self._new_id("ctx_"),
            code,
            fmt,
            call.body["payers"],
            caller.user or "",
            call.now,
            None,
            Validator(self.spec),
        )
        call.ctx = ctx
        p = ctx.model.predict(call.method, call.path, call.headers, call.body, at=call.now)
        call.prediction = p
        if p.accepted is False and not self._fault_accepts(call, p):
            raise _Refused(self._refusal(call, p))
        with self._lock:
            self.contexts[ctx.id] = ctx
            self.by_code[ctx.code] = ctx
        body = self._context_body(ctx, call.now)
        return self._fault_bends(call, body)

    def _op_get_context(self, call: _Call) -> Any:
        ctx = self._own(call)
        return self._context_body(ctx, call.now)

    def _op_query_contexts(self, call: _Call) -> Any:
        caller = call.caller
        assert caller is not None
        with self._lock:
            mine = [c for c in self.contexts.values() if caller.user is not None and c.owner == caller.user]
            mine += [c for c in self.contexts.values() if caller.code is not None and c.code == caller.code]
        items = []
        for ctx in reversed(mine):  # newest first
            with ctx.lock:
                items.append(self._context_body(ctx, call.now))
        return _page(items, call.query)

    def _op_context_close(self, call: _Call) -> Any:
        return self._stamped(call, "context", self._own(call), self._context_body)

    def _stamped(
        self, call: _Call, kind: str, entity: _Entity, body_of: Callable[[_Entity, str], dict[str, Any]]
    ) -> dict[str, Any]:
        """The body of the ``kind`` entity a call changes: stamped now, showing the status it leads to."""
        entity.updated = call.now
        body = body_of(entity, call.now)
        body["status"] = self._status_after(call, kind)
        return body

    def _status_after(self, call: _Call, kind: str) -> str:
        """The status the API shows for the ``kind`` entity an accepted call leads to."""
        return self._status[kind][self._leads(call, kind)]

    def _leads(self, call: _Call, kind: str) -> str:
        """The state an accepted call leads to (a fault's accepted call: the transition's own dest)."""
        p = call.prediction
        if p is not None and p.accepted is not False and p.leads_to:
            return p.leads_to[0]
        m = self.spec.machines[kind]
        trigger = call.op.steps[-1].trigger
        for t in m.transitions:
            if t.trigger == trigger and t.dest != "=":
                return t.dest
        creation = m.creation(trigger)
        if creation is not None:
            return creation.dest
        ident = call.match.params.get(f"{kind}Id", "")
        states = call.ctx.model.state_of(f"{kind}:{ident}", at=call.now) if call.ctx is not None else None
        return states[0] if states else next(iter(self._status[kind]))

    def _reserve(self, call: _Call, session: _Session | None) -> Any:
        ctx = self._own(call)
        vid = f"vch_{self._code(digits=True)}{self._hex(4)}"
        with self._lock:
            while vid in self.owner_of:
                vid = f"vch_{self._code(digits=True)}{self._hex(4)}"
            self.owner_of[vid] = ctx
        expires = format_timestamp(call.now_t + _TTL_US)
        v = _Voucher(vid, vid[4:10], ctx, session.id if session else None, expires, call.now, call.now)
        ctx.vouchers[vid] = v
        if session is not None:
            session.vouchers.append(vid)
            session.updated = call.now
        status = self._status_after(call, "voucher")
        return {"id": v.id, "code": v.code, "status": status, "expiresAt": v.expires}

    def _op_reserve_voucher(self, call: _Call) -> Any:
        return self._reserve(call, None)

    def _voucher(self, call: _Call) -> _Voucher:
        return self._found(self._own(call).vouchers, call.match.params["voucherId"], "voucher")

    def _op_redeem_voucher(self, call: _Call) -> Any:
        v = self._voucher(call)
        body = call.body
        if "expectedPayment" in body:
            v.terms = {"type": "SIMPLE", "expectedPayment": body["expectedPayment"]}
        else:
            v.terms = {
                "type": "CUSTOM",
                **{k: body[k] for k in ("networks", "payments", "extras") if k in body},
            }
        v.updated = call.now
        status = self._status_after(call, "voucher")
        return {"id": v.id, "status": status, **v.terms}

    def _op_negotiate_voucher(self, call: _Call) -> Any:
        v = self._voucher(call)
        supplied = call.body["suppliedPayment"]
        expected = v.terms.get("expectedPayment") or supplied
        amount = convert(expected["amount"], expected["currency"], supplied["currency"])
        v.terms = {**v.terms, "suppliedPayment": {**supplied, "amount": amount}}
        v.updated = call.now
        status = self._status_after(call, "voucher")
        return {
            "id": v.id,
            "status": status,
            "expectedPayment": expected,
            "suppliedPayment": v.terms["suppliedPayment"],
        }

    def _op_resolve_voucher(self, call: _Call) -> Any:
        v = self._voucher(call)
        v.updated = call.now
        return {"id": v.id, "status": self._status_after(call, "voucher")}

    def _op_sign_voucher(self, call: _Call) -> Any:
        v = self._voucher(call)
        v.signed = True
        return self._stamped(call, "voucher", v, self._voucher_body)

    def _op_discard_voucher(self, call: _Call) -> Any:
        return self._stamped(call, "voucher", self._voucher(call), self._voucher_body)

    def _op_get_voucher(self, call: _Call) -> Any:
        return self._voucher_body(self._voucher(call), call.now)

    def _op_query_vouchers(self, call: _Call) -> Any:
        caller = call.caller
        assert caller is not None
        with self._lock:
            mine = [
                c
                for c in self.contexts.values()
                if (caller.user is not None and c.owner == caller.user)
                or (caller.code is not None and c.code == caller.code)
            ]
        items = []
        want = call.query.get("status")
        for ctx in mine:
            with ctx.lock:
                for v in ctx.vouchers.values():
                    body = self._voucher_body(v, call.now)
                    if want is None or body["status"] == want:
                        items.append(body)
        items.reverse()  # newest first
        return _page(items, call.query)

    def _op_interop_init(self, call: _Call) -> Any:
        self._voucher(call)
        return {"id": f"pay_{self._hex(12)}"}

    def _op_interop_info(self, call: _Call) -> Any:
        self._voucher(call)
        return {"status": "PENDING"}

    def _op_session_open(self, call: _Call) -> Any:
        ctx = self._own(call)
        sid = self._new_id("ses_")
        s = _Session(sid, self._code(), ctx, call.now, call.now)
        ctx.sessions[sid] = s
        with self._lock:
            self.owner_of[sid] = ctx
        return {
            "id": s.id,
            "code": s.code,
            "status": "OPEN",
            "type": "SESSION_DEFAULT",
            "createdAt": s.created,
        }

    def _session(self, call: _Call) -> _Session:
        return self._found(self._own(call).sessions, call.match.params["sessionId"], "session")

    def _op_session_join(self, call: _Call) -> Any:
        return self._stamped(call, "session", self._session(call), self._session_body)

    def _op_session_reserve_voucher(self, call: _Call) -> Any:
        return self._reserve(call, self._session(call))

    def _op_get_session(self, call: _Call) -> Any:
        return self._session_body(self._session(call), call.now)

    def _op_session_close(self, call: _Call) -> Any:
        return self._stamped(call, "session", self._session(call), self._session_body)

    def _op_get_networks(self, call: _Call) -> Any:
        items = [n for n in _FINANCE["networks"] if call.query.get("network") in (None, n["network"])]
        return _page(items, call.query)

    def _op_get_currencies(self, call: _Call) -> Any:
        q = call.query
        items = [
            {
                "symbol": s,
                "network": n,
                "address": a,
                "decimals": _FINANCE["decimals"],
                "bridgeable": True,
                "enabled": True,
            }
            for s, n, a in self.spec.tokens
            if q.get("symbol") in (None, s) and q.get("network") in (None, n)
        ]
        return _page(items, q)

    def _op_convert_amount(self, call: _Call) -> Any:
        b = call.body
        return convert(b["amount"], b["sourceCurrency"], b["targetCurrency"])

    def _own(self, call: _Call) -> _Context:
        assert call.ctx is not None
        return call.ctx

    def faults_state(self) -> list[dict[str, Any]]:
        """Every fault with its rule, whether it is on, and where it acted."""
        return [
            {
                "name": f.name,
                "rule": f.rule,
                "on": f.name in self.faults,
                "description": f.description,
                "acted": [a["exchange"] for a in self.acted if a["fault"] == f.name],
            }
            for f in FAULTS.values()
        ]


def convert(amount: str, source: str, target: str) -> str:
    """``amount`` of ``source`` in ``target`` at the fixed rates (``finance.json``), to the cent (>= 0.01)."""
    usd, default = _FINANCE["usd"], _FINANCE["default_usd"]
    try:
        value = Decimal(amount) * Decimal(usd.get(source, default)) / Decimal(usd.get(target, default))
    except InvalidOperation:
        value = Decimal("0.01")
    cents = max(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP), Decimal("0.01"))
    return f"{cents:f}"


def _page(items: list[Any], query: dict[str, str]) -> list[Any]:
    def number(name: str, default: int) -> int:
        value = query.get(name)
        return int(value) if isinstance(value, str) and value.isdigit() else default

    offset = number("offset", 0)
    return items[offset : offset + number("limit", 1000)]


def _error(status: int, code: str, message: str, **extra: Any) -> Answer:
    return status, {"code": code, "message": message, **extra}, {}


class _Refused(Exception):
    def __init__(self, answer: Answer) -> None:
        super().__init__(answer[1])
        self.answer = answer


class _Call:
    """One request being answered."""

    def __init__(
        self,
        sandbox: Sandbox,
        match: Match,
        method: str,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: Any,
        now: str,
        now_t: int,
    ) -> None:
        self.match = match
        self.op = match.operation
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.now = now
        self.now_t = now_t
        self.token = bearer_token(headers.get("authorization"))  # (as the validator reads it)
        self.caller: _Token | None = sandbox.tokens.get(self.token) if self.token else None
        self.ctx: _Context | None = None
        self.prediction: Prediction | None = None
        self.acted: list[str] = []
        self.extra: dict[str, str] = {}
