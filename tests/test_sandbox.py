"""The sandbox (issue 17) over real HTTP: uvicorn on 127.0.0.1 started here, httpx clients."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fsm import Validator, Violation
from fsm.exchange import Exchange, build_exchange
from fsm.sandbox import FAULTS, Sandbox
from fsm.sandbox.serve import RunningSandbox, free_port, running
from tests.sandbox_flows import (
    CUSTOM,
    EURC,
    USDC,
    Api,
    contract_call,
    open_context,
    parties,
    payment,
    sign_in_payer,
    simple_payment,
    two_payments,
)

pytest_plugins = ["pytester"]


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    """A sandbox with no fault, recording to JSONL."""
    with running(seed=7, record=tmp_path_factory.mktemp("sandbox") / "clean.jsonl") as server:
        yield server


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    """A sandbox whose faults the tests switch on one at a time."""
    with running(seed=8, record=tmp_path_factory.mktemp("sandbox") / "faults.jsonl") as server:
        yield server


@pytest.fixture
def http(clean: RunningSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=clean.url, timeout=10) as client:
        yield client


@pytest.fixture
def scratch(faulty: RunningSandbox) -> Iterator[httpx.Client]:
    """A client of the sandbox whose recording no test expects clean (bad requests, clock moves)."""
    with httpx.Client(base_url=faulty.url, timeout=10) as client:
        yield client


def findings_per_exchange(path: Path) -> list[list[Violation]]:
    """The violations each record of a recording draws, in order (one list a line)."""
    v = Validator()
    lines = path.read_bytes().splitlines()
    return [v.feed(orjson.loads(line), source=str(path), line=n) for n, line in enumerate(lines, 1)]


def problems(path: Path) -> list[str]:
    """Errors and warnings of a whole recording, as ``rule line``."""
    from fsm import validate_log

    report = validate_log(path)
    assert report.totals.judged == report.totals.read > 0
    return [
        f"{x.rule_id} {x.location} {x.message}"
        for x in report.violations
        if x.severity.name in ("ERROR", "WARNING")
    ]


# ---------------------------------------------------------------------------- flows
def test_the_documented_flows_run_against_the_sandbox_and_its_recording_validates_clean(
    clean: RunningSandbox, http: httpx.Client
) -> None:
    flows = [two_payments(http), simple_payment(http), contract_call(http)]
    challenge = Api(http).ok("GET", "/auth/get-challenge")["challenge"]
    email = {"type": "email-password", "data": {"email": "a@b.example", "password": "p" * 12}}
    assert len(challenge) == 48 and Api(http).ok("POST", "/auth/sign-up", email)["role"] == "user"
    currencies = Api(http).ok("GET", "/finance/currencies", network="polygon")
    assert {c["symbol"] for c in currencies} == {"EURC", "USDC"}
    assert len({f["context"]["id"] for f in flows}) == 3
    recording = http.get("/_sandbox/recording")
    assert recording.status_code == 200 and recording.content == clean.record.read_bytes()
    assert problems(clean.record) == []
    text = clean.record.read_text()
    for f in flows:  # secrets fingerprinted (D29)
        assert f["payer"].token not in text and f["payee"].token not in text
    assert "Bearer tok:" in text and "voucher::context::code::" in text


def test_bad_requests_get_the_documented_errors_with_pointers_and_never_a_500(scratch: httpx.Client) -> None:
    http = scratch
    payer, ctx, payee = parties(http)
    v = payee.ok("POST", "/vouchers/reserve-voucher", {"code": ctx["code"]})
    bad = payment(EURC, "-5")
    del bad["wallet"]
    status, out = payee.call("POST", f"/vouchers/{v['id']}/redeem-voucher", {"expectedPayment": bad})
    assert status == 400 and out["code"] == "validation_failed"
    assert {e["pointer"] for e in out["errors"]} >= {"/expectedPayment/amount", "/expectedPayment"}
    status, out = Api(http).call("GET", f"/vouchers/{v['id']}")
    assert (status, out["code"]) == (401, "unauthorized")
    status, out = payee.call("GET", "/vouchers/vch_000000ffff")
    assert (status, out["code"]) == (404, "not_found")
    assert payee.call("POST", "/nowhere", {})[1]["code"] == "not_found"
    r = http.post(
        "/api/v1/vouchers/reserve-voucher",
        content=b"{not json",
        headers={"authorization": f"Bearer {payee.token}"},
    )
    assert (r.status_code, r.json()["code"]) == (400, "validation_failed")
    status, out = payer.call("POST", f"/vouchers/{v['id']}/redeem-voucher", {"expectedPayment": payment()})
    assert (status, out["code"]) == (401, "unauthorized")  # the payer's token on a payee call (D10)
    receipts = {"receipts": [{"paymentId": "pay_1"}]}
    status, out = payer.call("POST", f"/vouchers/{v['id']}/resolve-voucher", receipts)
    assert (status, out["code"]) == (400, "not_redeemed")


def test_parallel_clients_on_many_contexts_get_a_recording_that_validates_clean(
    clean: RunningSandbox,
) -> None:
    def one(n: int) -> None:
        with httpx.Client(base_url=clean.url, timeout=10) as client:
            (two_payments, simple_payment, contract_call)[n % 3](client)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(16)))
    assert problems(clean.record) == []


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    plan=st.lists(
        st.tuples(st.integers(0, 3), st.lists(st.sampled_from("rnsdxgqvio"), max_size=8)),
        min_size=1,
        max_size=3,
    )
)
def test_random_multi_session_flows_leave_a_recording_that_validates_clean(
    clean: RunningSandbox, http: httpx.Client, plan: list[tuple[int, list[str]]]
) -> None:
    """Sessions with random voucher calls, legal or not: every answer is the model's, the log is clean."""
    rng = random.Random(len(plan))
    payer, ctx, payee = parties(http, rng)
    for reserved, moves in plan:
        s = payee.ok(
            "POST", "/vouchers/sessions/session-open", {"code": ctx["code"], "type": "SESSION_DEFAULT"}
        )
        payer.ok("POST", f"/vouchers/sessions/{s['id']}/session-join", {})
        vouchers = [
            payee.ok("POST", f"/vouchers/sessions/{s['id']}/reserve-voucher", {})["id"]
            for _ in range(reserved)
        ]
        for i, move in enumerate(moves):
            if not vouchers:
                break
            path = f"/vouchers/{vouchers[i % len(vouchers)]}"
            calls: dict[str, tuple[Api, str, str, object]] = {
                "r": (payee, "POST", "/redeem-voucher", {"expectedPayment": payment(EURC)}),
                "n": (payer, "POST", "/negotiate-voucher", {"suppliedPayment": payment(USDC)}),
                "s": (payer, "POST", "/resolve-voucher", {"receipts": [{"paymentId": "pay_9"}]}),
                "d": (payee, "POST", "/discard-voucher", {}),
                "x": (payee, "POST", "/redeem-voucher", CUSTOM),
                "g": (payer, "GET", "", None),
                "v": (payer, "POST", "/sign-voucher", {"publicKey": "0x" + "5" * 64, "signature": "s" * 16}),
                "i": (payee, "POST", "/submit/interop-init?id=int_1", {"signature": "t" * 16}),
                "o": (payer, "GET", "/status/interop-info?id=int_1", None),
            }
            party, method, tail, body = calls.get(move, (payee, "GET", "", None))
            status, _ = party.call(method, path + tail if move != "q" else "/vouchers", body)
            assert status in (200, 400)
        for vid in vouchers:  # finish every voucher, so the session may close cleanly
            if payer.call("GET", f"/vouchers/{vid}")[1]["status"] in ("RESERVED", "REDEEMED"):
                payee.ok("POST", f"/vouchers/{vid}/discard-voucher", {})
        payee.ok("POST", f"/vouchers/sessions/{s['id']}/session-close", {})
        assert payer.ok("GET", f"/vouchers/sessions/{s['id']}")["status"] == "CLOSED"
    assert payer.ok("GET", f"/vouchers/contexts/{ctx['id']}")["status"] == "OPEN"
    payer.ok("POST", f"/vouchers/contexts/{ctx['id']}/context-close", {"payeeId": None})
    assert [c["id"] for c in payer.ok("GET", "/vouchers/contexts")][:1] == [ctx["id"]]
    assert http.get("/_sandbox/").json()["self_findings"] == 0  # the sandbox's own model agreed
    assert problems(clean.record) == []


