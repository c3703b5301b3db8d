"""Readers: turn input files into a stream of raw records, one at a time.

A reader yields ``(position, record, error)`` triples: ``position`` is the
1-based line (JSONL) or 0-based ``log.entries`` index (HAR), or None for a
problem with the whole file; ``record`` is a dict in the kit's exchange record
format (see ``docs/log-format.md``) or None; ``error`` says why a record could
not be read. Nothing is dropped silently (D21).

The format is detected from the content (a container's magic bytes: gzip, zlib, bzip2, xz,
zip; then a leading ``{"log":``), not from the file name.
"""

from __future__ import annotations

import functools
import io
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal
from urllib.parse import quote_from_bytes

import ijson  # type: ignore[import-untyped]  # no stubs; the compiled build type-checks without our overrides

from fsm.errors import LogFormatError
from fsm.readers._containers import (
    READ_ERRORS,
    ZIP_ERRORS,
    Container,
    ZipInput,
    attached_beside,
    container_of,
    decompress_bounded,
    decompressing,
    unreadable_container,
    zip_failed,
)
from fsm.readers._json import what_failed
from fsm.readers._stdin import primed
from fsm.readers.har import (
    AfterEntries,
    Counted,
    EntryTooLong,
    SecondEntries,
    entry_to_record,
    in_time_order,
    read_har,
    stream_entries,
)
from fsm.readers.jsonl import LONGEST_RECORD, MOST_VALUES, read_jsonl

__all__ = [
    "InputFile",
    "RawItem",
    "detect_format",
    "input_uri",
    "open_input",
    "printable",
    "read_har",
    "read_jsonl",
]

RawItem = tuple[int | None, Any, str | None]
"""(line or entry; the parsed record, any JSON value, None when unreadable; why it is unreadable)."""
Format = Literal["jsonl", "har", "unreadable"]
"""``unreadable``: the input could not be opened as a log at all (its one record says why)."""

_BOM = b"\xef\xbb\xbf"
_WIDE = (  # byte order marks of wider encodings (Windows tools save "Unicode" text as UTF-16)
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


@dataclass(frozen=True, slots=True)
class InputFile:
    """One input: its label in locations (the path as given, ``<stdin>`` for ``-``) and format."""

    label: str
    format: Format
    compressed: bool = False
    size: int | None = None  # bytes on disk, when known (not for standard input)
    read_so_far: Callable[[], int] | None = field(default=None, compare=False, repr=False)
    closer: Callable[[], None] | None = field(default=None, compare=False, repr=False)

    def close(self) -> None:
        """Close the file without reading it (the records' stream closes it when it ends)."""
        if self.closer is not None:
            self.closer()

    def fraction(self) -> float | None:
        """How much of the file has been read (0-1), when that can be known."""
        if not self.size or self.read_so_far is None:
            return None
        try:
            return min(self.read_so_far() / self.size, 1.0)
        except (OSError, ValueError):  # closed or unseekable
            return None

    @property
    def positions_are_entries(self) -> bool:
        """True when positions are HAR entry indexes rather than line numbers."""
        return self.format == "har"


_LOG_MEMBER = re.compile(rb'"log"\s*:\s*\{')


def detect_format(head: bytes, name: str = "") -> Format:
    """Tell HAR from JSONL by the first bytes, then by the file name.

    A HAR usually opens with its ``"log"`` member, but JSON objects are unordered and some tools
    write another member first (a comment, a version). Such an object is still a HAR when the file
    is named ``.har``, or when it spans lines (no JSONL record does) and names a ``"log"`` object.
    """
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"{"):
        rest = stripped[1:].lstrip()
        if rest.startswith(b'"log"') or name.lower().endswith(".har"):
            return "har"
        first_line = stripped.split(b"\n", 1)[0].rstrip()
        if not first_line.endswith(b"}") and _LOG_MEMBER.search(stripped):
            return "har"
        return "jsonl"
    if not stripped and name.lower().endswith(".har"):
        return "har"
    return "jsonl"


