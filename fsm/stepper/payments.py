"""Payments and networks (D14): a payment's network, currency and address must agree with the registry.

The registry starts with the tokens the docs document (``tokens.json``) and learns more from accepted
answers that list currencies (an operation's ``learns``). The field names of a payment object are data
(``payment_fields`` in ``operations.json``).
"""

from __future__ import annotations

from collections.abc import Mapping

from fsm._shared import per_spec
from fsm.exchange import Exchange
from fsm.spec.model import OperationSpec, Ref, Spec
from fsm.stepper.call import Call
from fsm.stepper.refs import MISSING, Reader, reader
from fsm.violation import Finding

__all__ = ["Currencies"]


class Currencies:
    """Known (symbol, network) -> address and (network, address) -> symbol, addresses in lower case."""

    def __init__(self, spec: Spec) -> None:
        self.fields = spec.payment_fields
        self._keys = (self.fields.network, self.fields.currency, self.fields.address)
        planned = per_spec("currencies", spec, lambda: _planned(spec))
        currencies, addresses, self._payments, self._learns = planned
        self.currencies: dict[tuple[str, str], str] = dict(currencies)  # (a copy: a run learns more)
        self.addresses: dict[tuple[str, str], str] = dict(addresses)

    def learn(self, symbol: str, network: str, address: str) -> None:
        """Add one token to the registry."""
        self.currencies[(symbol, network)] = address.lower()
        self.addresses[(network, address.lower())] = symbol

    def learn_from(self, op: OperationSpec, ex: Exchange, params: Mapping[str, str]) -> None:
        """Add every token an accepted answer lists (the operation's ``learns``)."""
        read = self._learns.get(op.id)
        if read is None or not ex.accepted:
            return
        items = read["tokens"](ex, params, MISSING)
        if not isinstance(items, list):
            return
        for item in items:
            symbol = read["symbol"](ex, params, item)
            network = read["network"](ex, params, item)
            address = read["address"](ex, params, item)
            if isinstance(symbol, str) and isinstance(network, str) and isinstance(address, str):
                self.learn(symbol, network, address)

    def check(self, op: OperationSpec, ex: Exchange, params: Mapping[str, str]) -> list[Finding]:
        """``network.mismatch`` or ``network.unknown-currency`` for each payment the request carries."""
        acc: list[Finding] = []
        self.judge(Call(ex, op, params).as_accepted(), acc)
        return acc

    def judge(self, call: Call, acc: list[Finding]) -> None:
        """``payments``: :meth:`check` an accepted call (findings added); a refused one draws none."""
        if not call.accepted:
            return
        ex, params = call.ex, call.params
        net_key, cur_key, addr_key = self._keys
        for ref, read in self._payments[call.op.id]:
            pay = read(ex, params, MISSING)
            if not isinstance(pay, dict):
                continue
            network, symbol, address = pay.get(net_key), pay.get(cur_key), pay.get(addr_key)
            if not (isinstance(network, str) and isinstance(symbol, str) and isinstance(address, str)):
                continue
            lower = address.lower()
            known = self.currencies.get((symbol, network))
            owner = self.addresses.get((network, lower))
            if known == lower and owner == symbol:
                continue  # (the registry agrees)
            where = f"/request/body{ref.key}"
            if known is not None and known != lower:
                acc.append(
                    Finding(
                        "network.mismatch",
                        f"{symbol} on {network} has address {known}, not {address}",
                        instance_path=f"{where}/{addr_key}",
                        expected=known,
                        actual=address,
                    )
                )
            elif owner is not None and owner != symbol:
                acc.append(
                    Finding(
                        "network.mismatch",
                        f"{address} on {network} is {owner}, not {symbol}",
                        instance_path=f"{where}/{cur_key}",
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
                        actual={cur_key: symbol, net_key: network, addr_key: address},
                    )
                )


Planned = tuple[
    dict[tuple[str, str], str],
    dict[tuple[str, str], str],
    dict[str, tuple[tuple[Ref, Reader], ...]],
    dict[str, dict[str, Reader]],
]


def _planned(spec: Spec) -> Planned:
    """The documented registry, and per operation the readers of its payments and ``learns``.

    Made once a spec; the registry as :meth:`Currencies.learn` fills it, token by token.
    """
    currencies = {(symbol, network): address.lower() for symbol, network, address in spec.tokens}
    addresses = {(network, address.lower()): symbol for symbol, network, address in spec.tokens}
    payments = {op.id: tuple((ref, reader(ref)) for ref in op.payments) for op in spec.operations}
    learns = {
        op.id: {name: reader(ref) for name, ref in op.learns.items()}
        for op in spec.operations
        if op.learns is not None
    }
    return currencies, addresses, payments, learns
