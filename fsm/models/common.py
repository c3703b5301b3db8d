"""Shapes shared by several endpoints: the error envelope (D15), empty bodies, payment terms."""

from __future__ import annotations

from typing import Any

from pydantic import Field, RootModel

from fsm.models._base import Address, Amount, Currency, Model, NetworkName, WalletAddress

__all__ = ["EmptyObject", "ErrorEnvelope", "Payment", "Wallet"]


class ErrorEnvelope(Model):
    """An error body (D15): the docs give only codes, so the kit's envelope is {code, message}."""

    code: str = Field(description="The error code, e.g. already_redeemed.")
    message: str | None = Field(default=None, description="A human-readable explanation.")


class EmptyObject(RootModel[dict[str, Any]]):
    """A body the docs show as {}: session join, reserve, close, discard (protocol-facts 2.3, 2.4)."""


class Wallet(Model):
    """A wallet (protocol-facts 4)."""

    address: WalletAddress


class Payment(Model):
    """Payment terms: expectedPayment (the payee's) or suppliedPayment (the payer's; protocol-facts 4)."""

    network: NetworkName
    currency: Currency
    currencyAddress: Address
    amount: Amount
    wallet: Wallet = Field(
        description="Where the payee is paid (expected) or what the payer pays from (supplied)."
    )