def open_input(
    path: str,
    stdin: BinaryIO | None = None,
    *,
    longest: int = LONGEST_RECORD,
    most_values: int = MOST_VALUES,
    keep: Callable[[int], object] | None = None,
) -> tuple[InputFile, Iterator[RawItem]]:
    """Open ``path`` (``-`` for standard input) and return its description and record stream.

    ``longest`` (bytes of one JSONL line) and ``most_values`` (values in one record or HAR
    entry) bound what one record may cost; a record beyond them is reported and skipped.

    A file that cannot be opened (a folder, no permission) is one unreadable file-level record;
    raises :class:`LogFormatError` only for standard input that is closed or was read already.

    ``keep``: JSONL lines for which ``keep(line number)`` is false are not parsed nor yielded
    (other formats yield every record: the caller filters).
    """
    if path == "-":
        if stdin is None and sys.stdin is None:  # (file descriptor 0 closed: Python sets it so)
            raise LogFormatError("-: there is no standard input (it is closed)")
        raw: BinaryIO = stdin if stdin is not None else sys.stdin.buffer
        label = "<stdin>"
        if raw.closed:
            raise LogFormatError("-: standard input was read to its end already; give - once")
        raw = primed(raw)  # a pipe may hand over its first bytes one at a time
    else:
        p = Path(path)
        label = printable(path)
        # a file-level problem, not an exception: the other inputs of the run are still judged (D21)
        if p.is_dir():
            return _unreadable(label, False, path, None, "is a directory; give the log files inside it")
        try:
            raw = p.open("rb")
        except OSError as exc:
            return _unreadable(label, False, path, None, f"cannot open: {exc.strerror or 'error'}")
    buffered: Any = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)
    magic = buffered.peek(8)[:8]
    alien = unreadable_container(magic)
    if alien is not None:
        return _unreadable(label, True, path, buffered, alien)
    kind = container_of(magic)
    if kind == "zip":
        return _open_zip(path, label, buffered, longest, most_values)
    compressed = kind is not None
    stream: Any = decompressing(kind, buffered) if kind is not None else buffered
    try:
        head = stream.peek(4096)[:4096]
    except READ_ERRORS as exc:  # corrupt or truncated header: report, go on
        why = f"cannot decompress: {what_failed(exc)} ({kind}-compressed)"
        return _unreadable(label, compressed, path, buffered, why)
    twice = _compressed_twice(kind, head) if kind is not None else None
    if twice is not None:  # every line would be unreadable: say once what the file is
        return _unreadable(label, compressed, path, buffered, twice)
    wide = _wide_text(head)
    if wide is not None:  # every line would be unreadable: say once what the file is
        why = f"{wide} text; logs are UTF-8: iconv -f {wide} -t UTF-8 FILE > NEW"
        return _unreadable(label, compressed, path, buffered, why)
    fmt = detect_format(head, label.removesuffix(".gz"))
    size = None if path == "-" else _size(Path(path))
    info = InputFile(
        label,
        fmt,
        compressed,
        size,
        None if path == "-" else buffered.tell,
        None if path == "-" else buffered.close,
    )
    # read again whole only what can be read twice: a regular file (not a pipe, not standard input)
    reread = (
        functools.partial(_read_whole, Path(path), kind, longest)
        if path != "-" and Path(path).is_file()
        else None
    )
    handle = buffered  # (standard input too, gzip or not: read to its end, it can't be read again)
    if head.startswith(_BOM):  # as Windows tools write it: not part of the first record
        stream.read(len(_BOM))
    if fmt == "har":
        attached = attached_beside(Path(path), longest) if path != "-" else None
        return info, _closing(_har_sorted(stream, reread, most_values, longest, attached), handle)
    # (one generator less per record)
    return info, read_jsonl(stream, also_close=handle, longest=longest, most_values=most_values, keep=keep)


