"""Session payloads (protocol-facts 2.4; D12)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from fsm.models._base import Code, Id, Model, Timestamp

__all__ = ["Session", "SessionOpenRequest", "SessionOpenResponse"]

SessionType = Literal["SESSION_DEFAULT", "payment"]


class SessionOpenRequest(Model):
    """POST /vouchers/sessions/session-open. A missing type is a warning rule, not a schema error (D12)."""

    code: Code = Field(description="The context code.")
    type: Literal["SESSION_DEFAULT"] | None = Field(default=None, description="Always SESSION_DEFAULT.")
    payeeInfo: dict[str, Any] | None = None


class SessionOpenResponse(Model):
    """The opened session."""

    id: Id
    code: Code = Field(description="The session's own code (its purpose is not documented).")
    status: Literal["OPEN", "CLOSED"]
    type: SessionType
    createdAt: Timestamp


class Session(Model):
    """A session as join, get and close return it (D12: type may read payment)."""

    id: Id
    code: Code
    status: Literal["OPEN", "CLOSED"]
    type: SessionType
    vouchers: list[Any] | None = Field(
        default=None, description="The session's vouchers (shape unspecified)."
    )
    createdAt: Timestamp | None = None
    updatedAt: Timestamp | None = None
