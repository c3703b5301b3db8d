"""JSONL exchange logs: one exchange record per line, read and parsed one line at a time."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from fsm.readers._containers import READ_ERRORS
from fsm.readers._json import lenient_loads, what_failed

__all__ = ["LONGEST_RECORD", "MOST_VALUES", "read_jsonl"]


LONGEST_RECORD = 64 * 2**20
"""Longest JSONL line read as a record (bytes); a longer one is reported and skipped to its end."""
MOST_VALUES = 1_000_000
"""Most JSON values one record may hold (``[{},{},...]`` of 64 MB would be a gigabyte of objects)."""
_CHECKED = 2**20  # lines shorter than this cannot hold MOST_VALUES values worth counting


def read_jsonl(
    stream: Any,
    also_close: Any = None,
    *,
    longest: int = LONGEST_RECORD,
    most_values: int = MOST_VALUES,
    keep: Callable[[int], object] | None = None,
) -> Iterator[tuple[int | None, Any, str | None]]:
    """Yield ``(line, record, error)`` for every non-blank line of a binary stream.

    The stream is closed at the end, and then ``also_close`` (the file under a decompressor).

    A line that is not JSON (or not UTF-8, or nested too deeply) yields an error naming the
    column; blank lines are not records. A line longer than ``longest`` bytes, or holding more
    than ``most_values`` values (counted by their separators, an upper bound), yields an error
    and is not parsed; reading goes on at the next line.

    ``keep``: when given, only lines for which ``keep(line number)`` is true (or any truthy value:
    a byte of a mask) are parsed and yielded (a shard reads the whole file but parses its own
    records only, :mod:`fsm.shards`).
    """
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    line_no = 0
    try:
        for line_no, line in enumerate(iter(functools.partial(stream.readline, longest + 1), b""), 1):
            if len(line) > longest:
                why = _skip_long(stream, line, longest)
                if keep is None or keep(line_no):
                    yield line_no, None, why
                continue
            if keep is not None and not keep(line_no):
                continue
            if len(line) >= _CHECKED and _values(line) > most_values:
                yield line_no, None, f"a record of more than {most_values:,} values is not read (most-values)"
                continue
            try:
                yield line_no, loads(line), None
            except decode_error as exc:
                if not line.strip():
                    continue
                try:  # a number out of a double's range does not make the record unreadable
                    yield line_no, lenient_loads(line), None
                except (ValueError, RecursionError):
                    yield line_no, None, _describe(exc, line)
    except READ_ERRORS as exc:  # truncated or corrupt compressed stream, read error mid-file
        yield line_no + 1, None, f"stream ended unexpectedly: {what_failed(exc)}"
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
        if also_close is not None:
            also_close.close()


def _values(line: bytes) -> int:
    """An upper bound on the JSON values in ``line``: one more than its separators and openers."""
    return line.count(b",") + line.count(b"[") + line.count(b"{") + 1


def _skip_long(stream: Any, head: bytes, longest: int) -> str:
    """Read past the rest of a line too long to be a record (in chunks: memory stays flat)."""
    size = len(head)
    while not head.endswith(b"\n"):
        head = stream.readline(2**20)
        if not head:
            break
        size += len(head)
    return f"a record of {size:,} bytes is longer than the {longest:,} read (longest-record); skipped"


def _describe(exc: ValueError, line: bytes) -> str:
    """What is wrong with the line, in the kit's words (orjson's may quote it)."""
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as uexc:
        return f"not valid UTF-8 at byte {uexc.start + 1} of the line"
    if "recursion" in str(exc).lower():
        return "JSON nested too deeply (over 1024 levels)"
    pos = getattr(exc, "pos", None)
    where = f"not valid JSON at column {pos + 1}" if isinstance(pos, int) else "not valid JSON"
    if b"}\r{" in line:  # records split by carriage returns alone (old Mac line ends)
        return f"{where}: records split by bare carriage returns; convert them: tr '\\r' '\\n' < FILE > NEW"
    return where
