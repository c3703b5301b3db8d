"""Unit tests of the stepper's modules, one concern each, and of its one prediction seam."""

from __future__ import annotations

import base64
import copy
import dataclasses
import functools
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from fsm.config import Config
from fsm.errors import SpecError
from fsm.exchange import Exchange, build_exchange
from fsm.generate import TrafficBuilder, generate
from fsm.machines import TransitionsEngine, TransitionTable, engines_for
from fsm.matcher import Match, Matcher, Router
from fsm.pipeline import Validator
from fsm.pointer import get as pointer_get
from fsm.render import render
from fsm.spec import load_spec
from fsm.spec.model import Ref
from fsm.stepper import Prediction, Stepper, entities
from fsm.stepper.actors import Actors
from fsm.stepper.call import Call
from fsm.stepper.clock import Clock, Timers, due_key
from fsm.stepper.core import CHECKS
from fsm.stepper.entities import HISTORY, Entity, EntityStore, seen
from fsm.stepper.payments import Currencies
from fsm.stepper.predict import Predictor
from fsm.stepper.refs import MISSING, has_body, reader, resolve
from fsm.stepper.terms import Terms, brief

SPEC = load_spec()
MATCHER = Matcher(Router(SPEC))


def _exchange(record: dict[str, Any], index: int = 0, file: str = "t.jsonl") -> tuple[Exchange, Match]:
    ex = build_exchange(record, index, file, index + 1, False)
    assert isinstance(ex, Exchange)
    routed = MATCHER.match(ex)
    assert isinstance(routed, Match)
    return ex, routed


def _jwt(claims: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(obj)).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


def _store() -> EntityStore:
    return EntityStore(SPEC.machines, engines_for(SPEC), SPEC.callers.scope)


def _run(records: list[dict[str, Any]]) -> tuple[Stepper, list[list[str]]]:
    stepper = Stepper(SPEC, engines_for(SPEC))
    rules = []
    for n, record in enumerate(records):
        ex, routed = _exchange(record, n)
        rules.append([f.rule_id for f in stepper.step(ex, routed)])
    return stepper, rules


def _flow(b: TrafficBuilder) -> dict[str, Any]:
    """A payer, a context, a payee, a joined session and one reserved voucher (records and names)."""
    o = b.open_session()
    v, reserved = b.session_reserve(o.payee, o.session)
    return {
        "payer": o.payer,
        "payee": o.payee,
        "ctx": o.ctx,
        "session": o.session,
        "voucher": v,
        "log": [*o.records, reserved],
    }


# --------------------------------------------------------------------------- refs
def test_a_pointer_walks_objects_and_array_items_and_misses_what_is_not_there() -> None:
    """pointer_get follows members and indexes; a missing member or index is MISSING, None is a value."""
    doc = {"a": [{"b": 1}, {"b": None}]}
    assert pointer_get(doc, ("a", "0", "b")) == 1
    assert pointer_get(doc, ("a", "1", "b")) is None
    assert pointer_get(doc, ("a", "2", "b")) is MISSING
    assert pointer_get(doc, ("a", "x")) is MISSING
    assert pointer_get(doc, ("c",)) is MISSING
    assert pointer_get(doc, ()) is doc


def test_a_reference_reads_a_path_parameter_a_request_member_a_response_member_or_an_item() -> None:
    """resolve reads each source a reference may name."""
    b = TrafficBuilder(seed=1)
    names = _flow(b)
    ex, routed = _exchange(b.redeem_simple(names["payee"], names["voucher"]))
    assert resolve(Ref.parse("path:voucherId"), ex, routed.params) == names["voucher"].id
    assert resolve(Ref.parse("request:/expectedPayment/currency"), ex, routed.params) == "EURC"
    assert resolve(Ref.parse("response:/status"), ex, routed.params) == "REDEEMED"
    assert resolve(Ref.parse("item:/x"), ex, routed.params, {"x": 3}) == 3
    assert resolve(Ref.parse("item:/x"), ex, routed.params) is MISSING


def test_a_reference_into_a_side_without_a_body_is_missing() -> None:
    """A request without a body resolves to MISSING and has_body says so."""
    b = TrafficBuilder(seed=1)
    names = _flow(b)
    record = b.session_join(names["payer"], names["session"])
    del record["request"]["body"]
    ex, routed = _exchange(record)
    ref = Ref.parse("request:/anything")
    assert not has_body(ref, ex)
    assert resolve(ref, ex, routed.params) is MISSING
    assert has_body(Ref.parse("path:sessionId"), ex)


# ----------------------------------------------------------------------- entities
def test_a_final_entity_is_retired_and_comes_back_in_its_final_state_when_named_again() -> None:
    """settle keeps a final entity's state and values (D23), not parsed due times; find brings it back."""
    store = _store()
    e = store.adopt("voucher", "vch_1", "ABC123", ("RESOLVED",))
    e.attrs.update({"type": "SIMPLE", "expiresAt": "2026-06-09T12:00:00Z", "expiresAt#t": 1.0})
    store.settle(e)
    assert store.entities == {} and store.by_code == {}
    assert store.finished["voucher"] == {"vch_1": "RESOLVED"}
    kept = {"type": "SIMPLE", "expiresAt": "2026-06-09T12:00:00Z"}
    copy = store.peek("voucher", "vch_1", None)  # (a detached copy: the store keeps it retired)
    assert copy is not None and copy.attrs == kept and copy.expired_by_clock == ()
    assert store.finished["voucher"] == {"vch_1": "RESOLVED"}
    back = store.find("voucher", "vch_1", None)
    assert back is not None and back.states == ("RESOLVED",) and back.attrs == kept
    assert store.entities[("voucher", "vch_1")] is back and store.finished["voucher"] == {}


def test_a_live_entity_with_candidate_states_is_not_retired() -> None:
    """An adopted entity that may still be open stays live."""
    store = _store()
    e = store.adopt("voucher", "vch_1", None, ("REDEEMED", "RESOLVED"))
    store.settle(e)
    assert store.entities[("voucher", "vch_1")] is e


