"""A small client of the sandbox over real HTTP (httpx) and the documented flows, for the tests."""

from __future__ import annotations

import random
from typing import Any

import httpx

EURC = ("polygon", "EURC", "0x73b3db5a96a4b9d9bcfc22b8f1b3d85a5e5b5e5b")
USDC = ("polygon", "USDC", "0x2791Bca1f2de4661ED88A30C99A7a9449Aa84174")


def payment(token: tuple[str, str, str] = EURC, amount: str = "100", wallet: str = "0x" + "2" * 40) -> dict:
    network, currency, address = token
    return {
        "network": network,
        "currency": currency,
        "currencyAddress": address,
        "amount": amount,
        "wallet": {"address": wallet},
    }


CUSTOM = {
    "networks": [{"network": "ethereum", "type": "evm", "chainId": "1"}],
    "payments": [
        {
            "type": "send_transaction",
            "input": {
                "from": "{payer}",
                "to": "0x" + "3" * 40,
                "value": "0",
                "data": "0xa694fc3a" + "0" * 64,
            },
        }
    ],
    "extras": [],
}


class Api:
    """Calls of one party: ``call`` returns (status, body); ``ok`` asserts a 200 and returns the body."""

    def __init__(self, http: httpx.Client, token: str | None = None) -> None:
        self.http = http
        self.token = token

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> tuple[int, Any]:
        headers = {"authorization": f"Bearer {self.token}"} if self.token else {}
        r = self.http.request(method, "/api/v1" + path, json=body, headers=headers, params=params or None)
        assert r.status_code < 500, (r.status_code, r.text)
        assert r.headers["content-type"] == "application/json"
        return r.status_code, r.json()

    def ok(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        status, out = self.call(method, path, body, **params)
        assert status == 200, (method, path, status, out)
        return out


def sign_in_payer(http: httpx.Client, rng: random.Random | None = None) -> Api:
    rng = rng or random.Random(0)
    data = {"installationId": f"{rng.getrandbits(160):040x}", "password": f"{rng.getrandbits(160):040x}"}
    out = Api(http).ok("POST", "/auth/sign-in", {"type": "mobile-device", "data": data})
    return Api(http, out["authorization"]["token"])


def sign_in_payee(http: httpx.Client, code: str) -> Api:
    body = {"type": "resource", "data": {"resource": f"voucher::context::code::{code}"}}
    out = Api(http).ok("POST", "/auth/sign-in", body)
    return Api(http, out["authorization"]["token"])


def open_context(payer: Api) -> dict:
    return payer.ok(
        "POST",
        "/vouchers/contexts/context-open",
        {"format": "alphanum", "payers": [{"address": "0x" + "1" * 40}]},
    )


def parties(http: httpx.Client, rng: random.Random | None = None) -> tuple[Api, dict, Api]:
    """A payer signs in and opens a context; a payee signs in with its code: (payer, context, payee)."""
    payer = sign_in_payer(http, rng)
    ctx = open_context(payer)
    return payer, ctx, sign_in_payee(http, ctx["code"])


def two_payments(http: httpx.Client) -> dict:
    """The documented two-payment session (EURC + USDC), as in docs/guide.md."""
    payer, ctx, payee = parties(http)
    s = payee.ok("POST", "/vouchers/sessions/session-open", {"code": ctx["code"], "type": "SESSION_DEFAULT"})
    assert payer.ok("POST", f"/vouchers/sessions/{s['id']}/session-join", {})["status"] == "OPEN"
    vouchers = []
    for token in (EURC, USDC):
        v = payee.ok("POST", f"/vouchers/sessions/{s['id']}/reserve-voucher", {})
        assert v["status"] == "RESERVED"
        out = payee.ok("POST", f"/vouchers/{v['id']}/redeem-voucher", {"expectedPayment": payment(token)})
        assert (out["status"], out["type"]) == ("REDEEMED", "SIMPLE")
        vouchers.append(v["id"])
    for vid in vouchers:
        assert (
            payer.ok("POST", f"/vouchers/{vid}/resolve-voucher", {"receipts": [{"paymentId": "pay_1"}]})[
                "status"
            ]
            == "RESOLVED"
        )
    closed = payee.ok("POST", f"/vouchers/sessions/{s['id']}/session-close", {})
    assert closed["status"] == "CLOSED" and [v["status"] for v in closed["vouchers"]] == ["RESOLVED"] * 2
    return {"payer": payer, "payee": payee, "context": ctx, "session": s, "vouchers": vouchers}


def simple_payment(http: httpx.Client) -> dict:
    """The documented simple payment: a standalone voucher, FX negotiated, resolved, polled."""
    payer, ctx, payee = parties(http)
    v = payee.ok("POST", "/vouchers/reserve-voucher", {"code": ctx["code"]})
    payee.ok("POST", f"/vouchers/{v['id']}/redeem-voucher", {"expectedPayment": payment(EURC, "100")})
    fx = payer.ok("POST", f"/vouchers/{v['id']}/negotiate-voucher", {"suppliedPayment": payment(USDC, "105")})
    assert fx["suppliedPayment"]["amount"] == "108.00"  # 100 EURC at the fixed rates (1.08 / 1.00)
    payer.ok("POST", f"/vouchers/{v['id']}/resolve-voucher", {"receipts": [{"paymentId": "pay_2"}]})
    assert payee.ok("GET", f"/vouchers/{v['id']}")["status"] == "RESOLVED"
    return {"payer": payer, "payee": payee, "context": ctx, "voucher": v["id"]}


def contract_call(http: httpx.Client) -> dict:
    """The documented contract call: a CUSTOM voucher with one transaction."""
    payer, ctx, payee = parties(http)
    v = payee.ok("POST", "/vouchers/reserve-voucher", {"code": ctx["code"]})
    out = payee.ok("POST", f"/vouchers/{v['id']}/redeem-voucher", CUSTOM)
    assert (out["type"], out["payments"]) == ("CUSTOM", CUSTOM["payments"])
    payer.ok("POST", f"/vouchers/{v['id']}/resolve-voucher", {"receipts": [{"paymentId": "pay_3"}]})
    return {"payer": payer, "payee": payee, "context": ctx, "voucher": v["id"]}
