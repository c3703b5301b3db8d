"""Finance payloads (protocol-facts 2.5)."""

from __future__ import annotations

from pydantic import Field, RootModel
from pydantic.json_schema import SkipJsonSchema

from fsm.models._base import Address, Amount, Currency, Integer, Model, NetworkName

__all__ = [
    "ConvertRequest",
    "ConvertResponse",
    "CurrenciesQuery",
    "CurrencyInfo",
    "CurrencyList",
    "NetworkInfo",
    "NetworkList",
    "NetworksQuery",
]


class NetworkInfo(Model):
    """A supported network (protocol-facts 2.5)."""

    network: NetworkName
    type: str = Field(description="evm, solana, etc.")
    chainId: str
    nativeCurrency: str
    enabled: bool


class NetworkList(RootModel[list[NetworkInfo]]):
    """GET /finance/networks (protocol-facts 2.5)."""


class CurrencyInfo(Model):
    """A supported token (protocol-facts 2.5); the validator learns network/address pairs from these (D14)."""

    symbol: Currency
    network: NetworkName
    address: Address
    decimals: Integer
    bridgeable: bool
    enabled: bool


class CurrencyList(RootModel[list[CurrencyInfo]]):
    """GET /finance/currencies (protocol-facts 2.5)."""


class ConvertRequest(Model):
    """POST /finance/currencies/convert: every field required (protocol-facts 2.5)."""

    sourceNetwork: NetworkName
    targetNetwork: NetworkName
    sourceCurrency: Currency
    targetCurrency: Currency
    sourceCurrencyAddress: Address
    targetCurrencyAddress: Address
    amount: Amount


class ConvertResponse(RootModel[Amount]):
    """The converted amount, a bare JSON string such as "92.15" (protocol-facts 2.5)."""


class NetworksQuery(Model):
    """GET /finance/networks query parameters (protocol-facts 2.5)."""

    network: NetworkName | SkipJsonSchema[None] = None
    srcNetwork: str | SkipJsonSchema[None] = None
    dstNetwork: str | SkipJsonSchema[None] = None
    limit: Integer | SkipJsonSchema[None] = Field(
        default=None, description="How many, an integer (protocol-facts 2.5, 3)."
    )
    offset: Integer | SkipJsonSchema[None] = Field(
        default=None, description="How many to skip, an integer (protocol-facts 3)."
    )


class CurrenciesQuery(Model):
    """GET /finance/currencies query parameters (protocol-facts 2.5)."""

    network: str | SkipJsonSchema[None] = None
    symbol: str | SkipJsonSchema[None] = None
    address: str | SkipJsonSchema[None] = None
    limit: Integer | SkipJsonSchema[None] = Field(
        default=None, description="How many, an integer (protocol-facts 2.5, 3)."
    )
    offset: Integer | SkipJsonSchema[None] = Field(
        default=None, description="How many to skip, an integer (protocol-facts 3)."
    )
