"""Finance payloads (protocol-facts 2.5)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, RootModel, StringConstraints

from fsm.models._base import Amount, Currency, Integer, Model, NetworkName

__all__ = ["ConvertRequest", "ConvertResponse", "CurrencyInfo", "CurrencyList", "NetworkInfo", "NetworkList"]

Address = Annotated[str, StringConstraints(max_length=66)]


class NetworkInfo(Model):
    """A supported network."""

    network: str
    type: str = Field(description="evm, solana, etc.")
    chainId: str
    nativeCurrency: str
    enabled: bool


class NetworkList(RootModel[list[NetworkInfo]]):
    """GET /finance/networks."""


class CurrencyInfo(Model):
    """A supported token; the validator learns network/address pairs from these (D14)."""

    symbol: Currency
    network: str
    address: str
    decimals: Integer
    bridgeable: bool
    enabled: bool


class CurrencyList(RootModel[list[CurrencyInfo]]):
    """GET /finance/currencies."""


class ConvertRequest(Model):
    """POST /finance/currencies/convert: every field required."""

    sourceNetwork: NetworkName
    targetNetwork: NetworkName
    sourceCurrency: Currency
    targetCurrency: Currency
    sourceCurrencyAddress: Address = Field(description="0-66 characters.")
    targetCurrencyAddress: Address = Field(description="0-66 characters.")
    amount: Amount


class ConvertResponse(RootModel[Amount]):
    """The converted amount, a bare JSON string such as "92.15"."""
