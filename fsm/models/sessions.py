"""Session payloads (protocol-facts 2.4; D12)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from fsm.models._base import Code, Id, Model, Timestamp

__all__ = ["Session", "SessionOpenRequest", "SessionOpenResponse"]

SessionType = Literal["SESSION_DEFAULT", "payment"]


class SessionOpenRequest(Model):
    """POST /vouchers/sessions/session-open (protocol-facts 2.4); a missing type is a warning (D12)."""

    code: Code = Field(description="The context code: 6 characters (protocol-facts 2.4; D13).")
    type: Literal["SESSION_DEFAULT"] | None = Field(
        default=None, description="Always SESSION_DEFAULT (protocol-facts 2.4; D12)."
    )
    payeeInfo: dict[str, Any] | None = None


class SessionOpenResponse(Model):
    """The opened session (protocol-facts 2.4)."""

    id: Id
    code: Code = Field(
        description="The session's own code, 6 characters; its purpose is not documented (protocol-facts 3)."
    )
    status: Literal["OPEN", "CLOSED"] = Field(description="OPEN or CLOSED (protocol-facts 1.2).")
    type: SessionType = Field(description="SESSION_DEFAULT, or payment (D12).")
    createdAt: Timestamp


class Session(Model):
    """A session as join, get and close return it (protocol-facts 2.4; D12: type may read payment)."""

    id: Id
    code: Code
    status: Literal["OPEN", "CLOSED"] = Field(description="OPEN or CLOSED (protocol-facts 1.2).")
    type: SessionType = Field(description="SESSION_DEFAULT, or payment (D12).")
    vouchers: list[Any] | None = Field(
        default=None, description="The session's vouchers (shape unspecified)."
    )
    createdAt: Timestamp | None = None
    updatedAt: Timestamp | None = None
