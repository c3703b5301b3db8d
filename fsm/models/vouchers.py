"""Voucher payloads (protocol-facts 2.3, 1.4, 1.5; D7, D8, D13)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, RootModel, StringConstraints, model_validator
from pydantic.json_schema import SkipJsonSchema

from fsm.models._base import Code, Id, Model, NetworkName, Timestamp, integral
from fsm.models.common import Payment
from fsm.models.contexts import PageQuery

__all__ = [
    "CustomRedeem",
    "InteropInfoResponse",
    "InteropInitRequest",
    "InteropInitResponse",
    "InteropQuery",
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
    "VoucherListQuery",
]

VoucherStatus = Literal["RESERVED", "REDEEMED", "RESOLVED", "DISCARDED", "EXPIRED"]
Short = Annotated[str, StringConstraints(min_length=1, max_length=256)]
_STATUS = "RESERVED, REDEEMED, RESOLVED, DISCARDED or EXPIRED (protocol-facts 1.3; D2)."
_TYPE = "SIMPLE or CUSTOM, fixed by the redeem (protocol-facts 1.4; D7)."


class ReserveVoucherRequest(Model):
    """POST /vouchers/reserve-voucher (protocol-facts 2.3)."""

    code: Code = Field(description="The context code: 6 characters (protocol-facts 2.3; D13).")


class ReservedVoucher(Model):
    """The answer to both reserve calls, standalone and in a session (protocol-facts 2.3, 2.4)."""

    id: Id
    code: Code = Field(description="The voucher code: 6 characters (protocol-facts 3; D13).")
    status: VoucherStatus = Field(description=_STATUS)
    expiresAt: Timestamp


class NetworkSpec(Model):
    """A network a CUSTOM voucher runs on (protocol-facts 2.3, 4)."""

    network: NetworkName
    type: Literal["evm", "solana"] = Field(description="evm or solana (protocol-facts 2.3).")
    chainId: str


class TransactionInput(Model):
    """A contract call (protocol-facts 4)."""

    from_: Literal["{payer}"] = Field(
        alias="from", description="The literal {payer}, replaced by the wallet (protocol-facts 4)."
    )
    to: Annotated[str, StringConstraints(min_length=1)] = Field(
        description="The contract address: required, so never empty (protocol-facts 2.3, 4)."
    )
    value: str = Field(description='Native amount; "0" for pure calls.')
    data: str = Field(description="ABI-encoded calldata.")

    model_config = ConfigDict(populate_by_name=False)


class TransactionPayment(Model):
    """A CUSTOM payment: one transaction to send (protocol-facts 2.3)."""

    type: Literal["send_transaction"] = Field(description="send_transaction (protocol-facts 2.3).")
    input: TransactionInput


_CUSTOM_KEYS = ("networks", "payments", "extras")


class SimpleRedeem(Model):
    """SIMPLE terms: one token transfer (protocol-facts 1.4; D7: no CUSTOM fields alongside)."""

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
    """CUSTOM terms: explicit on-chain instructions (protocol-facts 1.4; D7: no expectedPayment alongside)."""

    model_config = ConfigDict(json_schema_extra={"not": {"required": ["expectedPayment"]}})

    networks: list[NetworkSpec] = Field(
        min_length=1, max_length=3, description="1-3 networks (protocol-facts 3)."
    )
    payments: list[TransactionPayment] = Field(
        min_length=1, max_length=1, description="Exactly one payment (protocol-facts 3)."
    )
    extras: list[Any] | None = Field(
        default=None, max_length=5, description="0-5 extra calls; shape undocumented (protocol-facts 3)."
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
    """The redeemed voucher: SIMPLE has expectedPayment, CUSTOM networks/payments (protocol-facts 2.3)."""

    id: Id
    status: VoucherStatus = Field(description=_STATUS)
    type: Literal["SIMPLE", "CUSTOM"] = Field(description=_TYPE)
    expectedPayment: Payment | None = None
    networks: list[NetworkSpec] | None = None
    payments: list[TransactionPayment] | None = None
    extras: list[Any] | None = None


class NegotiateVoucherRequest(Model):
    """POST /vouchers/:voucherId/negotiate-voucher (SIMPLE only, D8)."""

    suppliedPayment: Payment


class NegotiateVoucherResponse(Model):
    """The voucher with the FX-adjusted suppliedPayment, expectedPayment unchanged (D8)."""

    id: Id
    status: VoucherStatus = Field(description=_STATUS)
    expectedPayment: Payment
    suppliedPayment: Payment


class Receipt(Model):
    """A payment receipt (protocol-facts 1.5)."""

    paymentId: Annotated[str, StringConstraints(min_length=1)] = Field(
        description="The payment's id: required, so never empty (protocol-facts 2.3)."
    )


class ResolveVoucherRequest(Model):
    """POST /vouchers/:voucherId/resolve-voucher (protocol-facts 2.3)."""

    receipts: list[Receipt] = Field(
        min_length=1, max_length=5, description="1-5 receipts (protocol-facts 3)."
    )


class ResolveVoucherResponse(Model):
    """The resolved voucher (protocol-facts 2.3)."""

    id: Id
    status: VoucherStatus = Field(description=_STATUS)


class SignVoucherRequest(Model):
    """POST /vouchers/:voucherId/sign-voucher (protocol-facts 2.3)."""

    publicKey: Short = Field(description="1-256 characters (protocol-facts 2.3).")
    signature: Short = Field(description="1-256 characters (protocol-facts 2.3; a secret: never shown, D20).")


class Voucher(Model):
    """The full voucher object: get, sign, discard, query (protocol-facts 2.3)."""

    id: Id
    status: VoucherStatus = Field(description=_STATUS)
    code: Code | None = None
    type: Literal["SIMPLE", "CUSTOM"] | None = Field(default=None, description=_TYPE)
    expectedPayment: Payment | None = None
    suppliedPayment: Payment | None = None
    payments: list[TransactionPayment] | None = None
    networks: list[NetworkSpec] | None = None
    extras: list[Any] | None = None
    expiresAt: Timestamp | None = None
    createdAt: Timestamp | None = None
    updatedAt: Timestamp | None = None


class VoucherList(RootModel[list[Voucher]]):
    """GET /vouchers: vouchers ordered by creation time (protocol-facts 2.3)."""


class VoucherListQuery(PageQuery):
    """GET /vouchers query parameters (protocol-facts 2.3)."""

    status: VoucherStatus | SkipJsonSchema[None] = Field(
        default=None, description="Only vouchers in this status: " + _STATUS
    )


class InteropQuery(Model):
    """Query parameters of interop-init and interop-info (protocol-facts 2.3, 3)."""

    id: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        description="The submission's id: required, 1-128 characters (protocol-facts 2.3)."
    )
    paymentIndex: Annotated[int, Field(ge=0, le=10), BeforeValidator(integral)] | SkipJsonSchema[None] = (
        Field(default=None, description="Which payment: an integer 0-10 (protocol-facts 2.3, 3).")
    )
    vid: Annotated[str, StringConstraints(min_length=1, max_length=32)] | SkipJsonSchema[None] = Field(
        default=None, description="An override: 1-32 characters (protocol-facts 2.3)."
    )


class InteropInitRequest(Model):
    """POST /vouchers/:voucherId/submit/interop-init (protocol-facts 2.3)."""

    signature: Short | None = Field(
        default=None, description="Optional, 1-256 characters (protocol-facts 2.3)."
    )


class InteropInitResponse(Model):
    """The submission id (protocol-facts 2.3)."""

    id: str


class InteropInfoResponse(Model):
    """GET /vouchers/:voucherId/status/interop-info (protocol-facts 2.3)."""

    status: Literal["PENDING", "SUCCEEDED", "FAILED", "UNKNOWN"] = Field(
        description="PENDING, SUCCEEDED, FAILED or UNKNOWN (protocol-facts 2.3)."
    )
