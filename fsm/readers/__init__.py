"""Readers: turn input files into a stream of raw records, one at a time.

A reader yields ``(position, record, error)`` triples: ``position`` is the
1-based line (JSONL) or 0-based ``log.entries`` index (HAR), or None for a
problem with the whole file; ``record`` is a dict in the kit's exchange record
format (see ``docs/log-format.md``) or None; ``error`` says why a record could
not be read. Nothing is dropped silently (D21).

The format is detected from the content (gzip magic, then a leading
``{"log":``), not from the file name.
"""

from __future__ import annotations

import gzip
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from fsm.errors import LogFormatError
from fsm.readers.har import read_har
from fsm.readers.jsonl import read_jsonl

__all__ = ["InputFile", "RawItem", "detect_format", "open_input", "read_har", "read_jsonl"]

RawItem = tuple[int | None, dict[str, Any] | None, str | None]
Format = Literal["jsonl", "har"]

_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True, slots=True)
class InputFile:
    """One input: its label in locations (the path as given, ``<stdin>`` for ``-``) and format."""

    label: str
    format: Format
    compressed: bool = False

    @property
    def positions_are_entries(self) -> bool:
        """True when positions are HAR entry indexes rather than line numbers."""
        return self.format == "har"


def detect_format(head: bytes, name: str = "") -> Format:
    """Tell HAR from JSONL by the first bytes; fall back to the file name when empty."""
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"{"):
        rest = stripped[1:].lstrip()
        if rest.startswith(b'"log"'):
            return "har"
        return "jsonl"
    if not stripped and name.lower().endswith(".har"):
        return "har"
    return "jsonl"


def open_input(path: str, stdin: BinaryIO | None = None) -> tuple[InputFile, Iterator[RawItem]]:
    """Open ``path`` (``-`` for standard input) and return its description and record stream.

    Raises :class:`LogFormatError` when the file cannot be opened at all.
    """
    if path == "-":
        raw: BinaryIO = stdin if stdin is not None else sys.stdin.buffer
        label = "<stdin>"
    else:
        p = Path(path)
        if p.is_dir():
            raise LogFormatError(f"{path}: is a directory; give the log files inside it")
        try:
            raw = p.open("rb")
        except OSError as exc:
            raise LogFormatError(f"{path}: cannot open: {exc.strerror or exc}") from None
        label = path
    buffered: Any = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)
    compressed = buffered.peek(2)[:2] == _GZIP_MAGIC
    stream: Any = gzip.GzipFile(fileobj=buffered, mode="rb") if compressed else buffered
    try:
        head = stream.peek(4096)[:4096]
    except (OSError, EOFError) as exc:  # corrupt or truncated gzip header: report, go on
        problem: Iterator[RawItem] = iter([(None, None, f"cannot decompress: {exc}")])
        return InputFile(label, "jsonl", compressed), _closing(problem, buffered if path != "-" else None)
    fmt = detect_format(head, label.removesuffix(".gz"))
    info = InputFile(label, fmt, compressed)
    items = _har_items(stream, label) if fmt == "har" else read_jsonl(stream)
    return info, _closing(items, buffered if path != "-" else None)


def _closing(items: Iterator[RawItem], handle: Any) -> Iterator[RawItem]:
    """Yield ``items``, then close the file underneath (GzipFile does not close it)."""
    try:
        yield from items
    finally:
        if handle is not None:
            handle.close()


def _har_items(stream: Any, label: str) -> Iterator[RawItem]:
    try:
        data = stream.read()
    except (OSError, EOFError) as exc:
        yield None, None, f"cannot read {label}: {exc}"
        return
    finally:
        stream.close()
    yield from read_har(data)