def test_peek_finds_a_retired_entity_without_bringing_it_back() -> None:
    """peek answers with a detached copy and leaves the store as it was."""
    store = _store()
    store.settle(store.adopt("voucher", "vch_1", "ABC123", ("DISCARDED",)))
    copy = store.peek("voucher", "vch_1", None)
    assert copy is not None and copy.states == ("DISCARDED",) and not store.is_filed(copy)
    assert store.peek("voucher", None, "ABC123") is not None
    assert store.entities == {} and store.finished["voucher"] == {"vch_1": "DISCARDED"}
    assert store.peek("voucher", "vch_2", None) is None


def test_history_keeps_the_last_exchanges_and_tells_the_parent_which_child_moved() -> None:
    """remember keeps HISTORY exchanges, oldest first, and sets the parent's last event."""
    b = TrafficBuilder(seed=2)
    names = _flow(b)
    store = _store()
    parent = store.adopt("session", names["session"].id, None, ("JOINED",))
    child = store.adopt("voucher", names["voucher"].id, None, ("RESERVED",))
    store.link(child, parent)
    records = [b.get_voucher(names["payee"], names["voucher"]) for _ in range(HISTORY + 2)]
    for n, record in enumerate(records):
        store.remember(child, seen(_exchange(record, n)[0]))
    assert [h.exchange_index for h in child.history] == list(range(2, HISTORY + 2))
    assert child.last_own == HISTORY + 1
    assert parent.last_event is not None and parent.last_child == child.id
    assert [r.index for r in store.related(child)] == list(range(2, HISTORY + 2))
    assert store.related(child)[0].summary.startswith("GET /api/v1/vouchers/")


def test_the_scope_of_an_entity_is_its_nearest_ancestor_of_the_scope_machine() -> None:
    """scope_of walks up the parents to the machine the data names as the scope (a context)."""
    store = _store()
    ctx = store.adopt("context", "ctx_1", "CTX001", ("OPEN",))
    session = store.adopt("session", "ses_1", None, ("JOINED",))
    voucher = store.adopt("voucher", "vch_1", None, ("RESERVED",))
    store.link(session, ctx)
    store.link(voucher, session)
    assert SPEC.callers.scope == "context"
    assert store.scope_of(voucher) is ctx
    assert store.scope_of(store.adopt("voucher", "vch_2", None, ("RESERVED",))) is None


# -------------------------------------------------------------------------- clock
def test_an_input_whose_time_goes_backwards_is_a_finding_but_each_input_has_its_own_clock() -> None:
    """Clock.check reports time.backwards per file only."""
    b = TrafficBuilder(seed=3)
    late, early = b.sign_in_payer()[1], b.sign_in_payer()[1]
    late["time"], early["time"] = "2026-06-09T12:00:10Z", "2026-06-09T12:00:00Z"
    clock = Clock()
    assert clock.check(_exchange(late, 0, "a.jsonl")[0]) is None
    assert clock.check(_exchange(early, 1, "b.jsonl")[0]) is None
    finding = clock.check(_exchange(early, 2, "a.jsonl")[0])
    assert finding is not None and finding.rule_id == "time.backwards"


def test_a_due_timed_transition_fires_and_marks_the_entity_expired_by_the_clock() -> None:
    """tick moves a RESERVED voucher past its expiresAt to EXPIRED; ticked alone changes nothing."""
    timers = Timers(SPEC.machines, engines_for(SPEC))
    store = _store()
    e = store.adopt("voucher", "vch_1", None, ("RESERVED", "REDEEMED"))
    e.attrs["expiresAt"] = "2026-06-09T12:00:00Z"  # (as Terms.record keeps it)
    timers.record(e, "expiresAt", e.attrs["expiresAt"])
    assert due_key("expiresAt") in e.attrs
    before = timers.ticked(e, "voucher", e.attrs[due_key("expiresAt")] - 6)  # (before the skew)
    assert before == (("RESERVED", "REDEEMED"), False)
    assert timers.ticked(e, "voucher", e.attrs[due_key("expiresAt")] + 6) == (("EXPIRED",), True)
    assert e.states == ("RESERVED", "REDEEMED") and not e.expired_by_clock
    timers.tick(e, "voucher", e.attrs[due_key("expiresAt")] + 6)
    assert e.states == ("EXPIRED",) and e.expired_by_clock == ("RESERVED", "REDEEMED")
    assert timers.expired_at(e) == "2026-06-09T12:00:00Z"


def test_within_the_clock_skew_both_the_state_before_and_after_expiry_are_candidates() -> None:
    """D24: within the skew around expiresAt a voucher may or may not have expired; past it, it has.

    Around, not only after: a server whose clock runs ahead of the log's expires before expiresAt.
    """
    timers = Timers(SPEC.machines, engines_for(SPEC), skew=5)
    e = _store().adopt("voucher", "vch_1", None, ("REDEEMED",))
    timers.record(e, "expiresAt", "2026-06-09T12:00:00Z")
    due = e.attrs[due_key("expiresAt")]
    assert timers.ticked(e, "voucher", due - 5) == (("REDEEMED",), False)
    assert timers.ticked(e, "voucher", due - 4.999) == (("REDEEMED", "EXPIRED"), True)
    assert timers.ticked(e, "voucher", due) == (("REDEEMED", "EXPIRED"), True)
    assert timers.ticked(e, "voucher", due + 5) == (("REDEEMED", "EXPIRED"), True)
    assert timers.ticked(e, "voucher", due + 5.001) == (("EXPIRED",), True)
    strict = Timers(SPEC.machines, engines_for(SPEC), skew=0)
    assert strict.ticked(e, "voucher", due + 0.001) == (("EXPIRED",), True)


def test_the_timed_attribute_is_the_one_the_machine_file_names() -> None:
    """Timers read the attribute from the timed transition, not from code."""
    timers = Timers(SPEC.machines, engines_for(SPEC))
    named = {t.timed_attribute for m in SPEC.machines.values() for t in m.transitions if t.timed_attribute}
    assert timers.attributes == named == {"expiresAt"}
    assert timers.before["voucher"] == {"RESERVED", "REDEEMED"}


