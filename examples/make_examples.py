"""Write the bundled example logs (run from the repository root: python examples/make_examples.py).

- session-two-payments.jsonl / .har: the Sessions guide's flow (EURC + USDC), clean.
- broken.jsonl: the same kind of session with protocol mistakes a validator should catch.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import orjson

from fsm.generate import TrafficBuilder, to_har

HERE = Path(__file__).resolve().parent


def two_payments() -> list[dict]:
    """Payer opens a context, payee opens a session, two vouchers (EURC, USDC), all resolved."""
    b = TrafficBuilder(seed=2026)
    o = b.open_session()
    payer, ctx, payee, s, out = o.payer, o.ctx, o.payee, o.session, o.records
    eurc, rec = b.session_reserve(payee, s)
    out += [rec, b.redeem_simple(payee, eurc, "EURC", "100")]
    usdc, rec = b.session_reserve(payee, s)
    out += [rec, b.redeem_simple(payee, usdc, "USDC", "45.50")]
    out += [b.negotiate(payer, usdc, "EURC"), b.resolve(payer, eurc), b.resolve(payer, usdc)]
    out += [
        b.get_voucher(payee, usdc),
        b.get_session(payee, s),
        b.session_close(payee, s),
        b.context_close(payer, ctx),
    ]
    return out


def broken() -> list[dict]:
    """A session with mistakes on both sides of the wire."""
    b = TrafficBuilder(seed=7)
    o = b.open_session(join=False)
    payer, payee, s, out = o.payer, o.payee, o.session, o.records
    first, rec = b.session_reserve(payee, s)  # reserved before the payer joined (D3)
    out += [rec, b.session_join(payer, s)]
    out.append(b.redeem_simple(payee, first, "EURC", "0"))  # amount must be > 0 (D13)
    second, rec = b.session_reserve(payee, s)
    out += [rec, b.redeem_simple(payee, second, "USDC", "20")]
    out.append(b.redeem_simple(payee, second, "USDC", "25"))  # accepted twice (D16, D19)
    second.status = "DISCARDED"  # the close discards it: its answer lists it so (D17)
    out.append(b.session_close(payee, s))  # vouchers still open (D4)
    b.now += timedelta(minutes=5)
    out.append(b.get_voucher(payee, second))
    out.append(b.resolve(payee, first))  # payee token, after expiry (D10, D2)
    return out


def main() -> None:
    """Write the files."""
    flows = {"session-two-payments": two_payments(), "broken": broken()}
    for name, records in flows.items():
        (HERE / f"{name}.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    (HERE / "session-two-payments.har").write_text(
        json.dumps(to_har(flows["session-two-payments"]), indent=1) + "\n"
    )
    print("wrote", ", ".join([*sorted(p.name for p in HERE.glob("*.jsonl")), "session-two-payments.har"]))


if __name__ == "__main__":
    main()