# ---------------------------------------------------------------------------- control
def test_the_admin_api_inspects_resets_moves_the_clock_and_lists_faults(scratch: httpx.Client) -> None:
    http = scratch
    payer, ctx, payee = parties(http)
    v = payee.ok("POST", "/vouchers/reserve-voucher", {"code": ctx["code"]})
    seen = http.get(f"/_sandbox/entities/voucher/{v['id']}").json()
    assert (seen["states"], seen["context"], seen["body"]["status"]) == (["RESERVED"], ctx["id"], "RESERVED")
    before = http.get("/_sandbox/clock").json()["now"]
    after = http.post("/_sandbox/clock", json={"advance": 200}).json()["now"]
    assert after > before
    assert payee.ok("GET", f"/vouchers/{v['id']}")["status"] == "EXPIRED"  # the sandbox clock expired it
    status, out = payee.call("POST", f"/vouchers/{v['id']}/redeem-voucher", {"expectedPayment": payment()})
    assert (status, out["code"]) == (400, "validation_failed")  # expired: refused (no code documented)
    assert http.post("/_sandbox/clock", json={"set": "2020-01-01T00:00:00Z"}).status_code == 400  # never back
    faults = http.get("/_sandbox/faults").json()
    assert {f["name"]: f["rule"] for f in faults} == {f.name: f.rule for f in FAULTS.values()}
    assert http.post("/_sandbox/faults", json={"on": ["nonsense"]}).status_code == 400
    assert http.post("/_sandbox/reset", json={"context": ctx["id"]}).status_code == 200
    assert http.get(f"/_sandbox/entities/voucher/{v['id']}").status_code == 404
    assert payee.call("GET", f"/vouchers/{v['id']}")[0] == 404
    assert http.post("/_sandbox/reset", json={"context": "ctx_nope"}).status_code == 404
    other = open_context(payer)
    assert http.post("/_sandbox/reset", json={}).json()["contexts"] == 0  # all of them, tokens too
    assert payer.call("GET", f"/vouchers/contexts/{other['id']}")[0] == 401


