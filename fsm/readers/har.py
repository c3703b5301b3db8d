"""HAR 1.2 files (browsers, Playwright, mitmproxy): entries become exchange records.

A truncated or broken HAR is salvaged entry by entry: every entry before the
break is judged, and the break itself is reported with its entry index.
"""

from __future__ import annotations

import base64
import heapq
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import ijson  # type: ignore[import-untyped]  # no stubs; the compiled build type-checks without our overrides
import orjson

from fsm.readers._containers import AttachedError
from fsm.readers._json import DECODER
from fsm.readers.jsonl import MOST_VALUES
from fsm.secrets import fingerprint

__all__ = [
    "MAX_DEPTH",
    "REORDER_WINDOW",
    "AfterEntries",
    "Counted",
    "EntryTooLong",
    "SecondEntries",
    "entry_to_record",
    "in_time_order",
    "read_har",
    "stream_entries",
]

_ENTRIES = re.compile(r'"entries"\s*:\s*\[')

Attached = Callable[[str], bytes]
"""Reads a body a HAR keeps in a file of its own, by the name the HAR gives (raises AttachedError)."""

MAX_DEPTH = 1024
"""Deepest nesting of arrays and objects read in a HAR (orjson's limit for a JSONL line too)."""
DEEPEST_SKIPPED = 64 * MAX_DEPTH
"""Deepest nesting of an entry skipped for its depth with the entries after it still read."""


class EntryTooLong(Exception):  # (internal: _har_items turns it into a reported problem)
    """One entry's text is longer than longest-record: the streaming parser would hold it whole."""


class Counted:
    """A binary stream that counts what is read from it, and refuses to read far past ``limit``.

    ijson holds a string value whole until its closing quote (a 1.5 GB string, gzipped to 6.5 MB,
    took gigabytes): an entry is bounded by its bytes, as a JSONL line is by ``longest-record``.
    """

    def __init__(self, raw: Any, longest: int) -> None:
        self._raw = raw
        self._longest = longest
        self.total = 0
        self.start: int | None = None  # where the entry being read began (None: between entries)

    def close(self) -> None:
        self._raw.close()

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._raw.read(size)
        self.total += len(data)
        if self.start is not None and self.total - self.start > self._longest + (1 << 17):
            raise EntryTooLong
        return data


REORDER_WINDOW = 1000
"""How many HAR entries :func:`in_time_order` holds to put them in ``startedDateTime`` order."""
REORDER_BYTES = 32 * 2**20
"""How many bytes of HAR text the entries :func:`in_time_order` holds may span (big bodies)."""

Item = tuple[int | None, Any, str | None]


def in_time_order(
    items: Iterator[Item],
    window: int = REORDER_WINDOW,
    spent: Callable[[], int] | None = None,
    budget: int = REORDER_BYTES,
) -> Iterator[Item]:
    """HAR entries in the order of their ``startedDateTime``, as the HAR 1.2 spec asks of a reader.

    The spec prefers entries sorted by start time but lets a tool write them in any order
    (Fiddler and Charles export their session list as it is sorted on screen, Insomnia in the
    order of its workspace, a proxy may write them as they complete), and says the reading
    application must sort them. Sorting holds at most ``window`` entries (memory stays
    bounded): an entry more than that many places out of order is judged where it comes,
    and its time going backwards is said (``time.backwards``, D19). Entries of equal time,
    and entries without a usable time, keep their order (one without a time follows the
    entry before it). Positions stay the file's (``entries[N]``). With ``spent`` (the bytes of
    HAR text read so far), the entries held also span at most ``budget`` bytes: a capture of
    large bodies is sorted over fewer entries, and memory stays near ``budget`` whatever the
    entries hold.
    """
    heap: list[tuple[float, int, int, Item]] = []
    key = float("-inf")
    held = 0  # bytes of HAR text the held entries were read from
    mark = spent() if spent is not None else 0
    for seq, item in enumerate(items):
        record = item[1]
        if type(record) is dict:
            started = record.get("time")
            if type(started) is str:
                key = _started(started, key)
        size = 0
        if spent is not None:
            now = spent()
            size, mark = now - mark, now
        held += size
        heapq.heappush(heap, (key, seq, size, item))
        while len(heap) > window or (held > budget and len(heap) > 1):
            _, _, gone, out = heapq.heappop(heap)
            held -= gone
            yield out
    while heap:
        yield heapq.heappop(heap)[3]


