"""The seed's promise, proved of the model: a session groups vouchers but does not couple their fates.

A Hypothesis state machine plays payer and payee against a server that follows
the spec (answers come from the machines: accepted, or refused with the
documented code). Every exchange is fed to the validator; its model is then
checked at every step:

- non-interference: each voucher's state equals the state reached by replaying
  only the exchanges addressed to that voucher (plus the sign-ins, context,
  session and join it depends on) through a fresh validator;
- closing a session or a context never changes a voucher;
- final states stay final; a refused call changes nothing; status never goes backwards;
- the validator finds nothing to complain about (the server is correct).

A deliberately coupled model (a stepper that, when a session closes, discards the
session's open vouchers) is run through the same properties, which must catch it:
all of them together, and non-interference on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from fsm.exchange import Exchange
from fsm.generate import TrafficBuilder, _iso
from fsm.machines import TransitionTable
from fsm.matcher import Match
from fsm.pipeline import Validator
from fsm.spec import load_spec
from fsm.stepper import Stepper
from fsm.violation import Finding, Severity

SPEC = load_spec()
TABLES = {name: TransitionTable.from_spec(m) for name, m in SPEC.machines.items()}
ORDER = {"RESERVED": 0, "REDEEMED": 1, "RESOLVED": 2, "DISCARDED": 2, "EXPIRED": 2}
EXAMPLES = max(10, settings.default.max_examples // 2)
# Advice the model follows or breaks on purpose: closing a session early is allowed (D4).
ADVICE = {"session.close-with-open-vouchers"}


class SteadyBuilder(TrafficBuilder):
    """Every exchange happens exactly one second after the previous one, so the server can judge
    expiry at the very time the exchange will carry."""

    def _tick(self, seconds: float | None = None) -> str:
        return super()._tick(1.0)


class Server:
    """Ground truth that follows the spec: the answer to a call comes from the machine tables."""

    def __init__(self, builder: TrafficBuilder) -> None:
        self.b = builder
        self.state: dict[str, str] = {}
        self.kind_of: dict[str, str] = {}

    def expire(self) -> None:
        """Vouchers whose expiresAt lies before the next exchange's time move to EXPIRED (D2)."""
        at = self.b.now + timedelta(seconds=1)
        for key, v in self.vouchers.items():
            if v.expires is not None and at > v.expires:
                dest = TABLES["voucher"].dest(None, self.state[key], "expire", {})
                if dest is not None:
                    self.state[key] = dest

    vouchers: dict[str, Any]

    def answer(
        self, key: str, trigger: str, guards: dict[str, bool] | None = None
    ) -> tuple[bool, str | None]:
        """(accepted, refusal code) for ``trigger`` on ``key``, moving the truth when accepted."""
        kind = key.split(":", 1)[0]
        m = SPEC.machines[kind]
        state = self.state[key]
        dest = TABLES[kind].dest(None, state, trigger, guards or dict.fromkeys(m.guards, True))
        if dest is not None:
            self.state[key] = dest
            return True, None
        refusal = m.refusal(state, trigger)
        for t in m.transitions_for(trigger):
            for g in t.refusing_guards:
                if guards is not None and not guards.get(g.guard, True):
                    return False, g.refuse
        return False, (refusal.code if refusal and refusal.code else "validation_failed")


