"""Client-side embedding: a merchant's own HTTP client checks each call it makes to Bleepay.

``HTTPXTransport`` / ``AsyncHTTPXTransport`` wrap any httpx transport; ``RequestsAdapter`` is a
``requests`` ``HTTPAdapter``. ``observe`` reports findings to the sinks; ``enforce`` also raises
:class:`ProtocolViolation` before sending a call the model says must be refused (a second redeem of
one voucher, say). A client sees one party's calls only: set ``view`` to its caller's role (D28),
so that the other party's unseen calls draw no false errors.

httpx and requests are optional (``pip install 'voucher-fsm[clients]'``); each class is imported
from its own module when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fsm.monitor import Monitor, ProtocolViolation

__all__ = ["AsyncHTTPXTransport", "HTTPXTransport", "Monitor", "ProtocolViolation", "RequestsAdapter"]

_WHERE = {
    "HTTPXTransport": "fsm.clients._httpx",
    "AsyncHTTPXTransport": "fsm.clients._httpx",
    "RequestsAdapter": "fsm.clients._requests",
}

if TYPE_CHECKING:
    from fsm.clients._httpx import AsyncHTTPXTransport, HTTPXTransport
    from fsm.clients._requests import RequestsAdapter


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'fsm.clients' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
