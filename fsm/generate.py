"""Realistic, valid traffic for the protocol, deterministic for a seed.

:class:`TrafficBuilder` plays the three parties (payer wallet, payee, Bleepay
server) one call at a time and returns exchange records in the kit's JSONL
format; :func:`generate` strings calls into whole flows. The same builder makes
the shipped examples, the corpus, the benchmark logs and the property tests'
traffic.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

__all__ = ["TOKENS", "Opened", "TrafficBuilder", "generate", "to_har"]

PREFIX = "/api/v1"
# (symbol, network, address): the documented tokens (protocol-facts 4)
TOKENS = (
    ("EURC", "polygon", "0x73b3db5a96a4b9d9bcfc22b8f1b3d85a5e5b5e5b"),
    ("USDC", "polygon", "0x2791Bca1f2de4661ED88A30C99A7a9449Aa84174"),
)
_ALNUM = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def _jwt(claims: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(obj)).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


@dataclass
class _Voucher:
    id: str
    code: str
    status: str = "RESERVED"
    type: str | None = None
    expected: dict[str, Any] | None = None
    expires: datetime | None = None


@dataclass
class _Session:
    id: str
    code: str
    context_code: str
    status: str = "OPEN"
    vouchers: list[_Voucher] = field(default_factory=list)


@dataclass
class Opened:
    """A flow's start (:meth:`TrafficBuilder.open_session`).

    The parties' tokens, the context, the session, and the records of the calls that made them.
    """

    payer: str
    ctx: dict[str, Any]
    payee: str
    session: _Session
    records: list[dict[str, Any]]


class TrafficBuilder:
    """Makes one exchange record per call, advancing a clock; ``seed`` fixes every choice."""

    def __init__(self, seed: int = 0, start: datetime | None = None) -> None:
        self.rng = random.Random(seed)
        self.now = start or datetime(2026, 6, 9, 12, 0, 0, tzinfo=UTC)
        self._n = 0
        self._voucher_ids: set[str] = set()  # a voucher id is its code and 4 hex digits: drawn again if taken

    # ---------------------------------------------------------------- helpers
    def _tick(self, seconds: float | None = None) -> str:
        self.now += timedelta(seconds=seconds if seconds is not None else self.rng.uniform(0.2, 3.0))
        return _iso(self.now)

    def _hex(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(n))

    def _code(self, digits: bool = False) -> str:
        alphabet = "0123456789" if digits else _ALNUM
        return "".join(self.rng.choice(alphabet) for _ in range(6))

    def _id(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._hex(10)}{self._n:x}"

    def record(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        status: int = 200,
        response: Any = None,
        token: str | None = None,
        query: dict[str, Any] | None = None,
        seconds: float | None = None,
    ) -> dict[str, Any]:
        """One exchange record in the JSONL format."""
        req: dict[str, Any] = {
            "method": method,
            "path": PREFIX + path,
            "headers": {"content-type": "application/json"},
        }
        if token is not None:
            req["headers"]["authorization"] = f"Bearer {token}"
        if query:
            req["query"] = query
        if body is not None:
            req["body"] = _own(body)
        resp: dict[str, Any] = {"status": status, "headers": {"content-type": "application/json"}}
        if response is not None:
            resp["body"] = _own(response)
        return {"time": self._tick(seconds), "request": req, "response": resp}

    @staticmethod
    def error(code: str, message: str = "") -> dict[str, str]:
        """An error envelope (D15)."""
        return {"code": code, "message": message or code.replace("_", " ")}

    # ------------------------------------------------------------------- auth
    def sign_in_payer(self) -> tuple[str, dict[str, Any]]:
        """The payer's wallet signs in with its device; returns (token, record)."""
        token = _jwt({"userId": self._id("usr_"), "deviceId": self._hex(16)})
        rec = self.record(
            "POST",
            "/auth/sign-in",
            {"type": "mobile-device", "data": {"installationId": self._hex(40), "password": self._hex(40)}},
            response={"authorization": {"token": token}},
        )
        return token, rec

    def sign_in_payee(self, context_code: str) -> tuple[str, dict[str, Any]]:
        """The payee signs in with the context code (resource token)."""
        resource = f"voucher::context::code::{context_code}"
        token = _jwt({"type": "resource", "resource": resource})
        rec = self.record(
            "POST",
            "/auth/sign-in",
            {"type": "resource", "data": {"resource": resource}},
            response={"authorization": {"token": token}},
        )
        return token, rec

    # --------------------------------------------------------------- contexts
    def context_open(self, token: str, fmt: str = "alphanum") -> tuple[dict[str, Any], dict[str, Any]]:
        """The payer opens a context; returns (context, record)."""
        address = "0x" + self._hex(40)
        ctx = {
            "id": self._id("ctx_"),
            "code": self._code(digits=fmt == "numeric"),
            "status": "OPEN",
            "format": fmt,
            "payers": [{"address": address}],
            "createdAt": _iso(self.now),
        }
        rec = self.record(
            "POST",
            "/vouchers/contexts/context-open",
            {"format": fmt, "payers": [{"address": address}]},
            response=ctx,
            token=token,
        )
        return ctx, rec

    def context_close(self, token: str, ctx: dict[str, Any]) -> dict[str, Any]:
        """The payer closes the context."""
        ctx.update(status="CLOSED", updatedAt=_iso(self.now))
        return self.record(
            "POST",
            f"/vouchers/contexts/{ctx['id']}/context-close",
            {"payeeId": None},
            response=dict(ctx),
            token=token,
        )

    # --------------------------------------------------------------- sessions
    def session_open(self, token: str, context_code: str) -> tuple[_Session, dict[str, Any]]:
        """The payee opens a session from the context code."""
        s = _Session(self._id("ses_"), self._code(), context_code)
        rec = self.record(
            "POST",
            "/vouchers/sessions/session-open",
            {"code": context_code, "type": "SESSION_DEFAULT"},
            response={
                "id": s.id,
                "code": s.code,
                "status": "OPEN",
                "type": "SESSION_DEFAULT",
                "createdAt": _iso(self.now),
            },
            token=token,
        )
        return s, rec

    def _session_body(self, s: _Session) -> dict[str, Any]:
        return {
            "id": s.id,
            "code": s.code,
            "status": s.status,
            "type": "SESSION_DEFAULT",
            "vouchers": [{"id": v.id, "status": v.status} for v in s.vouchers],
            "createdAt": _iso(self.now),
            "updatedAt": _iso(self.now),
        }

    def session_join(self, token: str, s: _Session) -> dict[str, Any]:
        """The payer joins the session."""
        return self.record(
            "POST", f"/vouchers/sessions/{s.id}/session-join", {}, response=self._session_body(s), token=token
        )

    def open_session(self, *, join: bool = True) -> Opened:
        """The start of every flow, its parties and its records.

        The payer signs in and opens a context, a payee signs in with its code and opens a session,
        and (``join``) the payer joins it.
        """
        payer, signed_in = self.sign_in_payer()
        ctx, opened = self.context_open(payer)
        payee, payee_in = self.sign_in_payee(ctx["code"])
        s, session_open = self.session_open(payee, ctx["code"])
        records = [signed_in, opened, payee_in, session_open]
        if join:
            records.append(self.session_join(payer, s))
        return Opened(payer, ctx, payee, s, records)

    def session_reserve(self, token: str, s: _Session, ttl: float = 120) -> tuple[_Voucher, dict[str, Any]]:
        """The payee reserves a voucher in the session."""
        v, rec = self._reserve(token, f"/vouchers/sessions/{s.id}/reserve-voucher", {}, ttl)
        s.vouchers.append(v)
        return v, rec

    def reserve(self, token: str, context_code: str, ttl: float = 120) -> tuple[_Voucher, dict[str, Any]]:
        """The payee reserves a standalone voucher against the context code."""
        return self._reserve(token, "/vouchers/reserve-voucher", {"code": context_code}, ttl)

    def _reserve(
        self, token: str, path: str, body: dict[str, Any], ttl: float
    ) -> tuple[_Voucher, dict[str, Any]]:
        digits = self._code(digits=True)
        expires = self.now + timedelta(seconds=1 + ttl)  # the exchange happens one second from now
        id_ = f"vch_{digits}{self._hex(4)}"
        while id_ in self._voucher_ids:  # (10**6 codes x 16**4: among 200,000 vouchers a repeat is likely)
            id_ = f"vch_{digits}{self._hex(4)}"
        self._voucher_ids.add(id_)
        v = _Voucher(id_, digits, expires=expires)
        response = {"id": v.id, "code": v.code, "status": "RESERVED", "expiresAt": _iso(expires)}
        return v, self.record("POST", path, body, response=response, token=token, seconds=1)

    def session_close(self, token: str, s: _Session) -> dict[str, Any]:
        """The payee closes the session."""
        s.status = "CLOSED"
        return self.record(
            "POST",
            f"/vouchers/sessions/{s.id}/session-close",
            {},
            response=self._session_body(s),
            token=token,
        )

    def get_session(self, token: str, s: _Session) -> dict[str, Any]:
        """Anyone reads the session."""
        return self.record("GET", f"/vouchers/sessions/{s.id}", response=self._session_body(s), token=token)

    # --------------------------------------------------------------- vouchers
    def payment(self, symbol: str = "EURC", amount: str = "100") -> dict[str, Any]:
        """SIMPLE payment terms for a documented token, paid to a fresh wallet."""
        sym, network, address = next(t for t in TOKENS if t[0] == symbol)
        return {
            "network": network,
            "currency": sym,
            "currencyAddress": address,
            "amount": amount,
            "wallet": {"address": "0x" + self._hex(40)},
        }

    def redeem_simple(
        self, token: str, v: _Voucher, symbol: str = "EURC", amount: str = "100"
    ) -> dict[str, Any]:
        """The payee sets SIMPLE terms."""
        v.expected = self.payment(symbol, amount)
        v.status, v.type = "REDEEMED", "SIMPLE"
        return self.record(
            "POST",
            f"/vouchers/{v.id}/redeem-voucher",
            {"expectedPayment": v.expected},
            response={"id": v.id, "status": "REDEEMED", "type": "SIMPLE", "expectedPayment": v.expected},
            token=token,
        )

    def redeem_custom(self, token: str, v: _Voucher) -> dict[str, Any]:
        """The payee sets CUSTOM terms: one contract call on ethereum."""
        terms = {
            "networks": [{"network": "ethereum", "type": "evm", "chainId": "1"}],
            "payments": [
                {
                    "type": "send_transaction",
                    "input": {
                        "from": "{payer}",
                        "to": "0x" + self._hex(40),
                        "value": "0",
                        "data": "0xa694fc3a" + self._hex(64),
                    },
                }
            ],
            "extras": [],
        }
        v.status, v.type = "REDEEMED", "CUSTOM"
        return self.record(
            "POST",
            f"/vouchers/{v.id}/redeem-voucher",
            terms,
            response={"id": v.id, "status": "REDEEMED", "type": "CUSTOM", **terms},
            token=token,
        )

    def negotiate(self, token: str, v: _Voucher, symbol: str = "USDC") -> dict[str, Any]:
        """The payer pays in another currency on the same network (FX)."""
        supplied = self.payment(symbol, "105")
        quoted = dict(supplied, amount=f"{self.rng.uniform(100, 110):.2f}")
        return self.record(
            "POST",
            f"/vouchers/{v.id}/negotiate-voucher",
            {"suppliedPayment": supplied},
            response={
                "id": v.id,
                "status": "REDEEMED",
                "expectedPayment": v.expected,
                "suppliedPayment": quoted,
            },
            token=token,
        )

    def resolve(self, token: str, v: _Voucher) -> dict[str, Any]:
        """The payer submits receipts."""
        v.status = "RESOLVED"
        return self.record(
            "POST",
            f"/vouchers/{v.id}/resolve-voucher",
            {"receipts": [{"paymentId": self._id("pay_")}]},
            response={"id": v.id, "status": "RESOLVED"},
            token=token,
        )

    def discard(self, token: str, v: _Voucher) -> dict[str, Any]:
        """The payee discards the voucher."""
        v.status = "DISCARDED"
        return self.record(
            "POST", f"/vouchers/{v.id}/discard-voucher", {}, response=self.voucher_body(v), token=token
        )

    def voucher_body(self, v: _Voucher) -> dict[str, Any]:
        """The full voucher object, as get-voucher returns it."""
        body: dict[str, Any] = {"id": v.id, "code": v.code, "status": v.status}
        if v.type:
            body["type"] = v.type
        if v.expected:
            body["expectedPayment"] = v.expected
        if v.expires is not None:
            body["expiresAt"] = _iso(v.expires)
        body["createdAt"] = body["updatedAt"] = _iso(self.now)
        return body

    def get_voucher(self, token: str, v: _Voucher) -> dict[str, Any]:
        """Anyone polls the voucher."""
        return self.record("GET", f"/vouchers/{v.id}", response=self.voucher_body(v), token=token)

    def sign(self, token: str, v: _Voucher) -> dict[str, Any]:
        """The payer signs the voucher (D9: no change of status)."""
        body = {"publicKey": "0x" + self._hex(64), "signature": "0x" + self._hex(130)}
        return self.record(
            "POST", f"/vouchers/{v.id}/sign-voucher", body, response=self.voucher_body(v), token=token
        )

    def interop_init(self, token: str, v: _Voucher) -> dict[str, Any]:
        """A cross-chain signature submission for the voucher (D9: no change of status)."""
        return self.record(
            "POST",
            f"/vouchers/{v.id}/submit/interop-init",
            {"signature": "0x" + self._hex(130)},
            response={"id": self._id("sig_")},
            token=token,
            query={"id": self._id("itx_"), "paymentIndex": 0},
        )

    def refused(
        self, method: str, path: str, body: Any, code: str, token: str, status: int = 400
    ) -> dict[str, Any]:
        """A call the server refuses with ``code``."""
        return self.record(method, path, body, status=status, response=self.error(code), token=token)


