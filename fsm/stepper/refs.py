"""References: where an exchange carries a value (``path:voucherId``, ``response:/id``, ``item:/code``).

:func:`resolve` reads a :class:`~fsm.spec.model.Ref` in one exchange with the kit's one JSON-pointer
walker (:mod:`fsm.pointer`). A value that is not there is :data:`MISSING` (``None`` is a value a body
may hold). :func:`reader` compiles a reference once, at load, into a function that reads the same
value without interpreting the reference again (a path parameter, a member or pointer of a body, a
member of an item are read directly; an item's deeper pointers go through :func:`resolve`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fsm.exchange import Exchange
from fsm.pointer import MISSING, get
from fsm.spec.model import Ref

__all__ = ["MISSING", "Reader", "has_body", "reader", "resolve"]

Reader = Callable[[Exchange, Mapping[str, str], Any], Any]
"""A compiled reference: ``read(ex, params, item)`` is ``resolve(ref, ex, params, item)``."""


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


def reader(ref: Ref | None) -> Reader:
    """``ref`` compiled into a :data:`Reader` (no reference: one that always reads :data:`MISSING`)."""
    if ref is None:
        return _nothing
    if ref.source == "path":
        return _param(ref.key)
    if len(ref.tokens) == 1:
        if ref.source == "response":
            return _response_member(ref.tokens[0])
        if ref.source == "request":
            return _request_member(ref.tokens[0])
        return _item_member(ref.tokens[0])
    if ref.source == "response":
        return _response_pointer(ref.tokens)
    if ref.source == "request":
        return _request_pointer(ref.tokens)
    return _generic(ref)


def _nothing(ex: Exchange, params: Mapping[str, str], item: Any) -> Any:
    return MISSING


def _param(key: str) -> Reader:
    def read(ex: Exchange, params: Mapping[str, str], item: Any) -> Any:
        return params.get(key, MISSING)

    return read


def _response_member(name: str) -> Reader:
    one = (name,)

    def read(ex: Exchange, params: Mapping[str, str], item: Any) -> Any:
        body = ex.resp_body  # (a member of an object, read here: no call of a helper per read)
        if type(body) is dict and ex.resp_has_body:
            return body.get(name, MISSING)
        return get(body, one) if ex.resp_has_body else MISSING

    return read


def _request_member(name: str) -> Reader:
    one = (name,)

    def read(ex: Exchange, params: Mapping[str, str], item: Any) -> Any:
        body = ex.req_body
        if type(body) is dict and ex.req_has_body:
            return body.get(name, MISSING)
        return get(body, one) if ex.req_has_body else MISSING

    return read


def _item_member(name: str) -> Reader:
    one = (name,)

    def read(ex: Exchange, params: Mapping[str, str], item: Any) -> Any:
        if type(item) is dict:  # (MISSING is no dict)
            return item.get(name, MISSING)
        return get(item, one) if item is not MISSING else MISSING

    return read


def _response_pointer(tokens: tuple[str, ...]) -> Reader:
    def read(ex: Exchange, params: Mapping[str, str], item: Any) -> Any:
        return get(ex.resp_body, tokens) if ex.resp_has_body else MISSING

    return read


def _request_pointer(tokens: tuple[str, ...]) -> Reader:
    def read(ex: Exchange, params: Mapping[str, str], item: Any) -> Any:
        return get(ex.req_body, tokens) if ex.req_has_body else MISSING

    return read


def _generic(ref: Ref) -> Reader:
    def read(ex: Exchange, params: Mapping[str, str], item: Any) -> Any:
        return resolve(ref, ex, params, item)

    return read


def has_body(ref: Ref, ex: Exchange) -> bool:
    """Whether the side of ``ex`` that ``ref`` reads has a JSON body (path and item refs: always)."""
    if ref.source == "request":
        return ex.req_has_body
    if ref.source == "response":
        return ex.resp_has_body
    return True