def test_browsers_on_another_origin_get_cors_answers_and_preflights(scratch: httpx.Client) -> None:
    http = scratch
    pre = http.options(
        "/api/v1/vouchers/contexts/context-open",
        headers={
            "origin": "http://app.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type",
        },
    )
    assert pre.status_code == 204
    assert pre.headers["access-control-allow-origin"] == "http://app.example"
    assert "authorization" in pre.headers["access-control-allow-headers"]
    assert "POST" in pre.headers["access-control-allow-methods"]
    r = http.get("/api/v1/finance/networks", headers={"origin": "http://app.example"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://app.example"


def test_a_recording_killed_with_sigkill_keeps_every_exchange_answered_and_a_har_one_validates(
    tmp_path: Path,
) -> None:
    for name in ("killed.jsonl", "killed.har"):
        record = tmp_path / name
        with (
            running(seed=3, record=record) as server,
            httpx.Client(base_url=server.url, timeout=10) as client,
        ):
            two_payments(client)
            answered = client.get("/_sandbox/").json()["exchanges"]
            os.kill(server.pid, signal.SIGKILL)
        if name.endswith(".har"):
            entries = orjson.loads(record.read_bytes())["log"]["entries"]
            assert len(entries) == answered
        else:
            assert len(record.read_bytes().splitlines()) == answered == 12
        assert problems(record) == []


def test_the_same_seed_gives_the_same_answers() -> None:
    def run(seed: int) -> list[object]:
        sb = Sandbox(seed=seed)
        out = []
        for body in ({"type": "mobile-device", "data": {"installationId": "i" * 40, "password": "p" * 40}},):
            _, answer, _ = sb.handle("POST", "/api/v1/auth/sign-in", {}, {}, orjson.dumps(body))
            token = answer["authorization"]["token"]
            out.append(answer)
            ctx_body = {"format": "numeric", "payers": [{"address": "0x" + "1" * 40}]}
            out.append(
                sb.handle(
                    "POST",
                    "/api/v1/vouchers/contexts/context-open",
                    {},
                    {"authorization": f"Bearer {token}"},
                    orjson.dumps(ctx_body),
                )[1]
            )
        return out

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_the_sandbox_reads_a_callers_token_as_the_validator_reads_it() -> None:
    """One reading (fsm.exchange.bearer_token): Bearer in any case, or a bare token; Basic is no token."""
    sb = Sandbox(seed=1)
    body = {"type": "mobile-device", "data": {"installationId": "i" * 40, "password": "p" * 40}}
    _, answer, _ = sb.handle("POST", "/api/v1/auth/sign-in", {}, {}, orjson.dumps(body))
    token = answer["authorization"]["token"]
    ctx_body = orjson.dumps({"format": "numeric", "payers": [{"address": "0x" + "1" * 40}]})
    for auth, status in (
        (f"Bearer {token}", 200),
        (f"bearer  {token} ", 200),
        (token, 200),
        (f"Basic {token}", 401),
        ("Bearer ", 401),
    ):
        headers = {"authorization": auth}
        got, out, _ = sb.handle("POST", "/api/v1/vouchers/contexts/context-open", {}, headers, ctx_body)
        assert (got, auth) == (status, auth), out
        read = build_exchange(
            {"request": {"method": "POST", "path": "/", "headers": headers}, "response": {"status": got}},
            0,
            "<t>",
            None,
            False,
        )
        assert isinstance(read, Exchange) and (read.token == token) == (status == 200), auth


def test_the_sandbox_takes_the_status_of_a_generic_refusal_from_the_spec() -> None:
    """not_found, unauthorized and validation_failed answer with the statuses the spec gives them (D15)."""
    import dataclasses

    from fsm.spec import load_spec

    spec = load_spec()
    moved = {"not_found": 410, "unauthorized": 403, "validation_failed": 422}
    sb = Sandbox(seed=1, spec=dataclasses.replace(spec, generic_statuses={**spec.generic_statuses, **moved}))
    body = {"type": "mobile-device", "data": {"installationId": "i" * 40, "password": "p" * 40}}
    _, answer, _ = sb.handle("POST", "/api/v1/auth/sign-in", {}, {}, orjson.dumps(body))
    bearer = {"authorization": f"Bearer {answer['authorization']['token']}"}
    ctx_body = orjson.dumps({"format": "numeric", "payers": [{"address": "0x" + "1" * 40}]})
    asked = [
        ("GET", "/api/v1/nowhere", {}, b""),
        ("POST", "/api/v1/vouchers/contexts/context-open", bearer, b"{"),
        ("POST", "/api/v1/vouchers/contexts/context-open", {}, ctx_body),
        ("GET", "/api/v1/vouchers/vch_unknown", bearer, b""),
    ]
    got = [sb.handle(method, path, {}, headers, raw)[:2] for method, path, headers, raw in asked]
    assert [(status, out["code"]) for status, out in got] == [
        (410, "not_found"),
        (422, "validation_failed"),
        (403, "unauthorized"),
        (410, "not_found"),
    ]


# ---------------------------------------------------------------------------- faults
def _session(http: httpx.Client) -> tuple[Api, Api, dict, dict]:
    payer, ctx, payee = parties(http)
    s = payee.ok("POST", "/vouchers/sessions/session-open", {"code": ctx["code"], "type": "SESSION_DEFAULT"})
    payer.ok("POST", f"/vouchers/sessions/{s['id']}/session-join", {})
    v = payee.ok("POST", f"/vouchers/sessions/{s['id']}/reserve-voucher", {})
    return payer, payee, s, v


def _redeem(payee: Api, v: dict, pay: dict | None = None) -> tuple[int, object]:
    return payee.call("POST", f"/vouchers/{v['id']}/redeem-voucher", {"expectedPayment": pay or payment()})


def _double_redeem(http: httpx.Client) -> None:
    _, payee, _, v = _session(http)
    _redeem(payee, v)
    _redeem(payee, v)


def _coupled_close(http: httpx.Client) -> None:
    payer, payee, s, v = _session(http)
    _redeem(payee, v)
    payee.call("POST", f"/vouchers/sessions/{s['id']}/session-close", {})
    payer.call("GET", f"/vouchers/{v['id']}")


def _expired_redeem(http: httpx.Client) -> None:
    _, payee, _, v = _session(http)
    http.post("/_sandbox/clock", json={"advance": 200})
    _redeem(payee, v)


def _payee_joins(http: httpx.Client) -> None:
    _, ctx, payee = parties(http)
    s = payee.ok("POST", "/vouchers/sessions/session-open", {"code": ctx["code"], "type": "SESSION_DEFAULT"})
    payee.call("POST", f"/vouchers/sessions/{s['id']}/session-join", {})


def _reserve_after_close(http: httpx.Client) -> None:
    _, payee, s, v = _session(http)
    payee.call("POST", f"/vouchers/{v['id']}/discard-voucher", {})
    payee.call("POST", f"/vouchers/sessions/{s['id']}/session-close", {})
    payee.call("POST", f"/vouchers/sessions/{s['id']}/reserve-voucher", {})


def _get_after_redeem(http: httpx.Client) -> None:
    _, payee, _, v = _session(http)
    _redeem(payee, v)
    payee.call("GET", f"/vouchers/{v['id']}")


def _contradiction(http: httpx.Client) -> None:
    _, payee, _, v = _session(http)
    _redeem(payee, v, dict(payment(EURC), currencyAddress=USDC[2]))


SCENARIOS: dict[str, Callable[[httpx.Client], None]] = {
    "double-redeem": _double_redeem,
    "coupled-close": _coupled_close,
    "wrong-refusal-code": _double_redeem,
    "wrong-status": _get_after_redeem,
    "drop-field": lambda http: open_context(sign_in_payer(http)) and None,
    "ignore-expiry": _expired_redeem,
    "payee-as-payer": _payee_joins,
    "reserve-in-closed-session": _reserve_after_close,
    "other-terms-in-get": _get_after_redeem,
    "registry-contradiction": _contradiction,
}


def test_every_fault_has_a_scenario_and_the_list_names_its_rule() -> None:
    assert set(SCENARIOS) == set(FAULTS)
    out = subprocess.run(
        [sys.executable, "-m", "fsm", "serve", "--list-faults"], capture_output=True, text=True, check=True
    ).stdout
    for f in FAULTS.values():
        assert any(line.split()[:2] == [f.name, f.rule] for line in out.splitlines())


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_each_fault_draws_its_rule_first_at_the_exchange_where_it_acted(
    faulty: RunningSandbox, name: str
) -> None:
    with httpx.Client(base_url=faulty.url, timeout=10) as http:
        assert http.post("/_sandbox/faults", json={"on": [name]}).status_code == 200
        try:
            SCENARIOS[name](http)
        finally:
            state = {f["name"]: f for f in http.post("/_sandbox/faults", json={"off": [name]}).json()}
    acted = state[name]["acted"]
    assert acted, f"{name} never acted"
    per_exchange = findings_per_exchange(faulty.record)
    first = per_exchange[acted[-1]]
    assert first and first[0].rule_id == FAULTS[name].rule, (name, [x.rule_id for x in first])


def test_a_fault_switched_off_leaves_the_same_calls_clean(clean: RunningSandbox) -> None:
    with httpx.Client(base_url=clean.url, timeout=10) as http:
        for scenario in (_double_redeem, _contradiction, _payee_joins, _reserve_after_close):
            scenario(http)
        assert all(f["acted"] == [] for f in http.get("/_sandbox/faults").json())
    assert problems(clean.record) == []


def test_serve_starts_on_the_port_given_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fsm", "serve", "--port", str(port)], stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/api/v1/finance/networks").status_code == 200
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) in (0, -signal.SIGTERM)  # (uvicorn re-raises the signal it stopped on)
        assert proc.stderr is not None and b"Traceback" not in proc.stderr.read()
        proc.stderr.close()