def _own(value: Any) -> Any:
    """A private copy, so later changes to the builder's objects never rewrite earlier records."""
    return orjson.loads(orjson.dumps(value))


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _tour(b: TrafficBuilder) -> Iterator[dict[str, Any]]:
    """One finished context that takes every transition and refusal a clean log can take.

    Standalone and session reserves, SIMPLE and CUSTOM redeems, FX negotiation, sign and interop on
    RESERVED and REDEEMED vouchers, discards, expiry by time, and each documented refusal code of the
    three machines (warned transitions, such as reserving before the payer joins, excepted).
    """
    payer, rec = b.sign_in_payer()
    yield rec
    ctx, rec = b.context_open(payer)
    yield rec
    code = ctx["code"]
    payee, rec = b.sign_in_payee(code)
    yield rec
    alone, rec = b.reserve(payee, code)  # a standalone voucher: the context's own reserve
    yield rec
    yield b.sign(payer, alone)
    yield b.interop_init(payer, alone)
    resolve = {"receipts": [{"paymentId": "pay_" + b._hex(10)}]}
    yield b.refused("POST", f"/vouchers/{alone.id}/resolve-voucher", resolve, "not_redeemed", payer)
    yield b.redeem_simple(payee, alone, "EURC", "100")
    redeem_again = {"expectedPayment": b.payment()}
    yield b.refused("POST", f"/vouchers/{alone.id}/redeem-voucher", redeem_again, "already_redeemed", payee)
    yield b.sign(payer, alone)
    yield b.interop_init(payer, alone)
    yield b.negotiate(payer, alone, "USDC")  # FX: pays in USDC for EURC terms
    elsewhere = {"suppliedPayment": dict(b.payment("USDC"), network="ethereum")}
    yield b.refused("POST", f"/vouchers/{alone.id}/negotiate-voucher", elsewhere, "different_network", payer)
    yield b.discard(payee, alone)
    s, rec = b.session_open(payee, code)
    yield rec
    yield b.session_join(payer, s)
    yield b.refused("POST", f"/vouchers/sessions/{s.id}/session-join", {}, "already_joined", payer)
    custom, rec = b.session_reserve(payee, s)
    yield rec
    yield b.redeem_custom(payee, custom)
    supplied = {"suppliedPayment": b.payment("USDC")}
    yield b.refused("POST", f"/vouchers/{custom.id}/negotiate-voucher", supplied, "not_simple", payer)
    yield b.resolve(payer, custom)
    yield b.refused("POST", f"/vouchers/{custom.id}/resolve-voucher", resolve, "already_resolved", payer)
    yield b.refused("POST", f"/vouchers/{custom.id}/discard-voucher", {}, "already_resolved", payee)
    dropped, rec = b.session_reserve(payee, s)
    yield rec
    yield b.discard(payee, dropped)
    lapsed, rec = b.session_reserve(payee, s, ttl=30)  # expires unredeemed
    yield rec
    late, rec = b.session_reserve(payee, s, ttl=30)  # expires redeemed
    yield rec
    yield b.redeem_simple(payee, late, "USDC", "20")
    assert late.expires is not None
    b.now = max(b.now, late.expires) + timedelta(seconds=10)  # past expiresAt and the clock skew (D24)
    for v in (lapsed, late):
        v.status = "EXPIRED"
        yield b.get_voucher(payee, v)
    yield b.session_close(payee, s)
    yield b.refused("POST", f"/vouchers/sessions/{s.id}/session-join", {}, "session_closed", payer)
    yield b.refused("POST", f"/vouchers/sessions/{s.id}/reserve-voucher", {}, "session_closed", payee)
    yield b.refused("POST", f"/vouchers/sessions/{s.id}/session-close", {}, "already_closed", payee)
    unjoined, rec = b.session_open(payee, code)
    yield rec
    yield b.session_close(payee, unjoined)  # closed before anyone joined
    yield b.context_close(payer, ctx)
    closing = {"payeeId": None}
    yield b.refused("POST", f"/vouchers/contexts/{ctx['id']}/context-close", closing, "already_closed", payer)
    yield b.refused("POST", "/vouchers/reserve-voucher", {"code": code}, "invalid_code", payee)
    opening = {"code": code, "type": "SESSION_DEFAULT"}
    yield b.refused("POST", "/vouchers/sessions/session-open", opening, "invalid_code", payee)


