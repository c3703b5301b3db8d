"""References: where an exchange carries a value (``path:voucherId``, ``response:/id``, ``item:/code``).

:func:`resolve` reads a :class:`~fsm.spec.model.Ref` in one exchange with the kit's one JSON-pointer
walker (:mod:`fsm.pointer`). A value that is not there is :data:`MISSING` (``None`` is a value a body
may hold).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fsm.exchange import Exchange
from fsm.pointer import MISSING, get
from fsm.spec.model import Ref

__all__ = ["MISSING", "has_body", "resolve"]


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
    return get(value, tokens)


def has_body(ref: Ref, ex: Exchange) -> bool:
    """Whether the side of ``ex`` that ``ref`` reads has a JSON body (path and item refs: always)."""
    if ref.source == "request":
        return ex.req_has_body
    if ref.source == "response":
        return ex.resp_has_body
    return True