def _open_zip(
    path: str, label: str, buffered: Any, longest: int, most_values: int
) -> tuple[InputFile, Iterator[RawItem]]:
    """A zip archive (Playwright's ``.zip`` HAR): its HAR read, its attached bodies from the archive."""
    if path == "-":
        why = "a zip archive, which cannot be read from standard input (it needs seeking); give its name"
        return _unreadable(label, True, path, buffered, why)
    try:
        archive = ZipInput(buffered)
    except ZIP_ERRORS as exc:
        why = f"a zip archive that cannot be opened: {zip_failed(exc)}"
        return _unreadable(label, True, path, buffered, why)
    if archive.member is None:
        why = f"a zip archive with no .har file among its {archive.members} files"
        return _unreadable(label, True, path, buffered, why)
    try:
        stream = archive.open_member()
        head = stream.peek(4096)[:4096]
    except ZIP_ERRORS as exc:  # (encrypted, unknown method)
        why = f"a zip archive whose {printable(archive.member.filename)} cannot be read: {zip_failed(exc)}"
        return _unreadable(label, True, path, buffered, why)
    fmt = detect_format(head, archive.member.filename)
    info = InputFile(label, fmt, True, _size(Path(path)), buffered.tell, buffered.close)
    both = _Both(archive, buffered)
    if fmt == "har":
        reread = functools.partial(archive.read_member, longest)
        items = _har_sorted(stream, reread, most_values, longest, archive.attached(longest))
        return info, _closing(items, both)
    return info, read_jsonl(stream, also_close=both, longest=longest, most_values=most_values)


class _Both:
    """Closes an archive, then the file under it."""

    def __init__(self, archive: ZipInput, raw: Any) -> None:
        self._archive = archive
        self._raw = raw

    def close(self) -> None:
        self._archive.close()
        self._raw.close()


def _compressed_twice(outer: Container, head: bytes) -> str | None:
    """Why a decompressed ``head`` cannot be read when it is a container again, or None."""
    inner = container_of(head)
    if inner is not None and inner != "zlib":  # (zlib's two-byte header is too weak a sign here)
        return f"{outer}-compressed {inner} data (compressed twice); decompress it once more first"
    alien = unreadable_container(head)
    return f"{outer}-compressed: {alien}" if alien is not None else None


def _wide_text(head: bytes) -> str | None:
    """``UTF-16`` or ``UTF-32`` when ``head`` starts with that encoding's byte order mark."""
    return next((name for mark, name in _WIDE if head.startswith(mark)), None)


def _unreadable(
    label: str, compressed: bool, path: str, buffered: Any, why: str
) -> tuple[InputFile, Iterator[RawItem]]:
    """An input whose whole content is one problem (a file-level record, as D21 counts it).

    Closed once the problem is read, standard input too: it is not read again.
    """
    problem: Iterator[RawItem] = iter([(None, None, why)])
    closer = None if path == "-" or buffered is None else buffered.close
    return InputFile(label, "unreadable", compressed, closer=closer), _closing(problem, buffered)


def input_uri(path: str) -> str | None:
    """The input as a URI reference (RFC 3986), from the bytes of its name; None for standard input.

    A relative path stays relative and as given (``logs/my%20log.har``, ``./a.jsonl``), so
    code-scanning tools resolve it against the checkout; an absolute one becomes a ``file:`` URI.
    A name that is not UTF-8 keeps its bytes (``caf%E9.jsonl``), unlike its escaped label.
    """
    if path == "-":
        return None
    if os.path.isabs(path):
        return Path(path).as_uri()
    raw = os.fsencode(path)
    if os.sep != "/":
        raw = raw.replace(os.sep.encode(), b"/")
    return quote_from_bytes(raw, safe="/!$&'()*+,;=@")  # (no ":" in the first segment: not a scheme)


