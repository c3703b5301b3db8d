"""Build the conformance corpus: ``tests/corpus/<case>/{traffic.jsonl|traffic.har, expected.json}``.

Each case is written here by hand: the traffic, and the rule ids it must raise
at which record. Expectations are authored, never taken from the validator's
output. Run ``python tests/corpus/make_corpus.py`` after changing a case; a
test fails when the committed files differ from what this script writes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from copy import deepcopy
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parents[1]))

from fsm.generate import TrafficBuilder, _iso, to_har  # noqa: E402

Expect = list[tuple[str, int | None]]  # (rule id, 0-based record index; None = end of log)
CASES: dict[str, Callable[[], tuple[list[Any], Expect, str]]] = {}
SETTINGS: dict[str, dict[str, Any]] = {}  # case -> the settings it runs with (config file keys)


def case(
    name: str, doc: str, fmt: str = "jsonl", settings: dict[str, Any] | None = None
) -> Callable[..., Any]:
    """Register a case builder: it returns (records, expected); ``settings`` it runs with, if any."""

    def register(fn: Callable[[], tuple[list[Any], Expect]]) -> Callable[[], tuple[list[Any], Expect]]:
        def build() -> tuple[list[Any], Expect, str]:
            records, expected = fn()
            return records, expected, fmt

        build.__doc__ = doc
        CASES[name] = build
        if settings:
            SETTINGS[name] = settings
        return fn

    return register


class Flow:
    """A session flow under construction, with handy references."""

    def __init__(self, seed: int = 1, join: bool = True) -> None:
        self.b = TrafficBuilder(seed)
        o = self.b.open_session(join=join)
        self.records: list[Any] = o.records
        self.payer, self.ctx, self.payee, self.session = o.payer, o.ctx, o.payee, o.session

    def add(self, record: Any) -> int:
        self.records.append(record)
        return len(self.records) - 1

    def voucher(self) -> Any:
        v, rec = self.b.session_reserve(self.payee, self.session)
        self.add(rec)
        return v

    def close(self) -> None:
        """The payee closes the session, then the payer the context."""
        self.add(self.b.session_close(self.payee, self.session))
        self.add(self.b.context_close(self.payer, self.ctx))

    def discard_and_close(self, v: Any) -> None:
        """The payee discards ``v``; then the session and the context close."""
        self.add(self.b.discard(self.payee, v))
        self.close()

    def redeem_refused(self, v: Any, code: str, status: int = 400) -> int:
        """A second redeem of ``v``, refused with ``code``; its index."""
        again = {"expectedPayment": self.b.payment()}
        return self.add(
            self.b.refused("POST", f"/vouchers/{v.id}/redeem-voucher", again, code, self.payee, status)
        )

    def finish(self, *vouchers: Any) -> None:
        for v in vouchers:
            if v.status == "REDEEMED":
                self.add(self.b.resolve(self.payer, v))
        self.add(self.b.session_close(self.payee, self.session))
        self.add(self.b.context_close(self.payer, self.ctx))


# ------------------------------------------------------------ clean flows
def _two_payments() -> tuple[list[Any], Expect]:
    f = Flow(seed=11)
    eurc = f.voucher()
    f.add(f.b.redeem_simple(f.payee, eurc, "EURC", "100"))
    usdc = f.voucher()
    f.add(f.b.redeem_simple(f.payee, usdc, "USDC", "50"))
    f.add(f.b.resolve(f.payer, eurc))
    f.add(f.b.resolve(f.payer, usdc))
    f.add(f.b.get_voucher(f.payee, eurc))
    f.close()
    return f.records, []


def _single_simple() -> tuple[list[Any], Expect]:
    b = TrafficBuilder(12)
    payer, r1 = b.sign_in_payer()
    ctx, r2 = b.context_open(payer)
    payee, r3 = b.sign_in_payee(ctx["code"])
    v, r4 = b.reserve(payee, ctx["code"])
    r5 = b.redeem_simple(payee, v, "EURC", "100")
    r6 = b.negotiate(payer, v, "USDC")
    r7 = b.resolve(payer, v)
    r8 = b.get_voucher(payee, v)
    r9 = b.context_close(payer, ctx)
    return [r1, r2, r3, r4, r5, r6, r7, r8, r9], []


def _custom_call() -> tuple[list[Any], Expect]:
    f = Flow(seed=13)
    v = f.voucher()
    f.add(f.b.redeem_custom(f.payee, v))
    f.add(f.b.resolve(f.payer, v))
    f.close()
    return f.records, []


for _name, _fn, _doc in (
    ("clean-two-payments", _two_payments, "The Sessions guide's flow: EURC + USDC vouchers in one session."),
    ("clean-single-simple", _single_simple, "A standalone SIMPLE payment with FX negotiation."),
    ("clean-custom-call", _custom_call, "A CUSTOM voucher carrying one contract call."),
):
    case(_name, _doc)(_fn)
    case(_name + "-har", _doc + " (HAR)", "har")(_fn)


@case("clean-retry-already-redeemed", "A retried redeem answered already_redeemed is fine (D19).")
def _retry() -> tuple[list[Any], Expect]:
    f = Flow(seed=14)
    v = f.voucher()
    redeem = f.b.redeem_simple(f.payee, v)
    f.add(redeem)
    f.add(
        f.b.refused(
            "POST",
            redeem["request"]["path"].removeprefix("/api/v1"),
            redeem["request"]["body"],
            "already_redeemed",
            f.payee,
        )
    )
    f.add(f.b.negotiate(f.payer, v))
    f.add(f.b.negotiate(f.payer, v, "EURC"))
    f.finish(v)
    return f.records, []


@case("clean-partial-adopted", "A log starting mid-flow: entities are adopted, not flagged (D18).")
def _partial() -> tuple[list[Any], Expect]:
    f = Flow(seed=15)
    v = f.voucher()
    f.add(f.b.redeem_simple(f.payee, v))
    f.add(f.b.resolve(f.payer, v))
    f.add(f.b.session_close(f.payee, f.session))
    return f.records[6:], []


@case(
    "clean-query-vouchers",
    "A payee lists its vouchers with integer paging parameters and a status filter; the payer starts an "
    "interop submission with its id and a payment index.",
)
def _query_ok() -> tuple[list[Any], Expect]:
    f = Flow(seed=16)
    v = f.voucher()
    f.add(f.b.record("GET", "/vouchers", response=[], query={"limit": "10", "offset": "0"}, token=f.payee))
    f.add(f.b.record("GET", "/vouchers", response=[], query={"status": "RESERVED"}, token=f.payee))
    f.add(f.b.interop_init(f.payer, v))
    f.records[-1]["request"]["query"]["paymentIndex"] = "10"
    f.discard_and_close(v)
    return f.records, []


@case(
    "clean-lenient-server",
    "A correct server that is not byte-identical: amounts and addresses echoed in another form (D23), "
    "a redeem two seconds after expiresAt by the log's clock (D24), a schema-broken request refused "
    "with validation_failed (D26).",
)
def _lenient() -> tuple[list[Any], Expect]:
    f = Flow(seed=17)
    v = f.voucher()
    i = f.add(f.b.redeem_simple(f.payee, v, "USDC", "100"))
    answer = f.records[i]["response"]["body"]["expectedPayment"]
    answer["amount"] = "100.00"
    answer["currencyAddress"] = answer["currencyAddress"].lower()
    answer["wallet"]["address"] = answer["wallet"]["address"].upper().replace("0X", "0x")
    f.add(f.b.get_voucher(f.payee, v))
    f.records[-1]["response"]["body"]["expectedPayment"]["amount"] = "100.0"
    f.add(f.b.resolve(f.payer, v))
    f.add(f.b.get_voucher(f.payee, v))
    f.records[-1]["response"]["body"]["expectedPayment"]["amount"] = "100.000"
    late = f.voucher()
    assert late.expires is not None
    f.b.now = late.expires  # redeemed 1 s after expiresAt by the log's clock, resolved 2 s after
    for seconds, record in ((1, f.b.redeem_simple(f.payee, late)), (2, f.b.resolve(f.payer, late))):
        f.b.now = late.expires + timedelta(seconds=seconds)
        f.add(dict(record, time=_iso(f.b.now)))
    f.add(f.b.session_close(f.payee, f.session))
    f.add(f.b.context_close(f.payer, f.ctx))
    return f.records, []


@case(
    "clean-session-adopted-by-get",
    "A log that first meets a session in a GET: adopted as OPEN, joined or not, so reserving in it is "
    "not 'reserve before join' (D18).",
)
def _adopted_by_get() -> tuple[list[Any], Expect]:
    f = Flow(seed=18)
    f.add(f.b.get_session(f.payee, f.session))
    v = f.voucher()
    f.add(f.b.get_session(f.payee, f.session))  # lists its voucher
    f.add(f.b.discard(f.payee, v))
    f.add(f.b.session_close(f.payee, f.session))
    return f.records[5:], []


@case(
    "clean-close-after-expiry",
    "A session closed after its open vouchers expired by the log's clock: they are final, so no "
    "warning (D4, D24); the server reports them EXPIRED later.",
)
def _close_after_expiry() -> tuple[list[Any], Expect]:
    f = Flow(seed=19)
    reserved, redeemed = f.voucher(), f.voucher()
    f.add(f.b.redeem_simple(f.payee, redeemed))
    f.b.now += timedelta(minutes=3)
    f.add(f.b.session_close(f.payee, f.session))
    for v in (reserved, redeemed):
        v.status = "EXPIRED"
        f.add(f.b.get_voucher(f.payee, v))
    f.add(f.b.context_close(f.payer, f.ctx))
    return f.records, []


# ------------------------------------------------------- one case per rule
@case("input-unreadable", "A line that is not JSON is reported and the run goes on (D21).")
def _unreadable() -> tuple[list[Any], Expect]:
    records, _ = _two_payments()
    records.insert(3, "{not json at all")
    return records, [("input.unreadable", 3)]


@case("input-bad-record", "A record without a response is reported as bad (D21).")
def _bad_record() -> tuple[list[Any], Expect]:
    records, _ = _two_payments()
    records.insert(2, {"time": records[1]["time"], "request": {"method": "GET", "path": "/api/v1/vouchers"}})
    return records, [("input.bad-record", 2)]


@case("input-body-not-json", "A redeem whose request body was captured as plain text.")
def _not_json() -> tuple[list[Any], Expect]:
    f = Flow(seed=16)
    v = f.voucher()
    i = f.add(f.b.redeem_simple(f.payee, v))
    req = f.records[i]["request"]
    req["bodyText"] = "expectedPayment=EURC&amount=100"
    del req["body"]
    f.finish(v)
    return f.records, [("input.body-not-json", i)]


@case("input-no-response", "A HAR entry with status 0 (aborted request).", "har")
def _no_response() -> tuple[list[Any], Expect]:
    records, _ = _two_payments()
    aborted = deepcopy(records[5])
    aborted["response"] = {"status": 0}
    records.insert(6, aborted)
    return records, [("input.no-response", 6)]


@case("route-unknown-path", "A typo in an operation path.")
def _unknown_path() -> tuple[list[Any], Expect]:
    records, _ = _two_payments()
    bad = deepcopy(records[5])
    bad["request"]["path"] = bad["request"]["path"].replace("/reserve-voucher", "/reserve")
    records.insert(6, bad)
    return records, [("route.unknown-path", 6)]


@case("route-unknown-method", "A method the operation does not take.")
def _unknown_method() -> tuple[list[Any], Expect]:
    f = Flow(seed=17)
    v = f.voucher()
    i = f.add(
        f.b.record("DELETE", f"/vouchers/{v.id}", status=404, response=f.b.error("not_found"), token=f.payee)
    )
    f.discard_and_close(v)
    return f.records, [("route.unknown-method", i)]


@case("route-out-of-scope", "Widget calls are outside the protocol: info once per path (D1).")
def _out_of_scope() -> tuple[list[Any], Expect]:
    f = Flow(seed=18)
    w = f.b.record("GET", "/widgets/wdgt_1/config", response={"config": None, "reason": "inactive"})
    i = f.add(w)
    f.add(f.b.record("GET", "/widgets/wdgt_1/config", response={"config": None, "reason": "inactive"}))
    v = f.voucher()
    f.discard_and_close(v)
    return f.records, [("route.out-of-scope", i)]


@case("route-outside-api", "A request outside /api/v1 (a page asset in a HAR).", "har")
def _outside() -> tuple[list[Any], Expect]:
    records, _ = _two_payments()
    asset = deepcopy(records[0])
    asset["request"] = {"method": "GET", "path": "/favicon.ico", "headers": {}}
    asset["response"] = {"status": 200, "headers": {}}
    records.insert(1, asset)
    return records, [("route.outside-api", 1)]


def _mechanics(f: Flow, record: Any, method: str, status: int, headers: dict[str, str]) -> Any:
    """``record`` made into HTTP mechanics: its method, status and headers, no bodies."""
    out = deepcopy(record)
    out["request"]["method"] = method
    out["request"]["headers"] = headers
    out["request"].pop("body", None)
    out["response"] = {"status": status, "headers": {}}
    return out


@case(
    "transport-http-mechanics",
    "A browser session with CORS preflights, a HEAD, a 307 redirect followed with its body, a 304 "
    "revalidation, a WebSocket upgrade and a data: URL: transport, one info per kind (D22).",
)
def _transport() -> tuple[list[Any], Expect]:
    f = Flow(seed=41)
    preflight = {"access-control-request-method": "POST", "origin": "https://app.example"}
    first = f.add(_mechanics(f, f.records[-1], "OPTIONS", 204, preflight))
    v = f.voucher()
    f.add(_mechanics(f, f.records[-1], "OPTIONS", 204, preflight))  # (said once a file)
    head = f.add(f.b.record("HEAD", f"/vouchers/sessions/{f.session.id}", token=f.payee))
    f.records[head]["response"] = {"status": 200, "headers": {}}
    redeem = f.b.redeem_simple(f.payee, v)
    moved = deepcopy(redeem)
    moved["response"] = {"status": 307, "headers": {"location": redeem["request"]["path"] + "?r=1"}}
    redirect = f.add(moved)
    f.add(redeem)  # followed, with its body: judged, nothing said
    get = f.b.record("GET", "/finance/networks")
    get["response"] = {"status": 304, "headers": {"etag": '"n1"'}}
    revalidated = f.add(get)
    socket = f.add(_mechanics(f, get, "GET", 101, {"upgrade": "websocket", "connection": "Upgrade"}))
    data = deepcopy(get)
    data["request"]["path"] = "data:image/png;base64,iVBORw0KGgo="
    data["response"] = {"status": 200, "headers": {}}
    inline = f.add(data)
    f.finish(v)
    return f.records, [
        ("transport.preflight", first),
        ("transport.head", head),
        ("transport.redirect", redirect),
        ("transport.not-modified", revalidated),
        ("transport.websocket", socket),
        ("transport.non-http", inline),
    ]


@case(
    "transport-tunnel",
    "A proxy's capture with the CONNECT tunnels it opened, one to the API, one to another host: "
    "transport, one info (D22); the calls that went through the tunnel are judged.",
)
def _tunnel() -> tuple[list[Any], Expect]:
    f = Flow(seed=44)
    tunnel = {
        "method": "CONNECT",
        "path": "api.bleepay.example:443",
        "headers": {"host": "api.bleepay.example:443"},
    }
    first = f.add({**deepcopy(f.records[-1]), "request": tunnel, "response": {"status": 200, "headers": {}}})
    v = f.voucher()
    other = {**tunnel, "path": "https://fonts.example.net", "headers": {}}
    f.add({**deepcopy(f.records[-1]), "request": other, "response": {"status": 200, "headers": {}}})
    f.discard_and_close(v)
    return f.records, [("transport.tunnel", first)]


@case(
    "transport-cache",
    "A GET answered again by the client's cache after the voucher was redeemed: the stale RESERVED "
    "is no answer of the server's (response.fromCache, a HAR's _fromCache): transport, one info (D22).",
)
def _cache() -> tuple[list[Any], Expect]:
    f = Flow(seed=43)
    v = f.voucher()
    first = f.b.get_voucher(f.payee, v)
    f.add(first)
    f.add(f.b.redeem_simple(f.payee, v))
    stale = f.b.get_voucher(f.payee, v)
    stale["response"] = {**deepcopy(first["response"]), "fromCache": True}
    cached = f.add(stale)
    f.finish(v)
    return f.records, [("transport.cache", cached)]


@case(
    "transport-body-lost",
    "A redeem answered 307 and followed without the body it carried (the capture lost it): judged "
    "as redeem, its body not checked, one info (D22).",
    "har",
)
def _body_lost() -> tuple[list[Any], Expect]:
    f = Flow(seed=42)
    v = f.voucher()
    redeem = f.b.redeem_simple(f.payee, v)
    moved = deepcopy(redeem)
    moved["response"] = {"status": 307, "headers": {"location": redeem["request"]["path"]}}
    redirect = f.add(moved)
    followed = deepcopy(redeem)
    del followed["request"]["body"]
    lost = f.add(followed)
    f.finish(v)
    return f.records, [("transport.redirect", redirect), ("transport.body-lost", lost)]


@case(
    "input-sanitized",
    "A HAR exported sanitized: no Authorization header, no cookie anywhere. One info for the file, "
    "not a warning a call (D10, D21).",
    "har",
)
def _sanitized() -> tuple[list[Any], Expect]:
    records, _ = _two_payments()
    for r in records:
        r["request"]["headers"].pop("authorization", None)
    return records, [("input.sanitized", None)]


@case("schema-request", "Redeem with amount 0: amounts must be greater than zero (D13).")
def _schema_request() -> tuple[list[Any], Expect]:
    f = Flow(seed=19)
    v = f.voucher()
    i = f.add(f.b.redeem_simple(f.payee, v, "EURC", "0"))
    f.finish(v)
    return f.records, [("schema.request", i), ("schema.response", i)]


@case("schema-response", "A session-open answer with a lowercase status.")
def _schema_response() -> tuple[list[Any], Expect]:
    f = Flow(seed=20)
    f.records[3]["response"]["body"]["status"] = "open"
    v = f.voucher()
    f.discard_and_close(v)
    return f.records, [("schema.response", 3)]


@case("schema-query", "query-vouchers with a limit that is not an integer.")
def _schema_query() -> tuple[list[Any], Expect]:
    f = Flow(seed=21)
    v = f.voucher()
    i = f.add(f.b.record("GET", "/vouchers", response=[], query={"limit": "ten"}, token=f.payee))
    f.discard_and_close(v)
    return f.records, [("schema.query", i)]


@case(
    "schema-query-interop",
    "interop-init without its required id and with paymentIndex 11, beyond 0-10 (protocol-facts 2.3, 3).",
)
def _schema_query_interop() -> tuple[list[Any], Expect]:
    f = Flow(seed=22)
    v = f.voucher()
    i = f.add(f.b.interop_init(f.payer, v))
    f.records[i]["request"]["query"] = {"paymentIndex": "11"}
    f.discard_and_close(v)
    return f.records, [("schema.query", i), ("schema.query", i)]


@case("schema-query-status", "query-vouchers filtered by a status that is none of the voucher statuses.")
def _schema_query_status() -> tuple[list[Any], Expect]:
    f = Flow(seed=23)
    v = f.voucher()
    i = f.add(f.b.record("GET", "/vouchers", response=[], query={"status": "LOST"}, token=f.payee))
    f.discard_and_close(v)
    return f.records, [("schema.query", i)]


@case(
    "schema-request-empty-receipt",
    "A resolve whose receipt names an empty paymentId (required, protocol-facts 2.3).",
)
def _empty_receipt() -> tuple[list[Any], Expect]:
    f = Flow(seed=24)
    v = f.voucher()
    f.add(f.b.redeem_simple(f.payee, v))
    i = f.add(f.b.resolve(f.payer, v))
    f.records[i]["request"]["body"]["receipts"][0]["paymentId"] = ""
    f.close()
    return f.records, [("schema.request", i)]


@case("schema-response-unreal-date", "A reserve answer whose expiresAt is February 30th (protocol-facts 3).")
def _unreal_date() -> tuple[list[Any], Expect]:
    f = Flow(seed=25)
    v = f.voucher()
    i = len(f.records) - 1
    f.records[i]["response"]["body"]["expiresAt"] = "2026-02-30T12:02:00.000Z"
    f.discard_and_close(v)
    return f.records, [("schema.response", i)]


@case(
    "schema-error-status",
    "already_redeemed answered as 404 where the docs give it as 400 (protocol-facts 2.3).",
)
def _error_status() -> tuple[list[Any], Expect]:
    f = Flow(seed=26)
    v = f.voucher()
    f.add(f.b.redeem_simple(f.payee, v))
    i = f.redeem_refused(v, "already_redeemed", 404)
    f.finish(v)
    return f.records, [("schema.error-status", i)]


@case("schema-error-envelope", "A refusal whose body is a bare string, not {code, message} (D15).")
def _envelope() -> tuple[list[Any], Expect]:
    f = Flow(seed=22)
    v = f.voucher()
    f.add(f.b.redeem_simple(f.payee, v))
    i = f.redeem_refused(v, "already_redeemed")
    f.records[i]["response"]["body"] = "already redeemed"
    f.finish(v)
    return f.records, [("schema.error-envelope", i)]


@case("schema-undocumented-error-code", "A refusal code the redeem page does not document (D15).")
def _undocumented_code() -> tuple[list[Any], Expect]:
    f = Flow(seed=23)
    v = f.voucher()
    f.add(f.b.redeem_simple(f.payee, v))
    i = f.redeem_refused(v, "voucher_locked")
    f.finish(v)
    return f.records, [("schema.undocumented-error-code", i), ("machine.wrong-refusal-code", i)]


@case("schema-undocumented-status", "An HTTP 418 the docs never list.")
def _undocumented_status() -> tuple[list[Any], Expect]:
    f = Flow(seed=24)
    v = f.voucher()
    f.add(f.b.redeem_simple(f.payee, v))
    i = f.redeem_refused(v, "already_redeemed", 418)
    f.finish(v)
    return f.records, [("schema.undocumented-status", i)]


@case("style-id-prefix", "A voucher id without the vch_ prefix of the docs' examples (D11).")
def _id_prefix() -> tuple[list[Any], Expect]:
    f = Flow(seed=25)
    v, rec = f.b.session_reserve(f.payee, f.session)
    v.id = "v-" + v.code
    rec["response"]["body"]["id"] = v.id
    i = f.add(rec)
    f.discard_and_close(v)
    return f.records, [("style.id-prefix", i), ("style.id-prefix", i + 1)]


@case("style-hex-address", "A placeholder wallet address, as in the docs' own example (D11).")
def _hex() -> tuple[list[Any], Expect]:
    f = Flow(seed=26)
    v = f.voucher()
    i = f.add(f.b.redeem_simple(f.payee, v))
    for side in ("request", "response"):
        f.records[i][side]["body"]["expectedPayment"]["wallet"]["address"] = "0xYourWalletAddress"
    f.finish(v)
    return f.records, [("style.hex-address", i), ("style.hex-address", i)]


@case("style-numeric-code", "A numeric context whose code has letters, as in the docs (D11).")
def _numeric() -> tuple[list[Any], Expect]:
    f = Flow(seed=27)
    f.records[1]["request"]["body"]["format"] = "numeric"
    f.records[1]["response"]["body"]["format"] = "numeric"
    v = f.voucher()
    f.discard_and_close(v)
    return f.records, [("style.numeric-code", 1)]


@case("style-session-type-missing", "A session-open request without type, as in the guide (D12).")
def _no_type() -> tuple[list[Any], Expect]:
    f = Flow(seed=28)
    del f.records[3]["request"]["body"]["type"]
    v = f.voucher()
    f.discard_and_close(v)
    return f.records, [("style.session-type-missing", 3)]


@case("machine-illegal-transition", "Two accepted redeems of one voucher (D16, D19).")
def _illegal() -> tuple[list[Any], Expect]:
    f = Flow(seed=29)
    v = f.voucher()
    f.add(f.b.redeem_simple(f.payee, v))
    i = f.add(f.b.redeem_simple(f.payee, v, "USDC"))
    f.finish(v)
    return f.records, [("machine.illegal-transition", i)]


@case("machine-illegal-reserve-closed-session", "Reserving in a CLOSED session was accepted (D5).")
def _reserve_closed() -> tuple[list[Any], Expect]:
    f = Flow(seed=30)
    f.add(f.b.session_close(f.payee, f.session))
    v, rec = f.b.session_reserve(f.payee, f.session)
    i = f.add(rec)
    f.add(f.b.discard(f.payee, v))
    f.add(f.b.context_close(f.payer, f.ctx))
    return f.records, [("machine.illegal-transition", i)]


@case("machine-unexpected-refusal", "A legal resolve refused by the server (D16: warning).")
def _unexpected_refusal() -> tuple[list[Any], Expect]:
    f = Flow(seed=31)
    v = f.voucher()
    f.add(f.b.redeem_simple(f.payee, v))
    i = f.add(
        f.b.refused(
            "POST",
            f"/vouchers/{v.id}/resolve-voucher",
            {"receipts": [{"paymentId": "pay_1"}]},
            "not_redeemed",
            f.payer,
        )
    )
    f.finish(v)
    return f.records, [("machine.unexpected-refusal", i)]


@case(
    "machine-wrong-refusal-code", "A second join refused with session_closed instead of already_joined (D3)."
)
def _wrong_code() -> tuple[list[Any], Expect]:
    f = Flow(seed=32)
    i = f.add(
        f.b.refused("POST", f"/vouchers/sessions/{f.session.id}/session-join", {}, "session_closed", f.payer)
    )
    v = f.voucher()
    f.discard_and_close(v)
    return f.records, [("machine.wrong-refusal-code", i)]


@case("machine-status-mismatch", "A resolve answer that still says REDEEMED.")
def _status_mismatch() -> tuple[list[Any], Expect]:
    f = Flow(seed=33)
    v = f.voucher()
    f.add(f.b.redeem_simple(f.payee, v))
    i = f.add(f.b.resolve(f.payer, v))
    f.records[i]["response"]["body"]["status"] = "REDEEMED"
    v.status = "REDEEMED"  # (and so the session's answers list it)
    f.close()
    return f.records, [
        ("machine.status-mismatch", i),
        ("session.close-with-open-vouchers", i + 1),
        ("entity.incomplete", i + 1),  # the voucher, at its last exchange (the close's answer lists it)
    ]


@case("machine-terms-changed", "A SIMPLE redeem answered as CUSTOM (D7: the type is fixed by the redeem).")
def _terms() -> tuple[list[Any], Expect]:
    f = Flow(seed=34)
    v = f.voucher()
    i = f.add(f.b.redeem_simple(f.payee, v))
    f.records[i]["response"]["body"]["type"] = "CUSTOM"
    f.finish(v)
    return f.records, [("machine.terms-changed", i)]


@case("time-accepted-after-expiry", "Resolve accepted three minutes after the voucher expired (D2).")
def _expired() -> tuple[list[Any], Expect]:
    f = Flow(seed=35)
    v = f.voucher()
    f.add(f.b.redeem_simple(f.payee, v))
    f.b.now += timedelta(minutes=3)
    i = f.add(f.b.resolve(f.payer, v))
    f.close()
    return f.records, [("time.accepted-after-expiry", i)]


@case(
    "time-call-after-expiry",
    "A discard accepted three minutes after expiresAt: a server may expire lazily, so a warning, and "
    "the model follows it: a later GET showing DISCARDED is fine (D24).",
)
def _call_after_expiry() -> tuple[list[Any], Expect]:
    f = Flow(seed=36)
    v = f.voucher()
    f.b.now += timedelta(minutes=3)
    i = f.add(f.b.discard(f.payee, v))
    f.add(f.b.get_voucher(f.payee, v))
    f.close()
    return f.records, [("time.call-after-expiry", i)]


@case(
    "schema-request-refused",
    "A redeem whose request breaks its schema, rightly refused with validation_failed: the request is "
    "reported, the refusal draws no warning (D26).",
)
def _broken_refused() -> tuple[list[Any], Expect]:
    f = Flow(seed=37)
    v = f.voucher()
    bad = {"expectedPayment": dict(f.b.payment(), amount="0")}
    i = f.add(f.b.refused("POST", f"/vouchers/{v.id}/redeem-voucher", bad, "validation_failed", f.payee))
    f.add(f.b.redeem_simple(f.payee, v))
    f.finish(v)
    return f.records, [("schema.request", i)]


@case(
    "machine-terms-changed-observed",
    "A GET of a resolved voucher shows another amount than the redeem fixed (D17, D23).",
)
def _terms_observed() -> tuple[list[Any], Expect]:
    f = Flow(seed=38)
    v = f.voucher()
    f.add(f.b.redeem_simple(f.payee, v, "EURC", "100"))
    f.add(f.b.resolve(f.payer, v))
    i = f.add(f.b.get_voucher(f.payee, v))
    f.records[i]["response"]["body"]["expectedPayment"]["amount"] = "100.01"
    f.close()
    return f.records, [("machine.terms-changed", i)]


@case(
    "observe-membership",
    "A session's answer lists a voucher reserved in another session of the same context (D17).",
)
def _membership() -> tuple[list[Any], Expect]:
    f = Flow(seed=39)
    v = f.voucher()
    other, rec = f.b.session_open(f.payee, f.ctx["code"])
    f.add(rec)
    f.add(f.b.session_join(f.payer, other))
    other.vouchers.append(v)  # the server lists it in the other session too
    i = f.add(f.b.get_session(f.payee, other))
    f.add(f.b.discard(f.payee, v))
    f.add(f.b.session_close(f.payee, f.session))
    other.vouchers.clear()
    f.add(f.b.session_close(f.payee, other))
    f.add(f.b.context_close(f.payer, f.ctx))
    return f.records, [("observe.membership", i)]


@case("time-backwards", "A timestamp earlier than the previous exchange's (D19).")
def _backwards() -> tuple[list[Any], Expect]:
    records, _ = _two_payments()
    records[7]["time"] = records[2]["time"]
    return records, [("time.backwards", 7)]


@case("time-missing", "Records without timestamps: info once per file (D2).")
def _no_time() -> tuple[list[Any], Expect]:
    records, _ = _two_payments()
    for r in records[4:6]:
        del r["time"]
    return records, [("time.missing", 4)]


@case("time-no-offset", "Timestamps that lose their offset: read as UTC, info once per file (D19).")
def _no_offset() -> tuple[list[Any], Expect]:
    records, _ = _two_payments()
    for r in records[4:]:
        r["time"] = r["time"].removesuffix("Z")
    return records, [("time.no-offset", 4)]


@case("observe-status-mismatch", "A GET shows RESOLVED before any resolve (D17).")
def _observe_mismatch() -> tuple[list[Any], Expect]:
    f = Flow(seed=36)
    v = f.voucher()
    f.add(f.b.redeem_simple(f.payee, v))
    v.status = "RESOLVED"
    i = f.add(f.b.get_voucher(f.payee, v))
    f.close()
    return f.records, [("observe.status-mismatch", i)]


@case("observe-independence", "A session close discards a voucher the payee never touched (D17, D4).")
def _independence() -> tuple[list[Any], Expect]:
    f = Flow(seed=37)
    a = f.voucher()
    b = f.voucher()
    f.add(f.b.redeem_simple(f.payee, a))
    f.add(f.b.redeem_simple(f.payee, b))
    f.add(f.b.get_voucher(f.payee, a))
    f.add(f.b.resolve(f.payer, b))
    f.add(f.b.session_close(f.payee, f.session))
    a.status = "DISCARDED"
    i = f.add(f.b.get_voucher(f.payee, a))
    f.add(f.b.context_close(f.payer, f.ctx))
    return f.records, [("session.close-with-open-vouchers", i - 1), ("observe.independence", i)]


@case("actor-wrong-role", "The payee's resource token resolves a voucher, and the server accepts (D10).")
def _wrong_role() -> tuple[list[Any], Expect]:
    f = Flow(seed=38)
    v = f.voucher()
    f.add(f.b.redeem_simple(f.payee, v))
    i = f.add(f.b.resolve(f.payee, v))
    f.close()
    return f.records, [("actor.wrong-role", i)]


@case("actor-wrong-context", "A resource token for one context redeems a voucher of another (D10).")
def _wrong_context() -> tuple[list[Any], Expect]:
    f = Flow(seed=39)
    other_ctx, rec = f.b.context_open(f.payer)
    f.add(rec)
    other_payee, rec = f.b.sign_in_payee(other_ctx["code"])
    f.add(rec)
    v = f.voucher()
    i = f.add(f.b.redeem_simple(other_payee, v))
    f.add(f.b.resolve(f.payer, v))
    f.add(f.b.context_close(f.payer, other_ctx))
    f.close()
    return f.records, [("actor.wrong-context", i)]


@case("actor-unauthenticated", "A redeem accepted with no Authorization header.")
def _unauthenticated() -> tuple[list[Any], Expect]:
    f = Flow(seed=41)
    v = f.voucher()
    i = f.add(f.b.redeem_simple(f.payee, v))
    del f.records[i]["request"]["headers"]["authorization"]
    f.finish(v)
    return f.records, [("actor.unauthenticated", i)]


@case("session-reserve-before-join", "A voucher reserved before the payer joined (D3).")
def _before_join() -> tuple[list[Any], Expect]:
    f = Flow(seed=42, join=False)
    v, rec = f.b.session_reserve(f.payee, f.session)
    i = f.add(rec)
    f.add(f.b.session_join(f.payer, f.session))
    f.discard_and_close(v)
    return f.records, [("session.reserve-before-join", i)]


@case("session-close-with-open-vouchers", "Closing while a voucher is REDEEMED; the voucher goes on (D4).")
def _close_open() -> tuple[list[Any], Expect]:
    f = Flow(seed=43)
    v = f.voucher()
    f.add(f.b.redeem_simple(f.payee, v))
    i = f.add(f.b.session_close(f.payee, f.session))
    f.add(f.b.resolve(f.payer, v))
    f.add(f.b.context_close(f.payer, f.ctx))
    return f.records, [("session.close-with-open-vouchers", i)]


@case("network-mismatch", "EURC on polygon with USDC's address (D14).")
def _mismatch() -> tuple[list[Any], Expect]:
    f = Flow(seed=44)
    v = f.voucher()
    i = f.add(f.b.redeem_simple(f.payee, v, "EURC"))
    usdc = "0x2791Bca1f2de4661ED88A30C99A7a9449Aa84174"
    for side in ("request", "response"):
        f.records[i][side]["body"]["expectedPayment"]["currencyAddress"] = usdc
    f.finish(v)
    return f.records, [("network.mismatch", i)]


@case(
    "network-unknown-currency",
    "A currency the registry does not know, then learnt from /finance/currencies (D14).",
)
def _unknown_currency() -> tuple[list[Any], Expect]:
    f = Flow(seed=45)
    v = f.voucher()
    dai = "0x8f3cf7ad23cd3cadbd9735aff958023239c6a063"
    i = f.add(f.b.redeem_simple(f.payee, v))
    for side in ("request", "response"):
        pay = f.records[i][side]["body"]["expectedPayment"]
        pay["currency"], pay["currencyAddress"] = "DAI", dai
    f.add(
        f.b.record(
            "GET",
            "/finance/currencies",
            response=[
                {
                    "symbol": "DAI",
                    "network": "polygon",
                    "address": dai,
                    "decimals": 18,
                    "bridgeable": True,
                    "enabled": True,
                }
            ],
        )
    )
    w = f.voucher()
    f.add(f.b.redeem_simple(f.payee, w))
    j = len(f.records) - 1
    for side in ("request", "response"):
        pay = f.records[j][side]["body"]["expectedPayment"]
        pay["currency"], pay["currencyAddress"] = "DAI", dai
    f.finish(v, w)
    return f.records, [("network.unknown-currency", i)]


@case("entity-reused-id", "Two reserves answered with the same voucher id.")
def _reused() -> tuple[list[Any], Expect]:
    f = Flow(seed=46)
    v = f.voucher()
    _, rec = f.b.session_reserve(f.payee, f.session)
    rec["response"]["body"]["id"] = v.id
    f.session.vouchers.pop()  # (the session's answers list the voucher under the id it was given)
    i = f.add(rec)
    f.discard_and_close(v)
    return f.records, [("entity.reused-id", i)]


@case("entity-incomplete", "The log ends with a voucher still REDEEMED and its session open (D18).")
def _incomplete() -> tuple[list[Any], Expect]:
    f = Flow(seed=47)
    v = f.voucher()
    redeemed = f.add(f.b.redeem_simple(f.payee, v))
    paths = [r["request"]["path"] for r in f.records]
    session_opened = max(i for i, p in enumerate(paths) if p.endswith("/session-open"))
    reserved = max(i for i, p in enumerate(paths) if p.endswith("/reserve-voucher"))
    # each is located at its entity's last exchange
    return f.records, [
        ("entity.incomplete", session_opened),  # the context: last named when its session opened
        ("entity.incomplete", reserved),  # the session
        ("entity.incomplete", redeemed),  # the voucher
    ]


@case(
    "entity-forgotten",
    "Run with max-live 3: the context, idle longest, is forgotten when a second voucher makes four "
    "live entities; its close is adopted (D18), and one info counts it (D27).",
    settings={"max-live": 3},
)
def _forgotten() -> tuple[list[Any], Expect]:
    f = Flow(seed=53)
    v1 = f.voucher()
    v2 = f.voucher()
    f.add(f.b.discard(f.payee, v1))
    f.add(f.b.discard(f.payee, v2))
    f.close()
    return f.records, [("entity.forgotten", None)]  # at the end of the log


@case(
    "view-payee-unseen-calls",
    "Run with view payee: the payee's server sees its own calls only. The payer's unseen join explains "
    "the reserve in a session the model had waiting, and its unseen resolve the RESOLVED read; both are "
    "adopted with an info (D28). The context, opened and closed by the payer, stays open in this view.",
    settings={"view": "payee"},
)
def _payee_view() -> tuple[list[Any], Expect]:
    f = Flow(seed=61)  # sign-in payer, context-open, sign-in payee, session-open, join
    v = f.voucher()
    f.add(f.b.redeem_simple(f.payee, v))
    f.add(f.b.resolve(f.payer, v))
    f.add(f.b.get_voucher(f.payee, v))
    f.close()  # session-close (payee), context-close (payer)
    payees = [r for r in f.records if f.payee in r["request"].get("headers", {}).get("authorization", "")]
    seen = [f.records[2], *payees]  # the payee's sign-in, then every call with its token
    # sign-in, session-open, reserve (join unseen), redeem, get (resolve unseen), session-close
    return seen, [("observe.unseen-call", 2), ("observe.unseen-call", 4), ("entity.incomplete", 1)]


@case(
    "body-not-kept",
    "A capture that passed a voucher's answer on without keeping its body says so (bodyNotKept): "
    "not checked, one info (D21).",
)
def _body_not_kept() -> tuple[list[Any], Expect]:
    f = Flow(seed=62)
    v = f.voucher()
    f.add(f.b.redeem_simple(f.payee, v))
    f.add(f.b.resolve(f.payer, v))
    at = f.add(f.b.get_voucher(f.payee, v))
    f.records[at]["response"].pop("body")
    f.records[at]["response"]["bodyNotKept"] = True
    f.close()
    return f.records, [("input.body-not-checked", at)]


def write(root: Path = ROOT) -> list[Path]:
    """Write every case; return the files written."""
    written = []
    for name, build in CASES.items():
        records, expected, fmt = build()
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        traffic = folder / ("traffic.har" if fmt == "har" else "traffic.jsonl")
        if fmt == "har":
            traffic.write_text(json.dumps(to_har(records), indent=1) + "\n", encoding="utf-8")
        else:
            lines = [r if isinstance(r, str) else orjson.dumps(r).decode() for r in records]
            traffic.write_text("\n".join(lines) + "\n", encoding="utf-8")

        def where(i: int | None, name: str = traffic.name, har: bool = fmt == "har") -> str:
            if i is None:
                return name
            return f"{name}:entries[{i}]" if har else f"{name}:{i + 1}"

        doc = {
            "description": (build.__doc__ or "").strip(),
            "traffic": traffic.name,
            **({"settings": SETTINGS[name]} if name in SETTINGS else {}),
            "violations": sorted(
                [{"rule": r, "location": where(i)} for r, i in expected],
                key=lambda d: (d["location"], d["rule"]),
            ),
        }
        (folder / "expected.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        written += [traffic, folder / "expected.json"]
    return written


if __name__ == "__main__":
    files = write()
    print(f"wrote {len(files) // 2} cases")