# ------------------------------------------------------------------------ predict
def test_a_trigger_predicts_its_destination_and_a_forbidden_one_its_documented_refusal() -> None:
    """Predictor.outcomes: redeem from RESERVED leads to REDEEMED; from REDEEMED it is already_redeemed."""
    predictor = Predictor(SPEC.machines, engines_for(SPEC))
    m = SPEC.machines["voucher"]
    e = _store().adopt("voucher", "vch_1", None, ("RESERVED",))
    accepts, refuses = predictor.outcomes(m, e, ("RESERVED",), "redeem", None)
    assert [(o.state, o.dest) for o in accepts] == [("RESERVED", "REDEEMED")] and refuses == []
    accepts, refuses = predictor.outcomes(m, e, ("REDEEMED",), "redeem", None)
    assert accepts == [] and [o.code for o in refuses] == ["already_redeemed"]


def test_a_guard_the_log_cannot_decide_yields_both_outcomes() -> None:
    """negotiate on a voucher of unknown type: accepted if SIMPLE, refused not_simple otherwise."""
    predictor = Predictor(SPEC.machines, engines_for(SPEC))
    m = SPEC.machines["voucher"]
    e = _store().adopt("voucher", "vch_1", None, ("REDEEMED",))
    accepts, refuses = predictor.outcomes(m, e, e.states, "negotiate", {"suppliedPayment": {}})
    assert accepts and {o.code for o in refuses} == {"not_simple", "different_network"}
    e.attrs.update({"type": "SIMPLE", "expectedPayment": {"network": "polygon"}})
    body = {"suppliedPayment": {"network": "base"}}
    accepts, refuses = predictor.outcomes(m, e, e.states, "negotiate", body)
    assert accepts == [] and [o.code for o in refuses] == ["different_network"]


def test_allowed_lists_the_operations_callable_in_the_candidate_states() -> None:
    """allowed names operations (not triggers), each once."""
    predictor = Predictor(SPEC.machines, engines_for(SPEC))
    m = SPEC.machines["voucher"]
    assert predictor.allowed(m, ("RESOLVED",)) == []
    assert "resolve-voucher" in predictor.allowed(m, ("REDEEMED",))
    assert "redeem-voucher" in predictor.allowed(m, ("RESERVED", "REDEEMED"))


def test_the_compiled_tables_agree_with_the_transitions_machines_everywhere() -> None:
    """For every machine, state, trigger and guard value, the table and the Machine give one answer."""
    for name, m in SPEC.machines.items():
        table, reference = TransitionTable.from_spec(m), TransitionsEngine(m)
        holder = _store().adopt(name, "x", None, m.state_names)
        triggers = {t.trigger for t in m.transitions}
        for state, trigger in itertools.product(m.state_names, sorted(triggers)):
            assert set(table.triggers(state)) == set(reference.triggers(state)), (name, state)
            for combo in itertools.product((True, False), repeat=len(m.guards)):
                guards = dict(zip(m.guards, combo, strict=True))
                got = table.dest(holder, state, trigger, guards)
                assert got == reference.dest(holder, state, trigger, guards), (name, state, trigger, guards)
        reference.release(holder)


def test_the_predictor_gives_the_same_outcomes_over_either_engine() -> None:
    """Outcomes (and their refusal codes) of every trigger from every state agree between engines."""
    fast = Predictor(SPEC.machines, engines_for(SPEC, "table"))
    slow = Predictor(SPEC.machines, engines_for(SPEC, "transitions"))
    for name, m in SPEC.machines.items():
        for state, trigger in itertools.product(m.state_names, m.triggers):
            e = _store().adopt(name, "x", None, (state,))
            a = fast.outcomes(m, e, (state,), trigger, None)
            b = slow.outcomes(m, e, (state,), trigger, None)
            assert a == b, (name, state, trigger)


def test_the_moves_compiled_at_load_are_the_outcomes_the_transitions_machines_predict() -> None:
    """Every step's move from every state it compiled equals the reference engine's outcomes, and the
    states left out are exactly those a refusing guard decides."""
    stepper = Stepper(SPEC, engines_for(SPEC))
    reference = Predictor(SPEC.machines, engines_for(SPEC, "transitions"))
    compiled = 0
    for plans in stepper._steps.values():
        for plan in plans:
            m, trigger = plan.machine, plan.step.trigger
            for state in m.state_names:
                guarded = any(t.refusing_guards for t in reference.transitions(m.name, state, trigger))
                assert ((state,) in plan.moves) != guarded, (m.name, state, trigger)
                if guarded:
                    continue
                e = _store().adopt(m.name, "x", None, (state,))
                accepts, refuses = reference.outcomes(m, e, (state,), trigger, None)
                mv = plan.moves[(state,)]
                assert (mv.accepts, mv.refuses) == (accepts, refuses), (m.name, state, trigger)
                assert mv.states == tuple(dict.fromkeys(o.dest for o in accepts if o.dest))
                compiled += 1
    assert compiled > 50


def test_every_compiled_reader_reads_what_resolve_reads() -> None:
    """For every reference the operations name, on generated traffic (and items of several shapes)."""
    refs: set[Ref] = set()
    for op in SPEC.operations:
        for s in op.steps:
            refs.update(r for r in (s.ref.id, s.ref.code, s.status) if r is not None)
            refs.update(h[0] if isinstance(h, tuple) else h for h in s.record.values())
            refs.update(s.expect.values())
        for o in op.observes:
            refs.update(r for r in (o.ref.id, o.ref.code, o.status, o.each) if r is not None)
            refs.update(h[0] if isinstance(h, tuple) else h for h in o.record.values())
            refs.update(o.expect.values())
        if op.issues_token is not None:
            t = op.issues_token
            refs.update(r for r in (t.token, t.type, t.resource) if r is not None)
        refs.update((op.learns or {}).values())
        refs.update(op.payments)
    refs.update(Ref.parse(text) for text in ("request:", "item:", "item:/a/0", "response:/a/b"))
    assert {r.source for r in refs} == {"path", "request", "response", "item"}
    items = [MISSING, None, {"id": "v1", "code": 3}, [{"a": 1}], {"a": ["x"]}, "text"]
    compiled = {r: reader(r) for r in refs}
    checked = 0
    for n, record in enumerate(generate(4, seed=7, partial=False)):
        ex = build_exchange(record, n, "t.jsonl", n + 1, False)
        assert isinstance(ex, Exchange)
        routed = MATCHER.match(ex)
        params = routed.params if isinstance(routed, Match) else {}
        for ref, read in compiled.items():
            for item in items:
                assert read(ex, params, item) == resolve(ref, ex, params, item), (str(ref), n)
                checked += 1
    assert checked > 1000
    assert reader(None)(ex, params, MISSING) is MISSING


