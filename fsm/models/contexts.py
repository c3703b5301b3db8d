"""Context payloads (protocol-facts 2.2)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, RootModel, StringConstraints
from pydantic.json_schema import SkipJsonSchema

from fsm.models._base import Code, Id, Integer, Model, Timestamp, WalletAddress

__all__ = [
    "Context",
    "ContextCloseRequest",
    "ContextList",
    "ContextListQuery",
    "ContextOpenRequest",
    "PageQuery",
    "Payer",
]


class Payer(Model):
    """A payer's wallet address (protocol-facts 2.2)."""

    address: WalletAddress


class ContextOpenRequest(Model):
    """POST /vouchers/contexts/context-open (protocol-facts 2.2)."""

    format: Literal["numeric", "alphanum"] = Field(description="How codes are formed (protocol-facts 2.2).")
    payers: list[Payer] = Field(
        min_length=1, max_length=10, description="1-10 payer wallets (protocol-facts 3)."
    )


class Context(Model):
    """A context, as open, get and close return it (protocol-facts 2.2; D12: format may read alphanumeric)."""

    id: Id
    code: Code
    status: Literal["OPEN", "CLOSED"] = Field(description="OPEN or CLOSED (protocol-facts 1.1).")
    format: Literal["numeric", "alphanum", "alphanumeric"] = Field(
        description="numeric, or alphanum (alphanumeric on get-context; D12)."
    )
    payers: list[Payer] = Field(
        min_length=1, max_length=10, description="1-10 payer wallets (protocol-facts 3)."
    )
    createdAt: Timestamp
    updatedAt: Timestamp | None = None


class ContextList(RootModel[list[Context]]):
    """GET /vouchers/contexts: the caller's contexts, newest first (protocol-facts 2.2)."""


class ContextCloseRequest(Model):
    """POST /vouchers/contexts/:contextId/context-close (protocol-facts 2.2)."""

    payeeId: Annotated[str, StringConstraints(min_length=64, max_length=64)] | None = Field(
        description="Exactly 64 characters, or null when no payee was involved (protocol-facts 2.2, 3)."
    )


class PageQuery(Model):
    """Paging query parameters of a list (protocol-facts 2.2, 2.3, 3)."""

    limit: Integer | SkipJsonSchema[None] = Field(
        default=None, description="How many, an integer (protocol-facts 2.2, 3)."
    )
    offset: Integer | SkipJsonSchema[None] = Field(
        default=None, description="How many to skip, an integer (protocol-facts 3)."
    )
    since: Integer | SkipJsonSchema[None] = Field(
        default=None, description="Unix milliseconds, an integer (protocol-facts 2.2)."
    )
    until: Integer | SkipJsonSchema[None] = Field(
        default=None, description="Unix milliseconds, an integer (protocol-facts 2.2)."
    )


class ContextListQuery(PageQuery):
    """GET /vouchers/contexts query parameters (protocol-facts 2.2)."""