def _started(text: str, before: float) -> float:
    """POSIX seconds of a ``startedDateTime`` (no offset: UTC, as the exchange stage reads it), or ``before``.

    (The exchange stage's ``parse_timestamp`` reads it again; the readers sit below that stage.)
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return before
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()


class AfterEntries(Exception):  # (internal: _har_items turns it into a reported problem)
    """The document breaks after ``log.entries`` ended: every entry was read."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))


_OPEN = frozenset({"start_map", "start_array"})
_CLOSE = frozenset({"end_map", "end_array"})


def stream_entries(
    stream: Any, most_values: int = MOST_VALUES, longest: int | None = None
) -> Iterator[tuple[Any, str | None]]:
    """``(entry, None)`` for each item of ``log.entries`` as the file streams in; ``(None, why)`` if too deep.

    Built from ijson's prefix-free events: its ``items`` keeps the path of every open level as
    text, which for deep nesting takes memory growing with the square of the depth (974 MB for
    20,000 nested arrays). An entry nested deeper than :data:`MAX_DEPTH` is skipped and said so;
    the entries after it are read. Raises what ijson raises for a document that is not JSON, and
    :class:`EntryTooLong` for an entry of more than ``longest`` bytes (when given).
    """
    if isinstance(stream, Counted):
        counted: Counted | None = stream
    else:
        counted = Counted(stream, longest) if longest is not None else None
    events = ijson.basic_parse(counted if counted is not None else stream, use_float=True)
    path: list[Any] = []  # the key each open container sits under (None: the root, an array item)
    key: Any = None
    for event, value in events:
        if event == "map_key":
            key = value
            continue
        if event in _OPEN:
            path.append(key)
            if event == "start_array" and path == [None, "log", "entries"]:
                break
            if len(path) > MAX_DEPTH:
                raise _too_deep()
        elif event in _CLOSE:
            path.pop()
        key = None  # a key names only the value right after it
    else:
        return  # no log.entries array
    for event, value in events:
        if event == "end_array":
            break
        if counted is not None:
            counted.start = counted.total
        entry = _entry(event, value, events, most_values)
        if counted is not None:
            counted.start = None
        yield entry
    try:  # the rest of the document (log and the root still open): what breaks it is still reported
        _skip(events, 2, MAX_DEPTH, _AGAIN)  # (a member naming entries again is not lost)
        for _ in events:  # (only junk can follow: the parser raises)
            pass
    except (ijson.JSONError, RecursionError) as exc:
        raise AfterEntries(exc) from None


class SecondEntries(Exception):  # (internal: _har_items turns it into a reported problem)
    """The document names ``log.entries`` (or ``log``) again after the entries were read."""


_AGAIN = {1: "log", 2: "entries"}
"""Members that name entries again after ``log.entries`` (by depth: the root is 1, ``log`` 2).

JSON parsers disagree on a duplicated member (most keep the last): a second ``entries`` in
``log``, or a second ``log``, would hold entries no reader of the first one judged.
"""


def _too_deep() -> RecursionError:
    """Nesting no HAR holds, past which the parser is not followed: it keeps a byte a level open.

    (A gzip bomb of 1.5 GB of ``[`` took 620 MB; a skipped entry may go on to :data:`DEEPEST_SKIPPED`.)
    """
    return RecursionError(f"nested deeper than {MAX_DEPTH} levels")


