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
    "Amount",
    "Code",
    "Currency",
    "Id",
    "Integer",
    "Model",
    "NetworkName",
    "Timestamp",
]

AMOUNT_PATTERN = r"^(?:[0-9]*[1-9][0-9]*(?:\.[0-9]+)?|[0-9]+\.[0-9]*[1-9][0-9]*)$"


class Model(BaseModel):
    """Base of every payload model: strict types, extra keys allowed."""

    model_config = ConfigDict(strict=True, extra="allow")


def _integral(value: Any) -> Any:
    # JSON Schema's "integer" accepts 1.0; strict pydantic would not. Accept integral floats
    # so that model and schema agree (booleans stay rejected by both).
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Integer = Annotated[int, BeforeValidator(_integral)]
Amount = Annotated[
    str,
    StringConstraints(pattern=AMOUNT_PATTERN),
    Field(description='A decimal string greater than zero, e.g. "100" or "105.23" (D13).'),
]
Currency = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z0-9]{2,8}$"),
    Field(description="A currency symbol: 2-8 uppercase letters or digits (D13)."),
]
Code = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Z0-9]{6}$"),
    Field(description="A 6-character code of uppercase letters and digits (D13)."),
]
Id = Annotated[
    str, StringConstraints(min_length=1), Field(description="An identifier (prefixes are style, D11).")
]
Timestamp = Annotated[
    str,
    StringConstraints(
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2})$"
    ),
    Field(description="An ISO 8601 timestamp, with or without milliseconds."),
]
NetworkName = Annotated[
    str, StringConstraints(min_length=4, max_length=32), Field(description="A network name, e.g. polygon.")
]
