"""References: where an exchange carries a value (``path:voucherId``, ``response:/id``, ``item:/code``).

One JSON-pointer walker for the stepper: :func:`pointer_get` over already split tokens, and
:func:`resolve` for a :class:`~fsm.spec.model.Ref` against one exchange. A value that is not there is
:data:`MISSING` (``None`` is a value a body may hold).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fsm.exchange import Exchange
from fsm.spec.model import Ref

__all__ = ["MISSING", "has_body", "pointer_get", "resolve"]

MISSING: Any = object()
"""What a reference resolves to when the exchange does not carry it."""


def pointer_get(value: Any, tokens: tuple[str, ...]) -> Any:
    """The value at the (already unescaped) pointer ``tokens`` inside ``value``, or :data:`MISSING`."""
    for t in tokens:
        if isinstance(value, dict):
            value = value.get(t, MISSING)
        elif isinstance(value, list) and t.isdigit() and int(t) < len(value):
            value = value[int(t)]
        else:
            return MISSING
        if value is MISSING:
            return MISSING
    return value


def resolve(ref: Ref, ex: Exchange, params: Mapping[str, str], item: Any = MISSING) -> Any:
    """The value ``ref`` names in ``ex`` (``item``: the array item an ``each`` is at), or :data:`MISSING`."""
    src = ref.source
    if src == "response":
        if not ex.resp_has_body:
            return MISSING
        value = ex.resp_body
    elif src == "path":
        return params.get(ref.key, MISSING)
    elif src == "request":
        if not ex.req_has_body:
            return MISSING
        value = ex.req_body
    elif item is MISSING:
        return MISSING
    else:
        value = item
    tokens = ref.tokens
    if len(tokens) == 1 and type(value) is dict:  # most pointers: one member of an object
        return value.get(tokens[0], MISSING)
    return pointer_get(value, tokens)


def has_body(ref: Ref, ex: Exchange) -> bool:
    """Whether the side of ``ex`` that ``ref`` reads has a JSON body (path and item refs: always)."""
    if ref.source == "request":
        return ex.req_has_body
    if ref.source == "response":
        return ex.resp_has_body
    return True
