"""JSONL exchange logs: one exchange record per line, read and parsed one line at a time."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

import orjson

from fsm.readers._json import lenient_loads, what_failed

__all__ = ["read_jsonl"]


def read_jsonl(stream: Any, also_close: Any = None) -> Iterator[tuple[int | None, Any, str | None]]:
    """Yield ``(line, record, error)`` for every non-blank line of a binary stream.

    The stream is closed at the end, and then ``also_close`` (the file under a decompressor).

    A line that is not JSON (or not UTF-8, or nested too deeply) yields an error
    naming the column; blank lines are not records.
    """
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    line_no = 0
    try:
        for line_no, line in enumerate(stream, 1):
            try:
                yield line_no, loads(line), None
            except decode_error as exc:
                if not line.strip():
                    continue
                try:  # a number out of a double's range does not make the record unreadable
                    yield line_no, lenient_loads(line), None
                except (ValueError, RecursionError):
                    yield line_no, None, _describe(exc, line)
    except (OSError, EOFError, zlib.error) as exc:  # truncated or corrupt gzip, read error mid-file
        yield line_no + 1, None, f"stream ended unexpectedly: {what_failed(exc)}"
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
        if also_close is not None:
            also_close.close()


def _describe(exc: ValueError, line: bytes) -> str:
    """What is wrong with the line, in the kit's words (orjson's may quote it)."""
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as uexc:
        return f"not valid UTF-8 at byte {uexc.start + 1} of the line"
    if "recursion" in str(exc).lower():
        return "JSON nested too deeply (over 1024 levels)"
    pos = getattr(exc, "pos", None)
    if isinstance(pos, int):
        return f"not valid JSON at column {pos + 1}"
    return "not valid JSON"
