"""Voucher payloads (protocol-facts 2.3, 1.4, 1.5; D7, D8, D13)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, RootModel, StringConstraints, model_validator

from fsm.models._base import Code, Id, Model, Timestamp
from fsm.models.common import Payment

__all__ = [
    "CustomRedeem",
    "InteropInfoResponse",
    "InteropInitRequest",
    "InteropInitResponse",
    "NegotiateVoucherRequest",
    "NegotiateVoucherResponse",
    "NetworkSpec",
    "Receipt",
    "RedeemVoucherRequest",
    "RedeemVoucherResponse",
    "ReserveVoucherRequest",
    "ReservedVoucher",
    "ResolveVoucherRequest",
    "ResolveVoucherResponse",
    "SignVoucherRequest",
    "SimpleRedeem",
    "TransactionInput",
    "TransactionPayment",
    "Voucher",
    "VoucherList",
]

VoucherStatus = Literal["RESERVED", "REDEEMED", "RESOLVED", "DISCARDED", "EXPIRED"]
Short = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class ReserveVoucherRequest(Model):
    """POST /vouchers/reserve-voucher."""

    code: Code = Field(description="The context code (6 characters).")


class ReservedVoucher(Model):
    """The answer to both reserve calls (standalone and in a session)."""

    id: Id
    code: Code = Field(description="The voucher code.")
    status: VoucherStatus
    expiresAt: Timestamp


class NetworkSpec(Model):
    """A network a CUSTOM voucher runs on."""

    network: str
    type: Literal["evm", "solana"]
    chainId: str


class TransactionInput(Model):
    """A contract call."""

    from_: Literal["{payer}"] = Field(
        alias="from", description="The literal {payer}, replaced by the wallet."
    )
    to: str
    value: str = Field(description='Native amount; "0" for pure calls.')
    data: str = Field(description="ABI-encoded calldata.")

    model_config = ConfigDict(populate_by_name=False)


class TransactionPayment(Model):
    """A CUSTOM payment: one transaction to send."""

    type: Literal["send_transaction"]
    input: TransactionInput


_CUSTOM_KEYS = ("networks", "payments", "extras")


class SimpleRedeem(Model):
    """SIMPLE terms: one token transfer (D7: no CUSTOM fields alongside)."""

    model_config = ConfigDict(json_schema_extra={"not": {"anyOf": [{"required": [k]} for k in _CUSTOM_KEYS]}})

    expectedPayment: Payment
    payeeInfo: dict[str, Any] | None = Field(default=None, description="Optional; shape undocumented.")

    @model_validator(mode="before")
    @classmethod
    def _one_shape(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(k in data for k in _CUSTOM_KEYS):
            raise ValueError("send expectedPayment (SIMPLE) or networks+payments (CUSTOM), not both (D7)")
        return data


class CustomRedeem(Model):
    """CUSTOM terms: explicit on-chain instructions (D7: no expectedPayment alongside)."""

    model_config = ConfigDict(json_schema_extra={"not": {"required": ["expectedPayment"]}})

    networks: list[NetworkSpec] = Field(min_length=1, max_length=3)
    payments: list[TransactionPayment] = Field(min_length=1, max_length=1)
    extras: list[Any] | None = Field(
        default=None, max_length=5, description="0-5 extra calls; shape undocumented."
    )
    payeeInfo: dict[str, Any] | None = Field(default=None, description="Optional; shape undocumented.")

    @model_validator(mode="before")
    @classmethod
    def _one_shape(cls, data: Any) -> Any:
        if isinstance(data, dict) and "expectedPayment" in data:
            raise ValueError("send expectedPayment (SIMPLE) or networks+payments (CUSTOM), not both (D7)")
        return data


class RedeemVoucherRequest(RootModel[SimpleRedeem | CustomRedeem]):
    """POST /vouchers/:voucherId/redeem-voucher: exactly one shape (D7)."""


class RedeemVoucherResponse(Model):
    """The redeemed voucher: SIMPLE carries expectedPayment, CUSTOM networks/payments/extras."""

    id: Id
    status: VoucherStatus
    type: Literal["SIMPLE", "CUSTOM"]
    expectedPayment: Payment | None = None
    networks: list[NetworkSpec] | None = None
    payments: list[TransactionPayment] | None = None
    extras: list[Any] | None = None


class NegotiateVoucherRequest(Model):
    """POST /vouchers/:voucherId/negotiate-voucher (SIMPLE only, D8)."""

    suppliedPayment: Payment


class NegotiateVoucherResponse(Model):
    """The voucher with the FX-adjusted suppliedPayment; expectedPayment unchanged."""

    id: Id
    status: VoucherStatus
    expectedPayment: Payment
    suppliedPayment: Payment


class Receipt(Model):
    """A payment receipt."""

    paymentId: str


class ResolveVoucherRequest(Model):
    """POST /vouchers/:voucherId/resolve-voucher."""

    receipts: list[Receipt] = Field(min_length=1, max_length=5)


class ResolveVoucherResponse(Model):
    """The resolved voucher."""

    id: Id
    status: VoucherStatus


class SignVoucherRequest(Model):
    """POST /vouchers/:voucherId/sign-voucher."""

    publicKey: Short
    signature: Short = Field(description="1-256 characters (a secret: never shown, D20).")


class Voucher(Model):
    """The full voucher object (get, sign, discard, query)."""

    id: Id
    status: VoucherStatus
    code: Code | None = None
    type: Literal["SIMPLE", "CUSTOM"] | None = None
    expectedPayment: Payment | None = None
    suppliedPayment: Payment | None = None
    payments: list[TransactionPayment] | None = None
    networks: list[NetworkSpec] | None = None
    extras: list[Any] | None = None
    expiresAt: Timestamp | None = None
    createdAt: Timestamp | None = None
    updatedAt: Timestamp | None = None


class VoucherList(RootModel[list[Voucher]]):
    """GET /vouchers: vouchers ordered by creation time."""


class InteropInitRequest(Model):
    """POST /vouchers/:voucherId/submit/interop-init."""

    signature: Short | None = None


class InteropInitResponse(Model):
    """The submission id."""

    id: str


class InteropInfoResponse(Model):
    """GET /vouchers/:voucherId/status/interop-info."""

    status: Literal["PENDING", "SUCCEEDED", "FAILED", "UNKNOWN"]