# -------------------------------------------------------------------------- terms
def test_brief_quotes_strings_and_cuts_long_values_at_eighty_characters() -> None:
    """brief: strings as repr, others as JSON, at most 80 characters."""
    assert brief("x") == "'x'"
    assert brief({"a": 1}) == '{"a":1}'
    long = brief("y" * 200)
    assert len(long) == 80 and long.endswith("...")


def test_a_recorded_term_that_a_later_answer_contradicts_is_a_terms_changed_finding() -> None:
    """Terms.record keeps a value (and a present/then/else choice); expect compares later answers."""
    b = TrafficBuilder(seed=4)
    names = _flow(b)
    terms = Terms(Timers(SPEC.machines, engines_for(SPEC)))
    e = _store().adopt("voucher", names["voucher"].id, None, ("RESERVED",))
    ex, routed = _exchange(b.redeem_simple(names["payee"], names["voucher"], "EURC", "100"))
    step = routed.operation.steps[0]
    terms.record(terms.compile(step.record), e, ex, routed.params)
    assert e.attrs["type"] == "SIMPLE" and e.attrs["expectedPayment"]["amount"] == "100"
    assert terms.expect(terms.compile(step.expect), e, ex, routed.params) == []
    later = b.get_voucher(names["payee"], names["voucher"])
    later["response"]["body"]["type"] = "CUSTOM"
    ex, routed = _exchange(later, 1)
    found = terms.expect(terms.compile(routed.operation.observes[0].expect), e, ex, routed.params)
    assert [(f.rule_id, f.instance_path) for f in found] == [("machine.terms-changed", "/response/body/type")]


# ------------------------------------------------------------------------- actors
def test_a_resource_tokens_claims_make_it_the_payees_scoped_to_its_context_code() -> None:
    """Claims name the role (the claim names come from the data)."""
    actors = Actors(SPEC, _store())
    info = actors.info(_jwt({"type": "resource", "resource": "voucher::context::code::ABC123"}))
    assert info is not None and (info.role, info.code) == ("payee", "ABC123")
    info = actors.info(_jwt({"resource": "something else"}))
    assert info is not None and (info.role, info.code) == ("payee", None)


def test_a_user_claim_makes_a_registered_user_and_any_other_token_is_unknown() -> None:
    """userId or deviceId: a user; no JWT, or no known claim: unknown (never judged)."""
    actors = Actors(SPEC, _store())
    info = actors.info(_jwt({"deviceId": "d"}))
    assert info is not None and info.role == "user"
    assert actors.info(_jwt({"sub": "x"})) is None
    assert actors.info("opaque-token") is None
    assert actors.info("a.!!!.c") is None


def test_a_sign_in_teaches_the_role_of_the_token_it_issues() -> None:
    """An accepted sign-in of type resource makes its opaque token the payee's, scoped to the code."""
    b = TrafficBuilder(seed=5)
    _, record = b.sign_in_payee("ABC123")
    record["response"]["body"]["authorization"]["token"] = "opaque"
    ex, routed = _exchange(record)
    actors = Actors(SPEC, _store())
    actors.issue(routed.operation, ex, routed.params)
    info = actors.info("opaque")
    assert info is not None and (info.role, info.code) == ("payee", "ABC123")


def test_the_role_a_token_holds_is_looked_up_along_the_parent_chain_the_resource_role_first() -> None:
    """bind records a role once per family; role_in finds it from a child."""
    store = _store()
    actors = Actors(SPEC, store)
    ctx = store.adopt("context", "ctx_1", "C", ("OPEN",))
    voucher = store.adopt("voucher", "vch_1", None, ("RESERVED",))
    store.link(voucher, ctx)
    actors.bind(ctx, "payer", "tok-a")
    actors.bind(voucher, "payer", "tok-b")  # the family has its payer already
    assert actors.role_in("tok-a", voucher) == "payer"
    assert actors.role_in("tok-b", voucher) is None
    actors.bind(voucher, "payee", "tok-a")  # the payer's token is not made the payee's too
    assert voucher.callers is None
    actors.bind(voucher, "anyone", "tok-c")  # not a role
    assert voucher.callers is None


def test_each_operation_is_for_the_one_role_it_lists_or_for_any_caller() -> None:
    """need: the operation's role from the data (payer only, payee only, or None)."""
    actors = Actors(SPEC, _store())
    assert actors.need["session-join"] == "payer"
    assert actors.need["redeem-voucher"] == "payee"
    assert actors.need["get-voucher"] is None


def test_an_operation_listing_both_roles_does_not_load(protocol_copy: Path) -> None:
    """The meta-schema allows one role per operation: 'both' can no longer silently mean payer."""
    path = protocol_copy / "operations.json"
    doc = orjson.loads(path.read_bytes())
    doc["operations"][3]["actors"] = ["payer", "payee"]
    path.write_bytes(orjson.dumps(doc))
    with pytest.raises(SpecError, match=r"operations\.json"):
        load_spec(protocol_copy)


