"""JSON pointers (RFC 6901), one implementation for the whole kit.

:func:`split` and :func:`join` turn a pointer into its tokens and back (``~0`` and ``~1`` escapes);
:func:`get` walks one pointer; :func:`expand` walks a pointer with ``*`` wildcards over arrays (the
style checks' form). A value that is not there is :data:`MISSING`, since ``None`` is a value a body
may hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["MISSING", "expand", "get", "join", "split"]

MISSING: Any = object()
"""What a pointer leads to when the document does not hold it."""


def split(pointer: str) -> tuple[str, ...]:
    """The unescaped tokens of ``pointer`` (``""`` is the whole document: no token)."""
    if not pointer:
        return ()
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:])


def join(parts: Iterable[object]) -> str:
    """The pointer to ``parts`` (names or array indexes), escaped."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def get(value: Any, tokens: tuple[str, ...]) -> Any:
    """The value at the (already split) pointer ``tokens`` inside ``value``, or :data:`MISSING`."""
    for t in tokens:
        if isinstance(value, dict):
            value = value.get(t, MISSING)
            if value is MISSING:
                return MISSING
        elif isinstance(value, list) and t.isdigit() and int(t) < len(value):
            value = value[int(t)]
        else:
            return MISSING
    return value


def expand(document: Any, pointer: str) -> Iterator[tuple[str, Any, tuple[int, ...]]]:
    """Every value at ``pointer``, whose ``*`` tokens stand for each item of an array.

    Yields (the concrete pointer, the value, the array indexes the wildcards took), in document order.
    """
    tokens = split(pointer)
    if "*" not in tokens:
        value = get(document, tokens)
        if value is not MISSING:
            yield pointer, value, ()
        return
    stack: list[tuple[Any, str, tuple[int, ...]]] = [(document, "", ())]
    for token in tokens:
        nxt: list[tuple[Any, str, tuple[int, ...]]] = []
        for node, path, idx in stack:
            if token == "*":
                if isinstance(node, list):
                    nxt.extend((v, f"{path}/{i}", (*idx, i)) for i, v in enumerate(node))
            elif isinstance(node, dict) and token in node:
                nxt.append((node[token], path + join((token,)), idx))
        stack = nxt
    for node, path, idx in stack:
        yield path, node, idx