def printable(path: str) -> str:
    r"""The path as shown in reports: bytes that are not UTF-8 and control characters escaped.

    A Latin-1 ``caf<0xe9>.jsonl`` shows as ``caf\xe9.jsonl``, which every report format can carry
    (XML allows no control characters). Two inputs that would read alike are told apart by
    :class:`fsm.pipeline.Validator`.
    """
    if path.isprintable():
        return path
    try:
        raw = path.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate no file name decodes to (a label given to feed())
        raw = path.encode("utf-8", "backslashreplace")
    text = raw.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _closing(items: Iterator[RawItem], handle: Any) -> Iterator[RawItem]:
    """Yield ``items``, then close the file underneath (GzipFile does not close it)."""
    try:
        yield from items
    finally:
        if handle is not None:
            handle.close()


def _har_sorted(
    stream: Any,
    reread: Callable[[], bytes] | None,
    most_values: int,
    longest: int,
    attached: Callable[[str], bytes] | None,
) -> Iterator[RawItem]:
    """HAR entries in time order, holding a window bounded in entries and in bytes of HAR text."""
    meter = Counted(stream, longest)  # (what the parser has read: the sorting window's byte bound)
    items = _har_items(meter, reread, most_values, longest, attached)
    return in_time_order(items, spent=lambda: meter.total)


def _har_items(
    stream: Any,
    reread: Callable[[], bytes] | None,
    most_values: int,
    longest: int,
    attached: Callable[[str], bytes] | None = None,
) -> Iterator[RawItem]:
    """HAR entries one at a time, parsed as the file streams in (memory stays flat).

    A HAR that breaks the streaming parser (truncated, not UTF-8, nested too deeply, not a
    HAR at all) is read again whole, when it is a file, and salvaged entry by entry from the
    break on; entries already judged are not repeated.
    """
    done = 0
    try:
        for entry, too_deep in stream_entries(stream, most_values, longest):
            record, error = entry_to_record(entry, attached) if too_deep is None else (None, too_deep)
            yield done, record, error
            done += 1
    except AfterEntries:  # nothing lost: said once, no salvage
        yield None, None, f"all {done} entries were read, but the file is not valid JSON after them"
        return
    except SecondEntries as again:  # said: its entries are not judged
        yield (
            None,
            None,
            f"all {done} entries were read, but the file names {again} again after them"
            " (a duplicated member); entries under it are not read",
        )
        return
    except EntryTooLong:  # (a salvage, bounded by the same longest-record, could read no more of it)
        yield (
            done,
            None,
            f"entry longer than the {longest:,} bytes read (longest-record); later entries are not read",
        )
        return
    except (ijson.JSONError, ValueError, RecursionError, *READ_ERRORS) as exc:
        lost = "later entries cannot be read"
        problem = f"the HAR cannot be read past entry {done}: {what_failed(exc)}; {lost}"
    else:
        if done:
            return
        problem = "no entries: log.entries is empty or missing (is this a HAR file?)"
    finally:
        stream.close()
    data = _safely(reread)
    past = False  # whether the second reading says anything of entry `done` or later
    if data is not None:
        for index, record, error in read_har(data, attached):
            if index is None or index >= done:
                past = past or index is not None or (record is None and done == 0)
                yield index, record, error
    if not past:  # (a file that shrank while read, or cannot be read again: never silent, D21)
        changed = "" if data is None or done == 0 else " (the file changed while it was read)"
        yield (done if done else None), None, problem + changed


def _size(path: Path) -> int | None:
    try:
        return path.stat().st_size or None
    except OSError:
        return None


def _read_whole(path: Path, kind: Container | None, limit: int) -> bytes:
    data = path.read_bytes()
    if kind is None:
        return data
    return decompress_bounded(kind, data, limit)  # (also of a cut stream; a bomb stops at the limit)


def _safely(reread: Callable[[], bytes] | None) -> bytes | None:
    if reread is None:
        return None
    try:
        return reread()
    except OSError:
        return None