class ProtocolModel(RuleBasedStateMachine):
    """Payer and payee calls, a server that follows the spec, and the validator's model under test."""

    sessions = Bundle("sessions")
    vouchers = Bundle("vouchers")
    # the direct checks besides non-interference (a variant switches them off to test that alone)
    closes_checked = True
    truth_checked = True

    @staticmethod
    def make_validator() -> Validator:
        """The model under test (the run and every replay use the same one).

        The server here expires vouchers at the log's own clock, to the second: no skew (D24).
        """
        return Validator(clock_skew=0)

    def __init__(self) -> None:
        super().__init__()
        self.b = SteadyBuilder(seed=0)
        self.server = Server(self.b)
        self.server.vouchers = {}
        self.validator = self.make_validator()
        self.log: list[tuple[dict[str, Any], tuple[str, ...]]] = []  # (record, entity keys it addresses)
        self.previous: dict[str, str] = {}
        self.n = 0

    # ---------------------------------------------------------------- feeding
    def feed(self, record: dict[str, Any], *keys: str) -> None:
        self.log.append((record, keys))
        problems = [
            v
            for v in self.validator.feed(record)
            if v.severity is not Severity.INFO and v.rule_id not in ADVICE
        ]
        assert problems == [], [f"{v.rule_id}: {v.message}" for v in problems]

    def model(self, key: str, at: str | None = None) -> str:
        states = self.validator.state_of(key, at=at)
        assert states is not None and len(states) == 1, (key, states)
        return states[0]

    def next_time(self) -> str:
        """The time the next exchange will carry (SteadyBuilder: one second on)."""
        return _iso(self.b.now + timedelta(seconds=1))

    # ------------------------------------------------------------------ rules
    @initialize(target=sessions)
    def open_first_session(self) -> dict[str, Any]:
        return self._open()

    @rule(target=sessions)
    def open_session(self) -> dict[str, Any]:
        return self._open()

    def _open(self) -> dict[str, Any]:
        self.n += 1
        payer, rec = self.b.sign_in_payer()
        self.feed(rec)
        ctx, rec = self.b.context_open(payer)
        cx = f"context:{ctx['id']}"
        self.server.state[cx] = "OPEN"
        self.feed(rec, cx)
        payee, rec = self.b.sign_in_payee(ctx["code"])
        self.feed(rec)
        s, rec = self.b.session_open(payee, ctx["code"])
        sx = f"session:{s.id}"
        self.server.state[sx] = "WAITING_FOR_PAYER"
        self.feed(rec, cx, sx)
        return {"s": s, "ctx": ctx, "cx": cx, "sx": sx, "payer": payer, "payee": payee, "vouchers": []}

    @rule(session=sessions)
    def join(self, session: dict[str, Any]) -> None:
        ok, code = self.server.answer(session["sx"], "join")
        s = session["s"]
        rec = (
            self.b.session_join(session["payer"], s)
            if ok
            else self.b.refused(
                "POST", f"/vouchers/sessions/{s.id}/session-join", {}, code or "", session["payer"]
            )
        )
        self.feed(rec, session["sx"])

    @rule(target=vouchers, session=sessions)
    def reserve(self, session: dict[str, Any]) -> Any:
        s = session["s"]
        if len(session["vouchers"]) >= 8:  # 1-8 vouchers per session
            return multiple()
        if session["sx"] in self.server.state and self.server.state[session["sx"]] == "WAITING_FOR_PAYER":
            self.join(session)  # keep flows realistic: the payer joins before the payee reserves (D3)
        ok, code = self.server.answer(session["sx"], "reserve")
        if not ok:
            self.feed(
                self.b.refused(
                    "POST", f"/vouchers/sessions/{s.id}/reserve-voucher", {}, code or "", session["payee"]
                ),
                session["sx"],
            )
            return multiple()
        v, rec = self.b.session_reserve(session["payee"], s)
        vx = f"voucher:{v.id}"
        self.server.state[vx] = "RESERVED"
        self.server.vouchers[vx] = v
        session["vouchers"].append(v)
        self.feed(rec, session["sx"], vx)
        return {"v": v, "vx": vx, "session": session}

    def _call(
        self,
        voucher: dict[str, Any],
        trigger: str,
        make: Callable[[], dict[str, Any]],
        path: str,
        body: Any,
        token: str,
        guards: dict[str, bool] | None = None,
    ) -> None:
        self.server.expire()
        at = self.next_time()  # (both snapshots at the call's time: expiry is no change a call made)
        before = self.snapshot(at)
        ok, code = self.server.answer(voucher["vx"], trigger, guards)
        if ok:
            self.feed(make(), voucher["vx"])
        else:
            self.feed(self.b.refused("POST", path, body, code or "", token), voucher["vx"])
            after = self.snapshot(at)
            changed = {k for k in after if after[k] != before.get(k)}
            # the one change a refused call may coincide with: expiry inferred at its time (D2)
            assert all(after[k] == "EXPIRED" == self.server.state[k] for k in changed), (
                "a refused call changed the model",
                {k: (before.get(k), after[k]) for k in changed},
            )

    @rule(voucher=vouchers, simple=st.booleans())
    def redeem(self, voucher: dict[str, Any], simple: bool) -> None:
        v, se = voucher["v"], voucher["session"]
        make = (
            (lambda: self.b.redeem_simple(se["payee"], v))
            if simple
            else (lambda: self.b.redeem_custom(se["payee"], v))
        )
        self._call(
            voucher,
            "redeem",
            make,
            f"/vouchers/{v.id}/redeem-voucher",
            {"expectedPayment": self.b.payment()},
            se["payee"],
        )

    @rule(voucher=vouchers)
    def negotiate(self, voucher: dict[str, Any]) -> None:
        v, se = voucher["v"], voucher["session"]
        guards = {"is_simple": v.type == "SIMPLE", "same_network": True}
        self._call(
            voucher,
            "negotiate",
            lambda: self.b.negotiate(se["payer"], v),
            f"/vouchers/{v.id}/negotiate-voucher",
            {"suppliedPayment": self.b.payment("USDC")},
            se["payer"],
            guards,
        )

    @rule(voucher=vouchers)
    def resolve(self, voucher: dict[str, Any]) -> None:
        v, se = voucher["v"], voucher["session"]
        self._call(
            voucher,
            "resolve",
            lambda: self.b.resolve(se["payer"], v),
            f"/vouchers/{v.id}/resolve-voucher",
            {"receipts": [{"paymentId": "pay_1"}]},
            se["payer"],
        )

    @rule(voucher=vouchers)
    def discard(self, voucher: dict[str, Any]) -> None:
        v, se = voucher["v"], voucher["session"]
        self._call(
            voucher,
            "discard",
            lambda: self.b.discard(se["payee"], v),
            f"/vouchers/{v.id}/discard-voucher",
            {},
            se["payee"],
        )

    @rule(seconds=st.integers(1, 200))
    def tick(self, seconds: int) -> None:
        """The clock moves; vouchers may expire (D2)."""
        self.b.now += timedelta(seconds=seconds)

    @rule(session=consumes(sessions))
    def close_session(self, session: dict[str, Any]) -> None:
        self.server.expire()
        at = self.next_time()
        vouchers_before = self.voucher_snapshot(at)
        ok, code = self.server.answer(session["sx"], "close")
        s = session["s"]
        if ok:
            self.feed(self.b.session_close(session["payee"], s), session["sx"])
        else:
            self.feed(
                self.b.refused(
                    "POST", f"/vouchers/sessions/{s.id}/session-close", {}, code or "", session["payee"]
                ),
                session["sx"],
            )
        if self.closes_checked:
            assert self.voucher_snapshot(at) == vouchers_before, "closing a session changed a voucher"

    @precondition(lambda self: bool(self.log))
    @rule(session=sessions)
    def close_context(self, session: dict[str, Any]) -> None:
        self.server.expire()
        at = self.next_time()
        vouchers_before = self.voucher_snapshot(at)
        ok, code = self.server.answer(session["cx"], "close")
        ctx = session["ctx"]
        if ok:
            self.feed(self.b.context_close(session["payer"], dict(ctx)), session["cx"])
        else:
            self.feed(
                self.b.refused(
                    "POST",
                    f"/vouchers/contexts/{ctx['id']}/context-close",
                    {"payeeId": None},
                    code or "",
                    session["payer"],
                ),
                session["cx"],
            )
        if self.closes_checked:
            assert self.voucher_snapshot(at) == vouchers_before, "closing a context changed a voucher"

    # ------------------------------------------------------------- invariants
    def snapshot(self, at: str | None = None) -> dict[str, str]:
        return {key: self.model(key, at) for key in self.server.state}

    def voucher_snapshot(self, at: str | None = None) -> dict[str, str]:
        """Vouchers' states; ``at``: as of that time (a close runs its vouchers' clocks, D4)."""
        return {key: self.model(key, at) for key in self.server.state if key.startswith("voucher:")}

    @invariant()
    def model_follows_the_correct_server(self) -> None:
        """The validator's model tracks the truth (expiry is inferred only at later exchanges)."""
        if not self.truth_checked:
            return
        for key, truth in self.server.state.items():
            model = self.model(key)
            assert model == truth or (truth == "EXPIRED" and model in ("RESERVED", "REDEEMED")), (
                key,
                model,
                truth,
            )

    @invariant()
    def finals_stay_final_and_status_never_goes_backwards(self) -> None:
        for key, state in self.snapshot().items():
            before = self.previous.get(key)
            if before is not None and key.startswith("voucher:"):
                assert ORDER[state] >= ORDER[before], (key, before, state)
                if ORDER[before] == 2:
                    assert state == before, (key, before, state)
            self.previous[key] = state

    @invariant()
    def each_voucher_fate_is_its_own(self) -> None:
        """Non-interference: replaying only a voucher's own exchanges (and what it depends on) agrees."""
        for key in [k for k in self.server.state if k.startswith("voucher:")]:
            replay = self.make_validator()
            session_of: set[str] = set()
            for _, keys in self.log:
                if key in keys:
                    session_of.update(k for k in keys if k.startswith("session:"))
            for record, keys in self.log:
                mine = key in keys
                prerequisite = (
                    not keys
                    or (
                        any(k.startswith("context:") for k in keys)
                        and "/context-close" not in record["request"]["path"]
                        and not any(k.startswith("voucher:") for k in keys)
                    )
                    or (session_of.intersection(keys) and record["request"]["path"].endswith("/session-join"))
                )
                if mine or prerequisite:
                    replay.feed(record)
            now = _iso(self.b.now)  # (both as of the last exchange: a close may have run the clock)
            full = self.validator.state_of(key, at=now)
            alone = replay.state_of(key, at=now)
            assert alone == full, f"non-interference: {key} is {full} but {alone} alone"


