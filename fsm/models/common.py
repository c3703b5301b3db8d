"""Shapes shared by several endpoints: the error envelope (D15), empty bodies, payment terms."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, RootModel, StringConstraints

from fsm.models._base import Amount, Currency, Model, NetworkName

__all__ = ["EmptyObject", "ErrorEnvelope", "Payment", "Wallet"]


class ErrorEnvelope(Model):
    """An error body (D15): the docs give only codes, so the kit's envelope is {code, message}."""

    code: str = Field(description="The error code, e.g. already_redeemed.")
    message: str | None = Field(default=None, description="A human-readable explanation.")


class EmptyObject(RootModel[dict[str, Any]]):
    """A body the docs show as {} (session join, reserve in session, close, discard)."""


class Wallet(Model):
    """A wallet."""

    address: str = Field(description="The wallet address (hex is style, not a rule: D11).")


class Payment(Model):
    """Payment terms: expectedPayment (the payee's) or suppliedPayment (the payer's, after FX)."""

    network: NetworkName
    currency: Currency
    currencyAddress: Annotated[str, StringConstraints(max_length=66)] = Field(
        description="The token's contract address (0-66 characters; empty for a native coin)."
    )
    amount: Amount
    wallet: Wallet = Field(
        description="Where the payee is paid (expected) or what the payer pays from (supplied)."
    )
