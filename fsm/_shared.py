"""What is compiled once a spec and shared by every validator of it (a leaf module).

Compiled schemas, routing tables, transition tables, the stepper's plans and readers keep no state of
a run; building them again for each :class:`fsm.Validator` cost about 9 ms, then (schemas and tables
shared) still 0.9 ms, the plans most of it. A sandbox makes one validator a context, so they are kept
here, keyed by the spec object (which they hold, so its id cannot be reused while kept).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["per_spec"]

T = TypeVar("T")

_KEPT: dict[tuple[str, int], tuple[Any, Any]] = {}  # (what, id of the spec) -> (spec, the thing)
_LOCK = threading.Lock()
_MOST = 32  # a few specs a process: the oldest goes first


def per_spec(what: str, spec: Any, make: Callable[[], T]) -> T:
    """``make()`` for ``spec``, made once and shared; ``what`` names the thing (and its options)."""
    key = (what, id(spec))
    with _LOCK:
        hit = _KEPT.get(key)
    if hit is not None and hit[0] is spec:
        made: T = hit[1]
        return made
    made = make()
    with _LOCK:
        if len(_KEPT) >= _MOST:
            del _KEPT[next(iter(_KEPT))]
        _KEPT[key] = (spec, made)
    return made
