"""Shared constrained types and the base model of every payload.

Every model is strict (no coercion: "1" is not an integer) and allows extra
keys (the docs never forbid them), so the JSON Schema generated from a model
accepts exactly what the model accepts. Patterns avoid lookarounds: pydantic's
default (Rust) regex engine, jsonschema-rs and the ECMA-262 semantics of JSON
Schema then agree, ``$`` meaning end of input everywhere.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

__all__ = [
    "AMOUNT_PATTERN",
    "TIMESTAMP_PATTERN",
    "Address",
    "Amount",
    "Code",
    "Currency",
    "Id",
    "Integer",
    "Model",
    "NetworkName",
    "Timestamp",
    "WalletAddress",
    "integral",
]

AMOUNT_PATTERN = r"^(?:[0-9]*[1-9][0-9]*(?:\.[0-9]+)?|[0-9]+\.[0-9]*[1-9][0-9]*)$"
_DAY = (
    r"(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    r"|02-(?:0[1-9]|1[0-9]|2[0-9]))"
)
TIMESTAMP_PATTERN = (
    r"^[0-9]{4}-" + _DAY + r"T(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]+)?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
)
"""ISO 8601 with a real month, day (up to 29 in February), hour, minute and second (leap second 60)."""


class Model(BaseModel):
    """Base of every payload model: strict types, extra keys allowed."""

    model_config = ConfigDict(strict=True, extra="allow")


def integral(value: Any) -> Any:
    """An integral float as an int (the JSON Schema "integer" accepts 1.0); anything else unchanged."""
    # strict pydantic would refuse 1.0: accepted so that model and schema agree (booleans stay refused)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Integer = Annotated[int, BeforeValidator(integral)]
Amount = Annotated[
    str,
    StringConstraints(pattern=AMOUNT_PATTERN),
    Field(description='A decimal string greater than zero, e.g. "100" or "105.23" (protocol-facts 3; D13).'),
]
Currency = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z0-9]{2,8}$"),
    Field(description="A currency symbol: 2-8 uppercase letters or digits (protocol-facts 4; D13)."),
]
Code = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z0-9]{6}$"),
    Field(description="A 6-character code of uppercase letters and digits (protocol-facts 3; D13)."),
]
Id = Annotated[
    str, StringConstraints(min_length=1), Field(description="An identifier (prefixes are style, D11).")
]
Timestamp = Annotated[
    str,
    StringConstraints(pattern=TIMESTAMP_PATTERN),
    Field(
        description="An ISO 8601 timestamp of a real date and time, milliseconds optional (protocol-facts 3)."
    ),
]
NetworkName = Annotated[
    str,
    StringConstraints(min_length=4, max_length=32),
    Field(description="A network name, e.g. polygon: 4-32 characters (protocol-facts 4)."),
]
Address = Annotated[
    str,
    StringConstraints(max_length=66),
    Field(
        description="A token's contract address: 0-66 characters, empty for a native coin (protocol-facts 4)."
    ),
]
WalletAddress = Annotated[
    str,
    StringConstraints(min_length=1),
    Field(description="A wallet address: required, so never empty; hex is style (protocol-facts 2.3; D11)."),
]