def _run(model: type[ProtocolModel], examples: int, *, expect_failure: bool = False) -> None:
    """Run the state machine: derandomized and bounded; a run meant to fail is not shrunk (only the
    failure matters there, and shrinking a long stateful run can take minutes)."""
    run_state_machine_as_test(
        model,
        settings=settings(
            max_examples=examples,
            stateful_step_count=25,
            deadline=None,
            derandomize=True,
            database=None,
            phases=(Phase.explicit, Phase.generate) if expect_failure else tuple(Phase),
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


def test_voucher_fates_stay_independent() -> None:
    """Every invariant holds on every step of generated interleavings (examples per profile)."""
    _run(ProtocolModel, EXAMPLES)


class CoupledStepper(Stepper):
    """A wrong model: when a session closes, its open vouchers are discarded with it."""

    def step(self, ex: Exchange, match: Match, *, request_broken: bool = False) -> list[Finding]:
        findings = super().step(ex, match, request_broken=request_broken)
        if match.operation.id == "session-close" and ex.accepted:
            for session in self.touched:
                for child in list(session.children or ()):
                    if child.kind == "voucher" and child.states[0] not in (
                        "RESOLVED",
                        "DISCARDED",
                        "EXPIRED",
                    ):
                        child.states = ("DISCARDED",)
                        self.store.settle(child)
        return findings


def _coupled_validator() -> Validator:
    return Validator(stepper=CoupledStepper, clock_skew=0)  # the model under test, made wrong


class CoupledModel(ProtocolModel):
    """The same calls and checks, run against the coupled model."""

    make_validator = staticmethod(_coupled_validator)


class CoupledModelNonInterferenceOnly(CoupledModel):
    """Only non-interference (and finality) checked: the replay property must catch the coupling alone."""

    closes_checked = False
    truth_checked = False


def test_the_properties_catch_a_coupled_model() -> None:
    """The same properties fail on the coupled model: they are known to bite."""
    pattern = r"closing a session changed a voucher|non-interference"
    with pytest.raises(AssertionError, match=pattern):
        _run(CoupledModel, 200, expect_failure=True)


def test_non_interference_alone_catches_a_coupled_model() -> None:
    """Replaying each voucher's own exchanges through the coupled model disagrees with the full run."""
    with pytest.raises(AssertionError, match=r"non-interference: voucher:"):
        _run(CoupledModelNonInterferenceOnly, 200, expect_failure=True)


def test_the_coupled_model_is_coupled_and_otherwise_correct() -> None:
    """Sanity for the tests above: the coupled stepper discards exactly the closed session's open vouchers."""
    b = TrafficBuilder(seed=3)
    o = b.open_session()
    payer, payee, s = o.payer, o.payee, o.session
    v1, r1 = b.session_reserve(payee, s)
    v2, r2 = b.session_reserve(payee, s)
    resolved = [b.redeem_simple(payee, v1), b.resolve(payer, v1)]
    log = [*o.records, r1, r2, *resolved, b.session_close(payee, s)]
    plain, coupled = Validator(), _coupled_validator()
    for record in log:
        plain.feed(record)
        coupled.feed(record)
    assert plain.state_of(f"voucher:{v2.id}") == ("RESERVED",)
    assert coupled.state_of(f"voucher:{v2.id}") == ("DISCARDED",)
    assert plain.state_of(f"voucher:{v1.id}") == coupled.state_of(f"voucher:{v1.id}") == ("RESOLVED",)