# ----------------------------------------------------------------------- payments
def test_a_payment_is_checked_against_the_registry_which_learns_from_currency_answers() -> None:
    """Known triple: no finding; contradicting address: mismatch; unknown: info until learnt."""
    b = TrafficBuilder(seed=6)
    names = _flow(b)
    currencies = Currencies(SPEC)
    ex, routed = _exchange(b.redeem_simple(names["payee"], names["voucher"], "EURC"))
    assert currencies.check(routed.operation, ex, routed.params) == []
    bad = b.redeem_simple(names["payee"], names["voucher"], "EURC")
    bad["request"]["body"]["expectedPayment"]["currencyAddress"] = "0x" + "1" * 40
    ex, routed = _exchange(bad)
    found = currencies.check(routed.operation, ex, routed.params)
    assert [(f.rule_id, f.instance_path) for f in found] == [
        ("network.mismatch", "/request/body/expectedPayment/currencyAddress")
    ]
    unknown = b.redeem_simple(names["payee"], names["voucher"], "EURC")
    unknown["request"]["body"]["expectedPayment"].update(currency="XYZ", currencyAddress="0x" + "2" * 40)
    ex, routed = _exchange(unknown)
    assert [f.rule_id for f in currencies.check(routed.operation, ex, routed.params)] == [
        "network.unknown-currency"
    ]
    currencies.learn("XYZ", unknown["request"]["body"]["expectedPayment"]["network"], "0x" + "2" * 40)
    assert currencies.check(routed.operation, ex, routed.params) == []


# ---------------------------------------------------------------- lifecycle, observe
def test_a_clean_flow_steps_every_entity_to_its_state_without_findings() -> None:
    """The generated flow leaves the voucher RESOLVED (retired) and the session JOINED."""
    b = TrafficBuilder(seed=7)
    names = _flow(b)
    v = names["voucher"]
    log = [*names["log"], b.redeem_simple(names["payee"], v), b.resolve(names["payer"], v)]
    stepper, rules = _run(log)
    assert rules == [[] for _ in log]
    assert stepper.state_of("voucher", v.id) == ("RESOLVED",)
    assert stepper.state_of("session", names["session"].id) == ("JOINED",)
    assert stepper.store.finished["voucher"] == {v.id: "RESOLVED"}


def test_an_accepted_forbidden_call_is_the_refusal_rule_and_a_refused_legal_call_a_warning() -> None:
    """Redeeming twice (accepted) is illegal; a refused first resolve after redeem is unexpected."""
    b = TrafficBuilder(seed=8)
    names = _flow(b)
    v = names["voucher"]
    redeem = b.redeem_simple(names["payee"], v)
    refused = b.refused("POST", f"/vouchers/{v.id}/resolve-voucher", {}, "unexpected", names["payer"])
    stepper, rules = _run([*names["log"], redeem, redeem, refused])
    assert rules[-2] == ["machine.illegal-transition"]
    assert rules[-1] == ["machine.unexpected-refusal"]
    assert stepper.state_of("voucher", v.id) == ("REDEEMED",)


def test_an_entity_first_met_in_an_observation_is_adopted_in_the_states_its_status_allows() -> None:
    """A GET of an unknown voucher adopts it REDEEMED, with no finding (D18)."""
    b = TrafficBuilder(seed=9)
    names = _flow(b)
    v = names["voucher"]
    b.redeem_simple(names["payee"], v)
    stepper, rules = _run([b.get_voucher(names["payee"], v)])
    assert rules == [[]] and stepper.state_of("voucher", v.id) == ("REDEEMED",)
    assert [e.key for e in stepper.touched] == [f"voucher:{v.id}"]


# --------------------------------------------------------------------------- core
def test_each_operation_runs_only_the_checks_of_the_keys_it_declares() -> None:
    """The plans hold one check per declared key, in the order of CHECKS."""
    stepper = Stepper(SPEC, engines_for(SPEC))

    def name(check: Any, op: Any) -> str:  # (steps and observations run bound to the operation's plans)
        if isinstance(check, functools.partial):
            assert check.args in ((p,) for p in (*stepper._steps[op.id], *stepper._observes[op.id]))
            return {stepper.lifecycle.step: "_lifecycle", stepper.observations.observe: "_observe"}[
                check.func
            ]
        direct = {stepper.actors.breaches: "_actors", stepper.currencies.judge: "_payments"}
        return direct.get(check, str(check.__name__))

    names = {op.id: [name(c, op) for c in stepper._plans[op.id]] for op in SPEC.operations}
    assert names["sign-in"] == ["_actors", "_issue_token"]
    assert names["get-currencies"] == ["_actors", "_learn"]
    assert names["redeem-voucher"] == ["_auth", "_lifecycle", "_actors", "_payments"]
    assert names["get-voucher"] == ["_auth", "_observe", "_actors"]
    assert list(CHECKS) == ["auth", "steps", "observes", "actors", "issues_token", "learns", "payments"]


def test_every_step_is_compiled_once_against_its_machine() -> None:
    """Each step plan holds its machine, and a creation for creating steps only."""
    stepper = Stepper(SPEC, engines_for(SPEC))
    for op in SPEC.operations:
        plans = stepper._steps[op.id]
        assert [p.step for p in plans] == list(op.steps)
        for p in plans:
            assert p.machine is SPEC.machines[p.step.machine]
            assert (p.creation is not None) == p.step.creates


# ------------------------------------------------------------------------ predict seam
def _fed(seed: int, *, redeemed: bool = False) -> tuple[TrafficBuilder, dict[str, Any], Validator]:
    """A validator fed :func:`_flow` of ``seed`` (its voucher then redeemed by the payee, if asked)."""
    b = TrafficBuilder(seed=seed)
    names = _flow(b)
    v_ = Validator()
    for record in names["log"]:
        v_.feed(record)
    if redeemed:
        v_.feed(b.redeem_simple(names["payee"], names["voucher"]))
    return b, names, v_


def test_predict_forecasts_a_refusal_with_its_code_and_status_and_changes_nothing() -> None:
    """After a redeem, another redeem is predicted refused already_redeemed (400); the model stays."""
    b, names, v_ = _fed(10, redeemed=True)
    v = names["voucher"]
    headers = {"Authorization": f"Bearer {names['payee']}"}
    body = {"expectedPayment": b.payment()}
    p = v_.predict("POST", f"/api/v1/vouchers/{v.id}/redeem-voucher", headers, body)
    assert p == Prediction(
        "redeem-voucher",
        False,
        f"voucher:{v.id}",
        status=400,
        code="already_redeemed",
        spec_path=p.spec_path,
        reason=p.reason,
    )
    assert p.spec_path.startswith("voucher.machine.json#/refusals/")
    assert v_.state_of(f"voucher:{v.id}") == ("REDEEMED",)
    payer = {"Authorization": f"Bearer {names['payer']}"}
    resolve = v_.predict("POST", f"/api/v1/vouchers/{v.id}/resolve-voucher", payer)
    assert (resolve.accepted, resolve.leads_to) == (True, ("RESOLVED",))


