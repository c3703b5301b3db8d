"""The JSONL exchange record: one request and its response per line (``docs/log-format.md``).

The one source of the record's shape: ``schemas/exchange.schema.json`` is generated from these models,
:func:`fsm.exchange.build_exchange` compiles that schema, and a test holds the model, the schema and
the validator's explaining check to one verdict on every edge value.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fsm.models._base import Integer

__all__ = ["ExchangeRecord", "RequestRecord", "ResponseRecord"]


class RequestRecord(BaseModel):
    """The request half of an exchange."""

    model_config = ConfigDict(strict=True, extra="allow")

    method: str = Field(min_length=1, description="HTTP method, e.g. POST.")
    path: str = Field(
        min_length=1,
        description="Request path, e.g. /api/v1/vouchers/vch_1/redeem-voucher; a full URL or a "
        "path with a query string is accepted too.",
    )
    query: dict[str, Any] | None = Field(default=None, description="Query parameters by name.")
    headers: dict[str, str] | None = Field(
        default=None, description="Headers by name (any case); Authorization carries the bearer token."
    )
    body: Any = Field(default=None, description="The JSON body, parsed; absent or null for no body.")
    bodyText: str | None = Field(default=None, description="A captured body that is not JSON, as text.")
    bodyNotKept: bool | None = Field(
        default=None,
        description="true: the capture passed a body on without keeping it (longer than its bound); it is "
        "not checked, and an input.body-not-checked info says so.",
    )


class ResponseRecord(BaseModel):
    """The response half of an exchange."""

    model_config = ConfigDict(strict=True, extra="allow")

    status: Integer = Field(
        ge=0, le=599, description="HTTP status; 0 means no response was recorded (200.0 reads as 200)."
    )
    headers: dict[str, str] | None = Field(default=None, description="Headers by name.")
    body: Any = Field(default=None, description="The JSON body, parsed.")
    bodyText: str | None = Field(default=None, description="A captured body that is not JSON, as text.")
    bodyNotKept: bool | None = Field(
        default=None,
        description="true: the capture passed a body on without keeping it (longer than its bound); it is "
        "not checked, and an input.body-not-checked info says so.",
    )
    fromCache: bool | None = Field(
        default=None,
        description="true: the client's cache gave this answer; the server was not asked (a HAR's "
        "_fromCache or _fetchType). Transport (transport.cache): no new status observed.",
    )


class ExchangeRecord(BaseModel):
    """One exchange: what was asked, what was answered, and when."""

    model_config = ConfigDict(
        strict=True,
        extra="allow",
        json_schema_extra={"description": "One line of a voucher-fsm JSONL exchange log."},
    )

    time: str | None = Field(
        default=None,
        description="When the request was sent, ISO 8601 (e.g. 2026-06-09T12:00:00.000Z). "
        "Needed to infer expiry (D2) and to notice clocks going backwards (D19).",
    )
    request: RequestRecord
    response: ResponseRecord
