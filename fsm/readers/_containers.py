"""Compressed and archived inputs, told from their first bytes (never from their names).

gzip (``.jsonl.gz``), zlib (mitmproxy's ``.zhar``), bzip2 and xz are decompressed as they are
read; a zip archive (Playwright's ``.zip`` HAR: the ``.har`` and its attached bodies) is opened
and its HAR read, with the bodies it names read from the archive. Containers the kit cannot read
(zstd, 7-Zip, RAR, LZ4) are named, with the command that unpacks them.

Everything read is bounded (D21's bounds, :class:`fsm.config.Config`): an attached body by
``longest-record``, and a compressed file read again whole (to salvage a broken HAR) by the same
bound, so a zip or gzip bomb costs time at most, never memory.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Literal

__all__ = [
    "READ_ERRORS",
    "ZIP_ERRORS",
    "AttachedError",
    "Container",
    "ZipInput",
    "attached_beside",
    "container_of",
    "decompress_bounded",
    "decompressing",
    "unreadable_container",
    "zip_failed",
]

Container = Literal["gzip", "zlib", "bzip2", "xz", "zip"]

_MAGIC: tuple[tuple[bytes, Container], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"PK\x03\x04", "zip"),
    (b"PK\x05\x06", "zip"),  # (an empty archive)
)
_UNREADABLE = (
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", "zstd -d FILE"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "7z x FILE"),
    (b"Rar!\x1a\x07", "a RAR archive", "unrar x FILE"),
    (b"\x04\x22\x4d\x18", "LZ4-compressed", "lz4 -d FILE"),
)


READ_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile)
"""What reading a compressed or archived input may raise when its bytes are damaged or cut short."""


ZIP_ERRORS = (*READ_ERRORS, ValueError, NotImplementedError, RuntimeError, struct.error, OverflowError)
"""What zipfile may raise on a damaged or unusual archive: its directory is parsed from the bytes as
they are (a version it does not know, a name that does not decode, a field out of range, encryption)."""


def zip_failed(exc: BaseException) -> str:
    """Why a zip archive or its member cannot be read, in the kit's words (never zipfile's text)."""
    if isinstance(exc, NotImplementedError):
        return "it needs a zip feature not read here (a newer version or an unknown compression method)"
    if isinstance(exc, RuntimeError):
        return "it is encrypted"
    if isinstance(exc, OSError) and not isinstance(exc, zipfile.BadZipFile):
        return f"a read error ({exc.strerror or type(exc).__name__})"
    return "it is damaged or cut short"


class AttachedError(ValueError):
    """An attached body (``_file``) that cannot be read: the text says why."""


def container_of(head: bytes) -> Container | None:
    """The container ``head`` (the first bytes of a file) starts, or None for plain text."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    # zlib (RFC 1950): deflate with a 32 kB window and a header checksum, as zlib.compress writes
    if len(head) >= 2 and head[0] == 0x78 and (head[0] << 8 | head[1]) % 31 == 0:
        return "zlib"
    return None


def unreadable_container(head: bytes) -> str | None:
    """What ``head`` is when it is a container the kit cannot read, and how to unpack it."""
    for magic, what, how in _UNREADABLE:
        if head.startswith(magic):
            return f"{what}, which voucher-fsm cannot read; unpack it first ({how})"
    return None


def decompressing(kind: Container, raw: BinaryIO) -> Any:
    """A binary stream of ``raw`` decompressed as it is read (``kind``: not zip)."""
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if kind == "bzip2":
        return bz2.BZ2File(raw)
    if kind == "xz":
        return lzma.LZMAFile(raw)
    return io.BufferedReader(_Zlib(raw))


def decompress_bounded(kind: Container, data: bytes, limit: int) -> bytes:
    """What ``data`` decompresses to, at most ``limit`` bytes (also of a truncated stream)."""
    try:
        if kind in ("gzip", "zlib"):
            return zlib.decompressobj(wbits=31 if kind == "gzip" else 15).decompress(data, limit)
        if kind == "bzip2":
            return bz2.BZ2Decompressor().decompress(data, limit)
        if kind == "xz":
            return lzma.LZMADecompressor().decompress(data, limit)
    except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
        return b""
    return b""