def test_predict_refuses_the_wrong_callers_token_and_a_payment_the_registry_contradicts() -> None:
    """refusal_codes: a payee's token on resolve (payer only) and EURC at USDC's address are refused."""
    _, names, v_ = _fed(10, redeemed=True)
    v = names["voucher"]
    payee = {"Authorization": f"Bearer {names['payee']}"}
    wrong = v_.predict("POST", f"/api/v1/vouchers/{v.id}/resolve-voucher", payee)
    assert (wrong.accepted, wrong.status, wrong.code, wrong.rule) == (
        False,
        401,
        "unauthorized",
        "actor.wrong-role",
    )
    w, fresh, vv = _fed(11)
    pay = dict(w.payment("EURC"), currencyAddress=w.payment("USDC")["currencyAddress"])
    path = f"/vouchers/{fresh['voucher'].id}/redeem-voucher"
    headers = {"Authorization": f"Bearer {fresh['payee']}"}
    bad = vv.predict("POST", "/api/v1" + path, headers, {"expectedPayment": pay})
    assert (bad.accepted, bad.code, bad.rule) == (False, "validation_failed", "network.mismatch")
    refused = w.refused("POST", path, {"expectedPayment": pay}, "validation_failed", fresh["payee"])
    assert vv.feed(refused) == []  # the refusal the prediction gives draws no unexpected-refusal
    other = w.refused("POST", path, {"expectedPayment": w.payment()}, "validation_failed", fresh["payee"])
    assert [x.rule_id for x in vv.feed(other)] == ["machine.unexpected-refusal"]


def test_predict_cannot_tell_for_an_entity_whose_past_the_log_does_not_show() -> None:
    """An unknown voucher may be in any state: resolve is undecided, and nothing is adopted."""
    v_ = Validator()
    p = v_.predict("POST", "/api/v1/vouchers/vch_x/resolve-voucher", {"authorization": "Bearer t"})
    assert p.accepted is None and p.entity == "voucher:vch_x"
    assert v_.state_of("voucher:vch_x") is None


def test_predict_refuses_a_call_without_the_token_it_needs_and_names_what_it_cannot_route() -> None:
    """auth required and no token: refused; an unknown path: no operation."""
    v_ = Validator()
    p = v_.predict("POST", "/api/v1/vouchers/vch_x/resolve-voucher")
    assert (p.accepted, p.rule) == (False, "actor.unauthenticated")
    nowhere = v_.predict("GET", "/api/v1/nowhere")
    assert (nowhere.operation, nowhere.accepted) == (None, None) and "matches no operation" in nowhere.reason


def test_predict_tells_a_creation_and_expiry_by_the_clock() -> None:
    """A reserve creates a RESERVED voucher; a redeem after expiresAt is refused."""
    b, names, v_ = _fed(11)
    headers = {"authorization": f"Bearer {names['payee']}"}
    create = v_.predict(
        "POST", f"/api/v1/vouchers/sessions/{names['session'].id}/reserve-voucher", headers, {}
    )
    assert (create.accepted, create.entity, create.leads_to) == (True, "voucher:(new)", ("RESERVED",))
    path = f"/api/v1/vouchers/{names['voucher'].id}/redeem-voucher"
    body = {"expectedPayment": b.payment()}
    assert v_.predict("POST", path, headers, body).accepted is True
    late = v_.predict("POST", path, headers, body, at="2030-01-01T00:00:00Z")
    assert late.accepted is False and late.reason.endswith("EXPIRED")


def test_every_prediction_on_generated_traffic_comes_true() -> None:
    """On valid generated traffic each call the model decides goes as predicted, with the code predicted."""
    v_ = Validator()
    decided = 0
    for record in generate(30, seed=12, partial=False):
        req = record["request"]
        p = v_.predict(req["method"], req["path"], req.get("headers"), req.get("body"), at=record["time"])
        status = record["response"]["status"]
        if p.accepted is not None:
            decided += 1
            assert p.accepted == (200 <= status < 300), (p, record)
            if p.accepted is False and p.code is not None:
                assert p.code == record["response"]["body"]["code"]
                assert p.status == status
        assert v_.feed(record) == []
    assert decided > 500


def test_a_retired_entity_named_by_its_code_alone_comes_back_with_its_id() -> None:
    """A closed context named again by its code (a refused reserve) is the same entity, not a new key."""
    store = _store()
    e = store.adopt("context", "ctx_1", "ABC123", ("CLOSED",))
    store.settle(e)
    back = store.find("context", MISSING, "ABC123")
    assert back is not None and back.key == "context:ctx_1" and back.states == ("CLOSED",)
    assert store.finished["context"] == {} and store.entities[("context", "ctx_1")] is back


def test_predict_refuses_a_request_that_breaks_its_schema() -> None:
    """D26: a redeem whose amount is 0 is predicted refused (any 4xx), though the voucher may redeem."""
    b, names, v_ = _fed(13)
    headers = {"authorization": f"Bearer {names['payee']}"}
    path = f"/api/v1/vouchers/{names['voucher'].id}/redeem-voucher"
    assert v_.predict("POST", path, headers, {"expectedPayment": b.payment()}).accepted is True
    broken = v_.predict("POST", path, headers, {"expectedPayment": b.payment(amount="0")})
    assert (broken.accepted, broken.rule, broken.code, broken.status) == (False, "schema.request", None, None)
    assert "amount" in broken.reason


# ------------------------------------------------------------------ shortcuts
class _Reviving(EntityStore):
    """The store without shortcuts: every retired entity named again is brought back (the reference)."""

    def stand_in(self, *args: Any) -> None:
        return None


class _RevivingStepper(Stepper):
    store_class = _Reviving