def _entry(
    event: str, value: Any, events: Iterator[tuple[str, Any]], most_values: int
) -> tuple[Any, str | None]:
    """One array item whose first event is ``event``: built, or skipped when too deep or too big."""
    if event not in _OPEN:
        return value, None
    root: Any = {} if event == "start_map" else []
    stack: list[Any] = [root]
    key: Any = None
    values = 0
    for event, value in events:
        values += 1
        if values > most_values:
            _skip(events, len(stack))
            return None, f"an entry of more than {most_values:,} values is not read (most-values)"
        if event == "map_key":
            key = value
            continue
        if event in _CLOSE:
            stack.pop()
            if not stack:
                return root, None
            continue
        item: Any = value
        if event in _OPEN:
            item = {} if event == "start_map" else []
        top = stack[-1]
        if type(top) is dict:
            top[key] = item
        else:
            top.append(item)
        if event in _OPEN:
            if len(stack) + 4 > MAX_DEPTH:  # (the entry itself is level 4: {"log": {"entries": [{)
                _skip(events, len(stack) + 1)
                return None, f"entry nested deeper than {MAX_DEPTH} levels"
            stack.append(item)
    raise ijson.IncompleteJSONError("the file ends inside an entry")


def _skip(
    events: Iterator[tuple[str, Any]],
    depth: int,
    deepest: int = DEEPEST_SKIPPED,
    again: dict[int, str] | None = None,
) -> None:
    """Consume the events of the ``depth`` containers open, to the end of the entry.

    Raises ``RecursionError`` past ``deepest`` levels: the parser's memory grows with the depth,
    so a deeper entry ends the streaming read (what follows is salvaged, bounded); and
    :class:`SecondEntries` for a key ``again`` names at its depth.
    """
    for event, value in events:
        if again is not None and event == "map_key" and again.get(depth) == value:
            raise SecondEntries(value)
        if event in _OPEN:
            depth += 1
            if depth > deepest:
                raise _too_deep()
        elif event in _CLOSE:
            depth -= 1
            if depth == 0:
                return
    raise ijson.IncompleteJSONError("the file ends inside an entry")


def read_har(data: bytes, attached: Attached | None = None) -> Iterator[tuple[int | None, Any, str | None]]:
    """Yield ``(entry_index, record, error)`` for every entry of a HAR document.

    ``attached`` reads a body the HAR keeps in a file of its own (see :func:`entry_to_record`).
    """
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError:
        yield from _salvage(data, attached)
        return
    log = doc.get("log") if isinstance(doc, dict) else None
    entries = log.get("entries") if isinstance(log, dict) else None
    if not isinstance(entries, list):
        yield None, None, "not a HAR file: no log.entries array"
        return
    for index, entry in enumerate(entries):
        record, error = entry_to_record(entry, attached)
        yield index, record, error


def _salvage(data: bytes, attached: Attached | None) -> Iterator[tuple[int | None, Any, str | None]]:
    text = data.decode("utf-8", errors="replace")
    if "\ufffd" in text and b"\xef\xbf\xbd" not in data:
        bad = _first_bad_utf8(data)
        yield None, None, f"not valid UTF-8 at byte {bad}; undecodable bytes were replaced"
    match = _ENTRIES.search(text)
    if match is None:
        yield None, None, "not valid JSON and no log.entries array found (is this a HAR file?)"
        return
    decoder = DECODER  # (huge numbers read as floats: they take no entry with them)
    pos = match.end()
    index = 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text):
            yield index, None, "the file ends inside log.entries (truncated HAR)"
            return
        if text[pos] == "]":
            return
        try:
            entry, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            where = f"line {exc.lineno}, column {exc.colno}"
            yield index, None, f"entry truncated or not valid JSON at {where}; later entries cannot be read"
            return
        except RecursionError:
            yield index, None, "entry nested too deeply; later entries cannot be read"
            return
        except ValueError:  # NaN or Infinity, which JSON has not
            yield index, None, "entry holds a value JSON has not; later entries cannot be read"
            return
        record, error = entry_to_record(entry, attached)
        yield index, record, error
        index += 1


def _first_bad_utf8(data: bytes) -> int:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start
    return -1