class _Zlib(io.RawIOBase):
    """A zlib stream (mitmproxy's ``.zhar``: ``zlib.compress`` of the HAR) read decompressed."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        self._inflate = zlib.decompressobj()
        self._left = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while not self._left:
            if self._inflate.eof:
                return 0
            data = self._inflate.unconsumed_tail or self._raw.read(1 << 16)
            if not data:
                raise EOFError("the compressed stream ends before its end marker")
            self._left = memoryview(self._inflate.decompress(data, 1 << 20))  # (at most 1 MB at once)
        n = min(len(view), len(self._left))
        view[:n] = self._left[:n]
        self._left = self._left[n:]
        return n

    def close(self) -> None:
        super().close()
        self._raw.close()


def _plain_name(name: str) -> PurePosixPath | None:
    """``name`` as a relative path with no way up (``..``), or None: an attached file is beside the HAR.

    ``.`` and ``./`` have no parts at all: they name the folder, never a file.
    """
    if not name or "\\" in name or "\0" in name:
        return None
    path = PurePosixPath(name)
    if not path.parts or path.is_absolute() or ".." in path.parts or ":" in path.parts[0]:
        return None
    return path


def attached_beside(har: Path, longest: int) -> Callable[[str], bytes]:
    """Reads an attached body (Playwright's ``_file``) from the folder of the HAR file ``har``."""
    folder = har.parent

    def read(name: str) -> bytes:
        rel = _plain_name(name)
        if rel is None:
            why = "the folder itself, an absolute path, or one going up: not read"
            raise AttachedError(f"names no file beside the HAR ({why})")
        path = folder / rel
        try:
            with path.open("rb") as fh:
                size = _bounded_size(fh)
                if size is not None and size > longest:
                    raise AttachedError(_too_big(size, longest))
                data = fh.read(longest + 1)
        except OSError as exc:
            raise AttachedError(f"cannot be read beside the HAR: {exc.strerror or 'error'}") from None
        if len(data) > longest:
            raise AttachedError(_too_big(None, longest))
        return data

    return read


def _bounded_size(fh: Any) -> int | None:
    try:
        return os.fstat(fh.fileno()).st_size
    except (OSError, ValueError):
        return None


def _too_big(size: int | None, longest: int) -> str:
    said = f"{size:,} bytes" if size is not None else "too big"
    return f"is {said}, more than the {longest:,} read (longest-record)"


class ZipInput:
    """A zip archive holding a HAR (Playwright's ``.zip``): the HAR member and the attached bodies."""

    def __init__(self, source: Any) -> None:
        self.archive = zipfile.ZipFile(source)
        # (a damaged central directory may name a member "": neither a file nor a folder, skipped)
        names = [i for i in self.archive.infolist() if i.filename and not i.filename.endswith("/")]
        hars = [i for i in names if i.filename.lower().endswith(".har")]
        self.member = hars[0] if hars else (names[0] if len(names) == 1 else None)
        self.members = len(names)

    def open_member(self) -> io.BufferedReader:
        """The HAR (or the only file) of the archive, read as it decompresses."""
        assert self.member is not None
        member: Any = self.archive.open(self.member)
        return io.BufferedReader(member)

    def read_member(self, limit: int) -> bytes:
        """The HAR whole (to salvage a broken one), at most ``limit`` bytes."""
        assert self.member is not None
        try:
            with self.archive.open(self.member) as fh:
                return fh.read(limit)
        except ZIP_ERRORS:
            return b""

    def attached(self, longest: int) -> Callable[[str], bytes]:
        """Reads an attached body (``_file``) from the archive, at most ``longest`` bytes."""

        def read(name: str) -> bytes:
            rel = _plain_name(name)
            if rel is None:
                why = "the folder itself, an absolute path, or one going up"
                raise AttachedError(f"names no file of the archive ({why})")
            try:
                info = self.archive.getinfo(str(rel))
            except KeyError:
                raise AttachedError("is not in the archive") from None
            if info.file_size > longest:
                raise AttachedError(_too_big(info.file_size, longest))
            try:
                with self.archive.open(info) as fh:
                    data = fh.read(longest + 1)  # (the size in the archive may lie: read no more)
            except ZIP_ERRORS as exc:
                raise AttachedError(f"cannot be read from the archive: {zip_failed(exc)}") from None
            if len(data) > longest:
                raise AttachedError(_too_big(None, longest))
            return data

        return read

    def close(self) -> None:
        """Close the archive."""
        self.archive.close()