def generate(
    sessions: int,
    seed: int = 0,
    vouchers_per_session: int | None = None,
    *,
    partial: bool = True,
    tour: bool = True,
    start: datetime | None = None,
) -> Iterator[dict[str, Any]]:
    """Whole, valid flows: ``sessions`` sessions, each with 1-8 vouchers (or exactly K).

    Vouchers are SIMPLE (some negotiated) or CUSTOM; some are discarded; some
    refused calls are answered with the right codes; with ``partial`` the last
    flows are left unfinished, as real captures are, and half the contexts stay
    open; without it every flow ends (all contexts closed). Then (``tour``) one
    more context takes the tour (:func:`_tour`) of every transition and refusal,
    finished, partial or not. Deterministic for a seed. ``start``: the time of the first
    exchange's clock (default 2026-06-09 12:00 UTC; ``datetime.now(UTC)`` for a live replay).
    """
    b = TrafficBuilder(seed, start)
    rng = b.rng
    for n in range(sessions):
        opened = b.open_session()
        yield from opened.records
        payer, ctx, payee, s = opened.payer, opened.ctx, opened.payee, opened.session
        if rng.random() < 0.1:
            yield b.refused("POST", f"/vouchers/sessions/{s.id}/session-join", {}, "already_joined", payer)
        count = vouchers_per_session or rng.randint(1, 8)
        vouchers = []
        for _ in range(count):
            v, rec = b.session_reserve(payee, s)
            yield rec
            vouchers.append(v)
        unfinished = partial and n >= sessions - max(1, sessions // 20)
        for v in vouchers:
            roll = rng.random()
            if roll < 0.1:
                yield b.discard(payee, v)
                continue
            if roll < 0.3:
                yield b.redeem_custom(payee, v)
            else:
                yield b.redeem_simple(payee, v, rng.choice(("EURC", "USDC")), str(rng.randint(1, 500)))
                if rng.random() < 0.3:
                    yield b.negotiate(payer, v, rng.choice(("EURC", "USDC")))
            if rng.random() < 0.05:
                yield b.refused(
                    "POST",
                    f"/vouchers/{v.id}/redeem-voucher",
                    {"expectedPayment": b.payment()},
                    "already_redeemed",
                    payee,
                )
            if unfinished and rng.random() < 0.5:
                continue
            yield b.resolve(payer, v)
            if rng.random() < 0.3:
                yield b.get_voucher(payee, v)
        if unfinished:
            continue
        yield b.session_close(payee, s)
        if rng.random() < 0.5 or not partial:  # (drawn either way: the same seed, the same traffic)
            yield b.context_close(payer, ctx)
    if tour:
        yield from _tour(b)


def to_har(
    records: Iterator[dict[str, Any]] | list[dict[str, Any]], host: str = "https://api.bleepay.example"
) -> dict[str, Any]:
    """The same exchanges as a HAR 1.2 document."""
    entries = []
    for r in records:
        req, resp = r["request"], r["response"]
        query = req.get("query") or {}
        qs = "&".join(f"{k}={v}" for k, v in query.items())
        entry: dict[str, Any] = {
            "startedDateTime": r["time"],
            "time": 12.5,
            "request": {
                "method": req["method"],
                "url": host + req["path"] + (f"?{qs}" if qs else ""),
                "httpVersion": "HTTP/1.1",
                "headers": [{"name": k, "value": v} for k, v in req.get("headers", {}).items()],
                "queryString": [{"name": k, "value": str(v)} for k, v in query.items()],
                "cookies": [],
                "headersSize": -1,
                "bodySize": -1,
            },
            "response": {
                "status": resp["status"],
                "statusText": "",
                "httpVersion": "HTTP/1.1",
                "headers": [{"name": k, "value": v} for k, v in resp.get("headers", {}).items()],
                "cookies": [],
                "redirectURL": "",
                "headersSize": -1,
                "bodySize": -1,
                "content": {"size": 0, "mimeType": "application/json"},
            },
            "cache": {},
            "timings": {"send": 0, "wait": 12.5, "receive": 0},
        }
        if "body" in req:
            entry["request"]["postData"] = {
                "mimeType": "application/json",
                "text": orjson.dumps(req["body"]).decode(),
            }
        if "body" in resp:
            text = orjson.dumps(resp["body"]).decode()
            entry["response"]["content"] = {"size": len(text), "mimeType": "application/json", "text": text}
        entries.append(entry)
    return {
        "log": {"version": "1.2", "creator": {"name": "voucher-fsm", "version": "0.1.0"}, "entries": entries}
    }