class _Counting(EntityStore):
    """The store as it is, counting its stand-ins."""

    stood_in = 0

    def stand_in(self, *args: Any) -> Entity | None:
        e = super().stand_in(*args)
        self.stood_in += e is not None
        return e


class _CountingStepper(Stepper):
    store_class = _Counting


def _listings(log: list[dict[str, Any]]) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Session answers that list vouchers: as generated, doubled, restated and borrowed from another."""
    yield "as generated", log
    listing = [r for r in log if "vouchers" in (r["response"].get("body") or {})]
    out = copy.deepcopy(log)
    for r in out:
        if r in listing:
            r["response"]["body"]["vouchers"] *= 2  # each voucher listed twice
    yield "doubled", out
    out = copy.deepcopy(log)
    statuses = ["RESOLVED", "DISCARDED", "EXPIRED", "RESERVED", "REDEEMED"]
    for n, r in enumerate(x for x in out if x in listing):
        for m, item in enumerate(r["response"]["body"]["vouchers"]):
            if (n + m) % 3 == 0:
                item["status"] = statuses[(n + m) % len(statuses)]  # another status than the model's
    yield "restated", out
    out = copy.deepcopy(log)
    earlier: list[Any] = []
    for r in out:
        if r in listing:
            items = r["response"]["body"]["vouchers"]
            r["response"]["body"]["vouchers"] = [*items, *earlier[-3:]]  # vouchers of other sessions
            earlier = items
    yield "borrowed", out


@pytest.mark.parametrize("finished_in_ram", [0, 1])
def test_a_retired_voucher_a_session_lists_in_its_final_status_stays_retired_and_judges_the_same(
    finished_in_ram: int,
) -> None:
    """Stand-ins (not brought back, not retired again from scratch): the same report, byte for byte.

    Every outcome in the same order with the same counts, every violation the same, as a store
    that brings every retired voucher a listing names back; with finished entities in RAM or on disk.
    """
    log = list(itertools.islice(generate(30, seed=3), 1200))
    for name, records in _listings(log):
        reports = []
        for stepper in (_CountingStepper, _RevivingStepper):
            v = Validator(stepper=stepper, finished_in_ram=finished_in_ram)
            for n, r in enumerate(records, 1):
                v.feed(r, source="log.jsonl", line=n)
            report = v.finish()
            reports.append((render(report, "json"), render(report, "text"), tuple(report.entities)))
            if stepper is _CountingStepper:
                assert v._stepper.store.stood_in > 50, name  # type: ignore[attr-defined]
        assert reports[0] == reports[1], name


class _GenericSteps(Stepper):
    """The stepper with every lifecycle step the generic :meth:`Lifecycle.step` (the reference)."""

    generated = False


def _golden_inputs() -> list[Path]:
    root = Path(__file__).resolve().parent.parent
    corpus = sorted(p for p in (root / "tests" / "corpus").glob("*/*") if p.suffix in (".jsonl", ".har"))
    return (
        corpus
        + sorted((root / "tests" / "golden" / "inputs").iterdir())
        + [p for p in sorted((root / "examples").iterdir()) if p.suffix in (".jsonl", ".har")]
    )


def _judged_inputs(tmp: Path) -> Iterator[Path]:
    """The golden inputs and the examples, and each generated log again from its middle on (every
    entity met mid-flow, D18: roles are bound by the calls that follow, not by the creations)."""
    for path in _golden_inputs():
        yield path
        if path.suffix == ".jsonl" and path.stem.startswith("generated"):
            lines = path.read_bytes().splitlines(keepends=True)
            for start in (len(lines) // 3, len(lines) // 2):
                (tmp / f"{path.stem}-{start}.jsonl").write_bytes(b"".join(lines[start:]))
                yield tmp / f"{path.stem}-{start}.jsonl"
            nulled = [orjson.loads(line) for line in lines]  # (every 3rd call's members null, but ids)
            for record in nulled[::3]:
                for side in (record["request"], record["response"]):
                    body = side.get("body")
                    if isinstance(body, dict):
                        side["body"] = {k: v if k in ("id", "status") else None for k, v in body.items()}
            for record in nulled[1::5]:  # (and every 5th call's answer names a number for its id)
                body = record["response"].get("body")
                if isinstance(body, dict) and "id" in body:
                    body["id"] = 7
            (tmp / f"{path.stem}-nulled.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in nulled))
            yield tmp / f"{path.stem}-nulled.jsonl"


def _model(v: Validator) -> list[Any]:
    """Everything the run's model holds of each entity, live (by id and by code) or finished."""
    store = v._stepper.store

    def held(e: Entity) -> tuple[Any, ...]:
        family = (e.parent.key if e.parent else None, [c.key for c in e.children or ()])
        kept = (e.seen, e.last_own, e.last_event, e.last_child, list(e.history), e.packed, e.attrs, e.callers)
        return (e.key, e.states, e.observed, e.expired_by_clock, family, kept)

    return [
        *(held(e) for e in store.entities.values()),
        *(held(e) for e in store.by_code.values()),
        *store.outcomes(),
    ]