def test_the_plugins_voucher_sandbox_fixture_runs_the_pages_example_and_takes_a_fault_marker(
    pytester: pytest.Pytester,
) -> None:
    """docs/sandbox.md's pytest example passes; a marked fault reaches the server the fixture starts."""
    import re

    page = (Path(__file__).resolve().parents[1] / "docs" / "sandbox.md").read_text()
    example = next(b for b in re.findall(r"```python\n(.*?)```", page, re.S) if "voucher_sandbox" in b)
    pytester.makepyfile(
        example
        + """

@pytest.mark.voucher_sandbox(faults=["drop-field"])
def test_a_fault_from_the_marker(voucher_sandbox):
    faults = httpx.get(voucher_sandbox + "/_sandbox/faults").json()
    assert [f["name"] for f in faults if f["on"]] == ["drop-field"]
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["code", "type", "data", "expectedPayment", "amount", "receipts"]),
            inner,
            max_size=3,
        )
    ),
    max_leaves=8,
)


def _operations() -> list[str]:
    from fsm.spec import load_spec

    return [op.id for op in load_spec().operations]


@pytest.mark.parametrize("op_id", _operations())
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_request_to_any_operation_gets_a_json_answer_never_a_500(
    scratch: httpx.Client, op_id: str, data: st.DataObject
) -> None:
    """Random bodies, ids and callers on every operation: a documented JSON answer, no 5xx."""
    from fsm.spec import load_spec

    op = load_spec().operation(op_id)
    ident = data.draw(st.sampled_from(["vch_1234560000", "ses_x", "ctx_x", "%00", "..", "a" * 300]))
    body = data.draw(JSON, label="body")
    raw = data.draw(st.sampled_from([orjson.dumps(body), b"", b"{", b"\xff\xfe"]), label="raw")
    token = data.draw(st.sampled_from([None, "nonsense", "a.b.c"]), label="token")
    calls = [(re.sub(r"\{[^}]+\}", ident, op.path), token)]
    payer, ctx, payee = parties(scratch)  # and the same with real ids and a real caller of each role
    s = payee.ok("POST", "/vouchers/sessions/session-open", {"code": ctx["code"]})
    v = payee.ok("POST", f"/vouchers/sessions/{s['id']}/reserve-voucher", {})
    real = op.path.format(contextId=ctx["id"], sessionId=s["id"], voucherId=v["id"])
    calls += [(real, payer.token), (real, payee.token)]
    for path, tok in calls:
        headers = {"authorization": f"Bearer {tok}"} if tok else {}
        content = raw if op.method == "POST" else None
        r = scratch.request(op.method, "/api/v1" + path, content=content, headers=headers)
        assert r.status_code < 500, (op.id, r.status_code, r.text)
        assert r.headers["content-type"] == "application/json" and isinstance(r.json(), (dict, list, str))
        if r.status_code >= 400:
            assert isinstance(r.json()["code"], str)


def test_keep_secrets_records_the_tokens_as_they_were_and_warns(tmp_path: Path) -> None:
    record = tmp_path / "raw.jsonl"
    with (
        running(seed=4, record=record, keep_secrets=True) as server,
        httpx.Client(base_url=server.url) as http,
    ):
        payer = sign_in_payer(http)
        open_context(payer)
    assert payer.token is not None and payer.token in record.read_text()
    args = ["--record", str(tmp_path / "x.jsonl"), "--keep-secrets", "--port", str(free_port())]
    proc = subprocess.Popen([sys.executable, "-m", "fsm", "serve", *args], stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()  # (said before the server starts)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()
    assert first.startswith("warning:") and "in the clear (--keep-secrets)" in first


def test_the_sandbox_clock_writes_times_as_isoformat_does_and_refuses_to_leave_year_9999() -> None:
    """Times are written once a second plus milliseconds (not ``isoformat``): the same text, always."""
    from datetime import UTC, datetime, timedelta

    from fsm.exchange import format_timestamp
    from fsm.sandbox.core import SandboxClock, _iso

    start = datetime(2026, 6, 9, 23, 59, 58, 999_999, tzinfo=UTC)
    for step in range(0, 3_000_000, 4_321):  # across seconds, a minute, an hour and a day
        t = start + timedelta(microseconds=step)
        assert _iso(t) == t.isoformat(timespec="milliseconds")[:23] + "Z"
    assert format_timestamp(0) == "1970-01-01T00:00:00.000Z"
    clock = SandboxClock()
    before = clock.peek()
    with pytest.raises(OverflowError):
        clock.advance(1e12)  # (past year 9999: refused, the clock unmoved)
    assert clock.peek() == before
    assert clock.stamp()[1] == _iso(before + timedelta(milliseconds=5))


def test_without_httptools_and_uvloop_uvicorns_pure_python_parts_serve_the_same_flows(tmp_path: Path) -> None:
    """The ``serve`` extra's speed-ups are optional: uvicorn falls back to h11 and asyncio, same answers."""
    from fsm.sandbox.serve import wait_answering

    record = tmp_path / "pure.jsonl"
    port = free_port()
    blocked = "sys.modules['httptools'] = sys.modules['uvloop'] = None"  # (importing them fails)
    code = f"import sys; {blocked}; from fsm.cli import main; main()"
    args = [sys.executable, "-c", code, "serve", "--port", str(port), "--seed", "5", "--record", str(record)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_answering(proc, url, 30)
        with httpx.Client(base_url=url, timeout=10) as client:
            flow = two_payments(client)
            assert client.get("/_sandbox/").json()["exchanges"] > 10
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
        proc.stderr.close()
    assert "Traceback" not in err and "httptools" not in err
    assert problems(record) == []
    assert flow["payer"].token not in record.read_text()
