"""Context payloads (protocol-facts 2.2)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, RootModel, StringConstraints

from fsm.models._base import Code, Id, Model, Timestamp

__all__ = ["Context", "ContextCloseRequest", "ContextList", "ContextOpenRequest", "Payer"]


class Payer(Model):
    """A payer's wallet address."""

    address: str = Field(description="The payer's wallet address (hex is style, D11).")


class ContextOpenRequest(Model):
    """POST /vouchers/contexts/context-open."""

    format: Literal["numeric", "alphanum"] = Field(description="How codes are formed.")
    payers: list[Payer] = Field(min_length=1, max_length=10, description="1-10 payer wallets.")


class Context(Model):
    """A context, as open, get and close return it (D12: format may read alphanumeric)."""

    id: Id
    code: Code
    status: Literal["OPEN", "CLOSED"]
    format: Literal["numeric", "alphanum", "alphanumeric"]
    payers: list[Payer] = Field(min_length=1, max_length=10)
    createdAt: Timestamp
    updatedAt: Timestamp | None = None


class ContextList(RootModel[list[Context]]):
    """GET /vouchers/contexts: the caller's contexts, newest first."""


class ContextCloseRequest(Model):
    """POST /vouchers/contexts/:contextId/context-close."""

    payeeId: Annotated[str, StringConstraints(min_length=64, max_length=64)] | None = Field(
        description="Exactly 64 characters, or null when no payee was involved (required)."
    )
