"""JSON the fast parser refuses for its numbers alone, read anyway; parser errors in the kit's words.

orjson refuses a number beyond a double's range (``1e400``, a 5000-digit integer) and Python's own
parser refuses an integer of more than 4300 digits; neither makes the rest of a record unreadable,
so such a number is read as the nearest float (``inf`` for the huge ones), for the checks to judge.
Parser messages are never copied into output (they may quote the input: D20); :func:`what_failed` says
what went wrong from the exception's type alone.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

__all__ = ["DECODER", "lenient_loads", "what_failed"]

_DIGITS = 4000  # below the interpreter's int conversion limit (4300 digits by default)


def _int(text: str) -> int | float:
    return int(text) if len(text) <= _DIGITS else float(text)


def _refuse(name: str) -> Any:
    raise ValueError("not JSON")  # NaN, Infinity: JSON has no such values


DECODER = json.JSONDecoder(parse_int=_int, parse_constant=_refuse)
"""The standard library's decoder, huge integers read as floats, NaN and Infinity refused."""


def lenient_loads(data: bytes | str) -> Any:
    """``data`` parsed with :data:`DECODER`; raises ``ValueError`` (or ``RecursionError``) if not JSON."""
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return DECODER.decode(text)


def what_failed(exc: BaseException) -> str:
    """What a failed read means, in the kit's words (never the exception's own text)."""
    if isinstance(exc, UnicodeDecodeError):
        return "the file is not valid UTF-8"
    if isinstance(exc, RecursionError):
        return "the file is nested too deeply"
    if isinstance(exc, (zlib.error, EOFError)):
        return "the compressed file is corrupt or truncated"
    if isinstance(exc, OSError):
        return f"a read error ({exc.strerror or type(exc).__name__})"
    return "the file is truncated or not valid JSON there"