@pytest.mark.parametrize(("view", "window"), [("all", 0), ("payer", 0), ("payee", 0), ("all", 3)])
def test_steps_written_for_their_plans_judge_every_golden_input_as_the_generic_step_does(
    view: str, window: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each plan's own step function (readers in place, the fixed move followed there): the same reports
    and the same coverage as the generic step, byte for byte, in every view (one party's view takes
    the generic judging where an unseen call may explain an answer), and with entities packed when
    they rest through 3 exchanges (a packed entity is found through the store)."""
    assert Stepper.generated, "the pure build writes each plan's step"
    if window:
        monkeypatch.setattr(entities, "WINDOW", window)
    for path in _judged_inputs(tmp_path):
        out = []
        for stepper in (Stepper, _GenericSteps):
            v = Validator(stepper=stepper, coverage=True, config=Config(view=view))
            v.feed_file(str(path))
            report = v.finish()
            cov = v.coverage
            assert cov is not None
            out.append((render(report, "json"), render(report, "text"), dataclasses.asdict(cov), _model(v)))
            generated = stepper is Stepper
            assert bool(v._stepper._runs) == generated
        assert out[0] == out[1], (view, path.name)


def test_an_operation_s_written_step_is_deterministic_and_compiled_once_a_spec() -> None:
    """The source of an operation's step names the spec's keys as literals, is the same text each time,
    and a second stepper of the same spec makes its functions from the same compiled code."""
    from fsm.stepper import core

    stepper = Stepper(SPEC, engines_for(SPEC))
    redeem = stepper._steps["redeem-voucher"]
    source = core._run_source(("_auth", "_lifecycle", "_actors"), redeem, "payee")
    assert source == core._run_source(("_auth", "_lifecycle", "_actors"), redeem, "payee")  # deterministic
    assert "params.get('voucherId', MISSING)" in source and "role != 'payee'" in source
    again = Stepper(SPEC, engines_for(SPEC))
    first, second = stepper._runs["redeem-voucher"], again._runs["redeem-voucher"]
    assert first is not second and first.__code__ is second.__code__  # type: ignore[attr-defined]


@pytest.mark.parametrize("generated", [True, False])
def test_a_role_an_accepted_call_gives_its_caller_is_held_against_that_token_later(generated: bool) -> None:
    """A voucher met mid-flow, redeemed with the payer's token: that token is its payee's from then on,
    so resolving it with the same token is the payee's call (``actor.wrong-role``), by either step."""

    class Steps(Stepper):
        pass

    Steps.generated = generated
    b = TrafficBuilder(seed=5)
    names = _flow(b)
    v, payer = names["voucher"], names["payer"]
    stepper = Steps(SPEC, engines_for(SPEC))
    rules = []
    for n, record in enumerate([b.get_voucher(payer, v), b.redeem_simple(payer, v), b.resolve(payer, v)]):
        ex, routed = _exchange(record, n)
        rules.append([f.rule_id for f in stepper.step(ex, routed)])
    assert rules == [[], [], ["actor.wrong-role"]]
    assert stepper.state_of("voucher", v.id) == ("RESOLVED",)


def test_an_operation_written_as_one_function_stops_its_steps_where_one_says_so_runs_its_other_checks() -> (
    None
):
    """The lifecycle steps of an operation's own function run until one returns False; the other checks
    all run, in order, and the exchange's findings are theirs."""
    from fsm.stepper import core
    from fsm.stepper.lifecycle import factory

    stepper = Stepper(SPEC, engines_for(SPEC))
    ran: list[str] = []

    def step(name: str, goes_on: bool) -> Any:
        return lambda call, findings: ran.append(name) or goes_on

    def check(name: str) -> Any:
        return lambda call, findings: (ran.append(name), findings.append(name))

    op = SPEC.operation("reserve-voucher")
    ex, _ = _exchange(TrafficBuilder(seed=2).sign_in_payer()[1], 0)
    plan = dataclasses.replace(stepper._steps[op.id][0], stops_timer=True)  # (not written in: called)
    for first, want in ((False, ["s0", "after"]), (True, ["s0", "s1", "s2", "after"])):
        ran.clear()
        steps = (step("s0", first), step("s1", True), step("s2", False), step("s3", True))
        checks = (None, check("after"))
        make = factory(core._run_source(("_lifecycle", "_payments"), [plan] * len(steps)))
        run = make(
            stepper,
            stepper.lifecycle,
            checks,
            [plan] * 4,
            steps,
            Call.__new__(Call),
            core.Seen,
            op,
            MISSING,
            5,
        )
        assert run(ex, {}, False) == ["after"] and ran == want


@pytest.mark.parametrize("generated", [True, False])
def test_a_call_for_another_role_names_the_last_entity_it_touched(generated: bool) -> None:
    """A session opened with the payer's token: ``actor.wrong-role`` names the new session (the last
    entity the call touched), not its context, by either step."""

    class Steps(Stepper):
        pass

    Steps.generated = generated
    b = TrafficBuilder(seed=6)
    o = b.open_session()
    session, opened = b.session_open(o.payer, o.ctx["code"])
    stepper = Steps(SPEC, engines_for(SPEC))
    found = []
    for n, record in enumerate([*o.records, opened]):
        ex, routed = _exchange(record, n)
        found = stepper.step(ex, routed)
    assert [(f.rule_id, f.entity) for f in found] == [("actor.wrong-role", f"session:{session.id}")]


@pytest.mark.parametrize("generated", [True, False])
def test_a_resource_token_is_the_payee_s_wherever_it_is_used(generated: bool) -> None:
    """Another context's payee closing a context: ``actor.wrong-role`` from the payee (and the wrong
    context), though nothing in this context records a role for that token, by either step."""

    class Steps(Stepper):
        pass

    Steps.generated = generated
    b = TrafficBuilder(seed=7)
    o, other = b.open_session(), b.open_session()
    stepper = Steps(SPEC, engines_for(SPEC))
    found = []
    for n, record in enumerate([*o.records, *other.records, b.context_close(other.payee, o.ctx)]):
        ex, routed = _exchange(record, n)
        found = stepper.step(ex, routed)
    assert [(f.rule_id, f.actual) for f in found if f.rule_id.startswith("actor.")] == [
        ("actor.wrong-role", "payee"),
        ("actor.wrong-context", o.ctx["code"]),
    ]


@pytest.mark.parametrize("generated", [True, False])
def test_a_token_first_met_in_a_read_is_judged_by_its_claims(generated: bool) -> None:
    """A payee's token whose sign-in the log does not hold, first used to read another context's voucher:
    its claims make it that payee's (``actor.wrong-context``), by either step."""

    class Steps(Stepper):
        pass

    Steps.generated = generated
    b = TrafficBuilder(seed=8)
    o, other = b.open_session(), b.open_session()
    v, reserved = b.session_reserve(o.payee, o.session)
    stepper = Steps(SPEC, engines_for(SPEC))
    found = []
    for n, record in enumerate([*o.records, reserved, b.get_voucher(other.payee, v)]):
        ex, routed = _exchange(record, n)
        found = stepper.step(ex, routed)
    assert [f.rule_id for f in found] == ["actor.wrong-context"]
