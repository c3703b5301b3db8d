"""Standard input made ready for format detection (kept apart: the compiled build leaves it Python)."""

from __future__ import annotations

import io
from typing import Any, BinaryIO, cast

__all__ = ["primed"]


def primed(stream: BinaryIO) -> BinaryIO:
    """``stream`` with its first 4 kB read before anything looks at them (see :class:`_Primed`)."""
    return cast(BinaryIO, io.BufferedReader(_Primed(stream)))


class _Primed(io.RawIOBase):
    """A stream whose first 4 kB are read before anything looks at them.

    Format detection peeks at the head (gzip magic, a BOM, ``{"log"``), and a peek makes one read,
    which from a pipe may bring a single byte: read here, it blocks until 4 kB or the end.
    """

    def __init__(self, stream: BinaryIO) -> None:
        super().__init__()
        self._stream = stream
        self._head = memoryview(stream.read(4096) or b"")
        self._ended = len(self._head) < 4096  # (a terminal's ^D is not sticky: don't read past it)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        if self._ended:
            return 0
        read = getattr(self._stream, "read1", self._stream.read)  # what has arrived, not a full buffer
        data = read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._stream.close()
        super().close()