def _headers(raw: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(raw, list):
        for h in raw:
            if isinstance(h, dict) and isinstance(h.get("name"), str):
                name = h["name"].lower()
                value = _text(h.get("value", ""))
                out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def _text(value: Any) -> str:
    """A value HAR says is a string: itself, or its JSON text (numbers, objects), or a placeholder."""
    if isinstance(value, str):
        return value
    try:
        return orjson.dumps(value).decode()
    except (orjson.JSONEncodeError, TypeError):  # a 5000-digit number, nesting deeper than JSON allows
        return "<value not representable as text>"


def _body(part: dict[str, Any], attached: Attached | None) -> dict[str, Any]:
    """A record body from a HAR ``postData`` or ``content``: ``body`` when JSON, ``bodyText`` when not.

    The text may be base64 (``encoding``), sit in a file of its own (Playwright's ``_file``, read
    with ``attached``), or, for a form, be given as ``params`` only. Raises :class:`AttachedError`.
    """
    text = part.get("text")
    name = part.get("_file")
    if (not isinstance(text, str) or text == "") and isinstance(name, str) and name:
        if attached is None:
            raise AttachedError("is beside a HAR read from standard input: give the HAR's file name")
        data = attached(name)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return {"bodyText": "<binary body>"}
    elif part.get("encoding") == "base64" and isinstance(text, str) and text:
        try:
            text = base64.b64decode(text, validate=False).decode("utf-8")
        except ValueError:  # not base64 (binascii.Error, non-ASCII text) or not UTF-8 once decoded
            return {"bodyText": "<binary body>"}
    if (not isinstance(text, str) or text == "") and isinstance(part.get("params"), list) and part["params"]:
        text = urlencode(  # a form, as HAR gives it (its values are scrubbed with the text: D20)
            [
                (_text(p.get("name", "")), _text(p.get("value", "")))
                for p in part["params"]
                if isinstance(p, dict)
            ]
        )
    if not isinstance(text, str) or text == "":
        return {}
    try:
        return {"body": orjson.loads(text)}
    except orjson.JSONDecodeError:
        return {"bodyText": text}


def _named(
    read: Callable[[dict[str, Any], Attached | None], dict[str, Any]],
    part: dict[str, Any],
    attached: Attached | None,
) -> dict[str, Any]:
    """``read(part, attached)``, an :class:`AttachedError` carrying the attached file's name."""
    try:
        return read(part, attached)
    except AttachedError as exc:
        raise AttachedError(str(exc), part.get("_file")) from None


_BODY = frozenset({"body", "bodyText"})
_CACHES = frozenset({"memory", "disk", "Memory Cache", "Disk Cache"})
"""Chrome's ``_fromCache`` and Safari's (CFNetwork's) ``_fetchType`` for an answer the cache gave."""
_NO_TYPE = frozenset({"", "x-unknown"})


def _sent(size: Any, mime: Any) -> bool:
    """True when a HAR part whose text is missing or empty had a body the capture left out.

    A size above 0 says so (Firefox writes no text with "Response bodies are not included",
    Playwright's omitted content keeps ``size``); a size of 0 says the body was empty. With no
    size (-1 or absent: Playwright's minimal mode), ``mime`` decides: a request's ``postData``
    (None here) exists only for a body, and a response's content type names one unless it is
    empty or ``x-unknown``.
    """
    if type(size) is int or type(size) is float:
        if size > 0:
            return True
        if size == 0:
            return False
    return mime is None or (isinstance(mime, str) and mime.strip() not in _NO_TYPE)


def _discarded(status: Any) -> bool:
    """True for HTTP Toolkit's ``_requestBodyStatus`` saying the body was left out (``discarded:...``)."""
    return isinstance(status, str) and status.startswith("discarded")


def _is_websocket(entry: dict[str, Any]) -> bool:
    """True for an entry Chrome or mitmproxy marks as a WebSocket (its messages are not read)."""
    return entry.get("_resourceType") == "websocket" or "_webSocketMessages" in entry


def entry_to_record(entry: Any, attached: Attached | None = None) -> tuple[dict[str, Any] | None, str | None]:
    """Convert one HAR entry into an exchange record, or say why it cannot be (never raises).

    ``attached`` reads a body kept in a file of its own (Playwright's ``record_har_content="attach"``:
    ``postData._file``, ``content._file``), by its name; without it such a body cannot be read.
    """
    try:
        return _entry_to_record(entry, attached)
    except AttachedError as exc:
        return None, f"the body in its attached file {_shown_name(exc.args[1])} {exc.args[0]}"
    except (ValueError, TypeError, RecursionError) as exc:  # values no HAR should hold
        return None, f"entry cannot be converted: {type(exc).__name__}"


def _shown_name(name: Any) -> str:
    """An attached file's name as a report may show it: Playwright's (a SHA-1 digest and an extension).

    Any other name is a value from the capture like any other, a secret maybe (D20): its length and
    fingerprint tell two apart.
    """
    text = str(name)
    if _FILE_NAME.match(text):
        return repr(text)
    return f"<a name of {len(text)} characters, {fingerprint(text, 'str')}>"


_FILE_NAME = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})\.[A-Za-z0-9]{1,10}$")


def _entry_to_record(entry: Any, attached: Attached | None) -> tuple[dict[str, Any] | None, str | None]:
    if not isinstance(entry, dict):
        return None, "entry is not an object"
    req = entry.get("request")
    resp = entry.get("response")
    if not isinstance(req, dict) or not isinstance(resp, dict):
        return None, "entry has no request or response object"
    url = req.get("url")
    if not isinstance(url, str) or not url:
        return None, "request.url is missing"
    try:
        parts = urlsplit(url)
    except ValueError:  # (its text quotes the URL, userinfo and all: never shown, D20)
        return None, "request.url is not a URL that can be split into its parts"
    method = req.get("method")
    request: dict[str, Any] = {
        # not a string: left as it is, for the record's shape check to report (input.bad-record)
        "method": method.upper() if isinstance(method, str) else method,
        "path": parts.path or "/",
        "query": dict(parse_qsl(parts.query, keep_blank_values=True)),
        "headers": _headers(req.get("headers")),
    }
    if parts.scheme:
        request["scheme"] = parts.scheme
    if parts.netloc:
        request["host"] = parts.netloc.rpartition("@")[2]  # (never the userinfo: D20)
    if _is_websocket(entry) and "upgrade" not in request["headers"]:
        request["headers"]["upgrade"] = "websocket"  # (as the handshake said it: no protocol call, D22)
    post = req.get("postData")
    if not isinstance(post, dict):  # HTTP Toolkit keeps a body postData cannot hold in _content (base64)
        post = req.get("_content")
    if isinstance(post, dict):
        request.update(_named(_body, post, attached))
        if not request.keys() & _BODY and _sent(req.get("bodySize"), None):
            request["bodyNotKept"] = True  # (Playwright's omitted content: text "", bodySize 153 or -1)
    elif _discarded(req.get("_requestBodyStatus")):
        request["bodyNotKept"] = True  # (HTTP Toolkit: "discarded:too-large", no postData)
    content = resp.get("content")
    status = resp.get("status")
    response: dict[str, Any] = {
        # a missing status means no response (as 0 does in HAR); anything else goes on to the shape check
        "status": 0 if status is None else status,
        "headers": _headers(resp.get("headers")),
    }
    if entry.get("_fromCache") in _CACHES or entry.get("_fetchType") in _CACHES:  # (not the server's answer)
        response["fromCache"] = True
    if isinstance(content, dict):
        response.update(_named(_body, content, attached))
        if not response.keys() & _BODY and _sent(content.get("size"), content.get("mimeType")):
            response["bodyNotKept"] = True  # (Firefox, Playwright omitted content: no text, size 160)
    record: dict[str, Any] = {"request": request, "response": response}
    started = entry.get("startedDateTime")
    if isinstance(started, str):
        record["time"] = started
    return record, None
