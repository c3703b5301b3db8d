"""Exchange stage: a raw record becomes a typed, immutable :class:`Exchange`.

The record format (``docs/log-format.md``) is defined by the ``exchange`` JSON
Schema; records that do not fit it are reported as ``input.bad-record`` with the
pointer of the first problem, and are not judged further.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeGuard
from urllib.parse import parse_qsl, urlsplit

import jsonschema_rs

from fsm._resources import load_schema
from fsm.violation import Finding, SourceLocation

__all__ = [
    "NO_BODY",
    "Exchange",
    "Parts",
    "bearer_token",
    "build_exchange",
    "for_stepping",
    "has_no_offset",
    "parse_time",
    "parse_timestamp",
    "request_exchange",
]


class Exchange:
    """One request and its response, as recorded.

    Bodies are parsed JSON (``has_*_body`` tells an absent body from JSON ``null``);
    a body that was captured but is not JSON sits in ``*_text``. ``time`` is POSIX
    seconds, or None when the record has no usable timestamp.
    """

    __slots__ = (
        "_token",
        "accepted",
        "file",
        "headers",
        "host",
        "index",
        "is_entry",
        "method",
        "path",
        "position",
        "query",
        "req_body",
        "req_has_body",
        "req_text",
        "resp_body",
        "resp_has_body",
        "resp_headers",
        "resp_text",
        "scheme",
        "status",
        "time",
        "time_text",
    )

    def __init__(
        self,
        index: int,
        file: str,
        position: int | None,
        is_entry: bool,
        method: str,
        path: str,
        query: dict[str, Any],
        headers: dict[str, str],
        status: int,
        time: float | None = None,
        time_text: str | None = None,
        req_body: Any = None,
        req_has_body: bool = False,
        req_text: str | None = None,
        resp_body: Any = None,
        resp_has_body: bool = False,
        resp_text: str | None = None,
        resp_headers: dict[str, str] | None = None,
        host: str | None = None,
        scheme: str | None = None,
    ) -> None:
        self.index = index
        self.file = file
        self.position = position
        self.is_entry = is_entry
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.status = status
        self.accepted = 200 <= status < 300
        """True for a 2xx answer."""
        self.time = time
        self.time_text = time_text
        self.req_body = req_body
        self.req_has_body = req_has_body
        self.req_text = req_text
        self.resp_body = resp_body
        self.resp_has_body = resp_has_body
        self.resp_text = resp_text
        self.resp_headers = resp_headers or {}
        self.host = host
        """The host (``name`` or ``name:port``, lower case) from the URL or the Host header, if recorded."""
        self.scheme = scheme
        """The URL's scheme (``https``, ``data``, ...) when the record gives a URL, else None."""
        self._token: str | None = ""  # read on first use ("" is never a token: see bearer_token)

    @property
    def token(self) -> str | None:
        """The bearer token of the Authorization header, or None.

        Read on first use: the worker process, which routes and checks payloads, never needs it.
        """
        token = self._token
        if token == "":
            token = self._token = bearer_token(self.headers.get("authorization"))
        return token

    def args(self) -> tuple[Any, ...]:
        """The constructor's arguments: ``Exchange(*ex.args())`` is an equal copy.

        Plain values only (no objects of the kit's own), so exchanges cross process
        boundaries cheaply (see :mod:`fsm.worker`).
        """
        return (
            self.index,
            self.file,
            self.position,
            self.is_entry,
            self.method,
            self.path,
            self.query,
            self.headers,
            self.status,
            self.time,
            self.time_text,
            self.req_body,
            self.req_has_body,
            self.req_text,
            self.resp_body,
            self.resp_has_body,
            self.resp_text,
            self.resp_headers,
            self.host,
            self.scheme,
        )

    def stepping_args(self) -> tuple[Any, ...]:
        """What the stepping process reads of this exchange, for :func:`for_stepping`.

        Of the headers only ``Authorization``; no query, no response headers, and not the file
        or kind of position, which the receiving side knows. About a fifth less to decode than
        :meth:`args` (see :mod:`fsm.worker`).
        """
        return (
            self.index,
            self.position,
            self.method,
            self.path,
            self.status,
            self.time,
            self.time_text,
            self.headers.get("authorization"),
            self.req_body,
            self.req_has_body,
            self.req_text,
            self.resp_body,
            self.resp_has_body,
            self.resp_text,
        )

    @property
    def location(self) -> SourceLocation:
        """``FILE:LINE`` or ``FILE:entries[N]``."""
        if self.is_entry:
            return SourceLocation(self.file, entry=self.position)
        return SourceLocation(self.file, line=self.position)

    @property
    def error_code(self) -> str | None:
        """The ``code`` of an error body (D15), if there is one."""
        body = self.resp_body
        if isinstance(body, dict):
            code = body.get("code")
            if isinstance(code, str):
                return code
        return None


def for_stepping(file: str, is_entry: bool, args: Sequence[Any]) -> Exchange:
    """The exchange :meth:`Exchange.stepping_args` describes: all the stepper and the report read.

    Its headers hold only ``authorization``; its query and response headers are empty.
    """
    auth = args[7]
    return Exchange(
        args[0],
        file,
        args[1],
        is_entry,
        args[2],
        args[3],
        {},
        {"authorization": auth} if auth is not None else {},
        args[4],
        args[5],
        args[6],
        args[8],
        args[9],
        args[10],
        args[11],
        args[12],
        args[13],
    )


def bearer_token(auth: str | None) -> str | None:
    """The token of an Authorization header (``Bearer <token>`` in any case, or a bare token), or None.

    The one reading of a caller's token: the validator's (``Exchange.token``) and the sandbox's.
    """
    if not auth:
        return None
    if auth.startswith("Bearer "):  # (the usual spelling: what the general case below gives it)
        return auth[7:].strip() or None
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip() or None
    return auth.strip() or None


def parse_time(ex: Exchange) -> None:
    """Fill in ``ex.time`` from ``ex.time_text`` (for exchanges built with ``parse_time=False``)."""
    if ex.time is None and ex.time_text:
        ex.time = parse_timestamp(ex.time_text)


_parsed: tuple[str, float | None] = ("", None)  # the last time parsed (replaced whole: thread-safe)


def parse_timestamp(text: str) -> float | None:
    """POSIX seconds of an ISO 8601 time, or None; one without an offset is UTC (never the host's zone).

    The last one is remembered: a request predicted, answered and fed (a sandbox, an enforcing
    middleware) reads the same time several times.
    """
    global _parsed
    last = _parsed
    if text == last[0]:
        return last[1]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        _parsed = (text, None)
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = moment.timestamp()
    _parsed = (text, seconds)
    return seconds


def format_timestamp(us: int) -> str:
    """A time in POSIX microseconds as the API and exchange records write it (``2026-06-09T12:00:00.005Z``).

    The inverse of :func:`parse_timestamp` to the millisecond. The date and the whole second are
    formatted once a second (``datetime.isoformat`` cost about 14,000 instructions); only the
    milliseconds are added each time, from a table (a ``:03d`` format cost 0.4 us).
    """
    global _second
    whole = us // 1_000_000
    second, prefix = _second
    if whole != second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        _second = (whole, prefix)
    return prefix + _MILLIS[us // 1000 % 1000]


_second: tuple[int, str] = (-1, "")  # the last second formatted, and its text (replaced whole: thread-safe)
_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))  # (the end of a time as written)

_OFFSET = re.compile(r"(?:[Zz]|[+-]\d\d(?::?\d\d(?::?\d\d(?:\.\d+)?)?)?)$")


def has_no_offset(text: str) -> bool:
    """True for a timestamp written without its UTC offset (``2026-06-09T12:00:00``), read as UTC."""
    if text[-1:] in ("Z", "z"):  # (most times: no pattern to run)
        return False
    return _OFFSET.search(text) is None


_SHAPE = jsonschema_rs.validator_for(dict(load_schema("exchange")))
"""The record shape, compiled from its one source: ``schemas/exchange.schema.json``, which
:class:`fsm.models.ExchangeRecord` generates. :func:`_shape_problem` explains a record this refuses; a
test holds the schema, the model and the explaining check to one verdict on every edge value.

A status written ``200.0`` is the status 200: JSON has one kind of number, and JSON Schema's
``integer`` is any number without a fraction. ``200.5`` is a bad record.
"""


_NATIVE_SHAPE = __file__.endswith(".py")
"""Whether :func:`_shape_of` asks jsonschema-rs first, or goes straight to :func:`_shape_problem`.

Generated records, per record: jsonschema-rs 0.64 us in pure Python and 0.50 us in the compiled
build; :func:`_shape_problem` 1.63 us in pure Python, 0.38 us compiled. So only the pure build
asks jsonschema-rs (a test shows both checks agree on every edge value).
"""


def _shape_of(record: Any) -> tuple[str, str] | None:
    """The record's first shape problem, or None: the fastest check first, the explaining one if unsure."""
    if _NATIVE_SHAPE:
        try:
            if _SHAPE.is_valid(record):
                return None
        except (ValueError, OverflowError):  # values jsonschema-rs cannot take: let Python look
            pass
    return _shape_problem(record)


def _integral(value: Any) -> TypeGuard[float]:
    """True for a JSON integer: an int (not a bool), or a float without a fraction (``200.0``)."""
    if type(value) is int:
        return True
    return isinstance(value, float) and value.is_integer()


def _strings(headers: Any) -> bool:
    """True for an object whose names and values are all strings."""
    if not isinstance(headers, dict):
        return False
    for k, v in headers.items():  # noqa: SIM110 (a loop: 0.34 us, all() of a generator 0.55)
        if not isinstance(k, str) or not isinstance(v, str):
            return False
    return True


def _plain_path(path: Any) -> bool:
    """True for a path as the record shape gives it (``/...``, no query, no URL): nothing to split."""
    return type(path) is str and path[:1] == "/" and "?" not in path and "://" not in path


def _host_header(headers: dict[str, str]) -> str | None:
    """The host a request names in its headers (lower-case names): ``Host``, or HTTP/2's ``:authority``."""
    return headers.get("host") or headers.get(":authority")


def _shape_problem(record: Any) -> tuple[str, str] | None:
    """The first way ``record`` misses the exchange shape, as (pointer, message)."""
    if not isinstance(record, dict):
        return "", f"a record must be a JSON object, not {type(record).__name__}"
    req = record.get("request")
    if not isinstance(req, dict):
        return "/request", "request must be an object"
    if not isinstance(req.get("method"), str) or not req["method"]:
        return "/request/method", "request.method must be a non-empty string"
    if not isinstance(req.get("path"), str) or not req["path"]:
        return "/request/path", "request.path must be a non-empty string"
    headers = req.get("headers")
    if headers is not None and not _strings(headers):
        return "/request/headers", "request.headers must be an object of strings"
    if req.get("query") is not None and not isinstance(req["query"], dict):
        return "/request/query", "request.query must be an object"
    resp = record.get("response")
    if not isinstance(resp, dict):
        return "/response", "response must be an object"
    status = resp.get("status")
    if not _integral(status) or not 0 <= status <= 599:
        return "/response/status", "response.status must be an integer HTTP status"
    rheaders = resp.get("headers")
    if rheaders is not None and not _strings(rheaders):
        return "/response/headers", "response.headers must be an object of strings"
    for side, half in (("request", req), ("response", resp)):
        if half.get("bodyText") is not None and not isinstance(half["bodyText"], str):
            return f"/{side}/bodyText", f"{side}.bodyText must be a string"
    time = record.get("time")
    if time is not None and not isinstance(time, str):
        return "/time", "time must be an ISO 8601 string"
    return None


_LOWER_NAMES: set[str] = set()
"""Header names met that are all lower case (a dict whose names are all here needs no lowering)."""


def build_exchange(
    record: Any, index: int, file: str, position: int | None, is_entry: bool, *, parse_time: bool = True
) -> Exchange | Finding:
    """Type one record, or return the ``input.bad-record`` finding that says why not.

    ``parse_time=False`` leaves ``time`` None for :func:`parse_time` to fill in later (in the
    process that steps, when the worker has more to do: :data:`fsm.worker.TIME_IN_WORKER`).

    (The shape check of :func:`_shape_of`, the plain path of :func:`_plain_path` and the lowered
    names of :func:`_lowered` are written out here, in the order of those functions, each field
    read once: a call cost about as much as what it did. A test holds this to them.)
    """
    try:
        fits = _NATIVE_SHAPE and _SHAPE.is_valid(record)
    except (ValueError, OverflowError):  # values jsonschema-rs cannot take: let Python look
        fits = False
    if not fits:
        problem = _shape_problem(record)
        if problem is not None:
            pointer, message = problem
            return Finding("input.bad-record", message, instance_path=pointer, spec_path="exchange")
    rec: dict[str, Any] = record  # (typed: the compiled build's fast dict calls)
    req: dict[str, Any] = rec["request"]
    resp: dict[str, Any] = rec["response"]
    path: str = req["path"]
    query: dict[str, Any] = req.get("query") or {}
    host = req.get("host")
    scheme = req.get("scheme")
    if type(path) is not str or path[:1] != "/" or "?" in path or "://" in path:  # (not _plain_path)
        try:
            parts = urlsplit(path)
        except ValueError:  # (its text quotes the URL, userinfo and all: never shown, D20)
            return Finding(
                "input.bad-record",
                "request.path is neither a path nor a URL that can be split into its parts",
                instance_path="/request/path",
                spec_path="exchange",
            )
        path = parts.path or "/"
        if parts.query:
            query = {**dict(parse_qsl(parts.query, keep_blank_values=True)), **query}
        if parts.scheme:
            scheme = parts.scheme
            host = parts.netloc.rpartition("@")[2] or host  # (never the userinfo: D20)
    headers: dict[str, str] = req.get("headers") or {}
    if headers and not headers.keys() <= _LOWER_NAMES:
        headers = _lowered(headers)
    if not isinstance(host, str) or not host:
        host = headers.get("host") or headers.get(":authority")  # (_host_header)
    time_text = rec.get("time")
    req_body = req.get("body")
    status = resp["status"]
    resp_headers: dict[str, str] | None = resp.get("headers")
    return Exchange(
        index,
        file,
        position,
        is_entry,
        req["method"].upper(),
        path,
        query,
        headers,
        status if type(status) is int else int(status),
        parse_timestamp(time_text) if time_text and parse_time else None,
        time_text,
        req_body,
        req_body is not None,
        req.get("bodyText"),
        resp.get("body"),
        "body" in resp,
        resp.get("bodyText"),
        _lowered(resp_headers) if resp_headers else None,
        host.lower() if isinstance(host, str) and host else None,
        scheme.lower() if isinstance(scheme, str) and scheme else None,
    )


def _lowered(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` with lower-case names (header names are case-insensitive): itself when they are.

    Request and response headers alike: a redirect's ``Location`` or a ``Set-Cookie`` is read by its
    lower-case name whatever case the record wrote it in.
    """
    if headers and not headers.keys() <= _LOWER_NAMES:
        if "".join(headers).islower():
            if len(_LOWER_NAMES) < 256:  # the few names real traffic uses, not what junk brings
                _LOWER_NAMES.update(headers)
        else:
            headers = {str(k).lower(): v for k, v in headers.items()}
    return headers


NO_BODY: Any = object()
"""A :class:`Parts`' body when there is none (JSON ``null`` is a body: ``None``)."""


class Parts:
    """One exchange's parts, already typed, as a live capture holds them (:mod:`fsm.monitor`).

    ``Validator.feed`` takes a ``Parts`` in place of a record dict and judges it exactly as the record
    :meth:`record` returns (a test holds the two to one exchange and one verdict): where the parts
    plainly fit the record shape (a path without query or host, a method, whole-number status,
    headers of strings) the :class:`Exchange` is made from them directly, with no dict to build and
    no shape to check; anything else goes through :func:`build_exchange` like any record.

    Bodies are parsed JSON (``req_body``/``resp_body``; ``NO_BODY`` when there is none) or, when
    not JSON, their text (``req_text``/``resp_text``); ``req_unkept``/``resp_unkept`` say the capture
    passed a body on without keeping it (``bodyNotKept``). ``time`` (POSIX seconds) may be given
    beside ``time_text`` when it is exactly what :func:`parse_timestamp` reads from it.
    """

    __slots__ = (
        "headers",
        "method",
        "path",
        "req_body",
        "req_text",
        "req_unkept",
        "resp_body",
        "resp_headers",
        "resp_text",
        "resp_unkept",
        "status",
        "time",
        "time_text",
    )

    def __init__(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        status: int,
        resp_headers: dict[str, str],
        time_text: str | None = None,
        time: float | None = None,
        req_body: Any = NO_BODY,
        req_text: str | None = None,
        req_unkept: bool = False,
        resp_body: Any = NO_BODY,
        resp_text: str | None = None,
        resp_unkept: bool = False,
    ) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.status = status
        self.resp_headers = resp_headers
        self.time_text = time_text
        self.time = time
        self.req_body = req_body
        self.req_text = req_text
        self.req_unkept = req_unkept
        self.resp_body = resp_body
        self.resp_text = resp_text
        self.resp_unkept = resp_unkept

    @property
    def unkept(self) -> tuple[str, ...]:
        """The sides whose body was not kept (as :func:`fsm.pipeline`'s ``bodyNotKept`` reading)."""
        if self.req_unkept:
            return ("request", "response") if self.resp_unkept else ("request",)
        return ("response",) if self.resp_unkept else ()

    def record(self) -> dict[str, Any]:
        """The exchange record (docs/log-format.md) these parts are; its header dicts are theirs."""
        request: dict[str, Any] = {"method": self.method, "path": self.path, "headers": self.headers}
        response: dict[str, Any] = {"status": self.status, "headers": self.resp_headers}
        for half, body, text, unkept in (
            (request, self.req_body, self.req_text, self.req_unkept),
            (response, self.resp_body, self.resp_text, self.resp_unkept),
        ):
            if body is not NO_BODY:
                half["body"] = body
            if text is not None:
                half["bodyText"] = text
            if unkept:
                half["bodyNotKept"] = True
        out: dict[str, Any] = {"request": request, "response": response}
        if self.time_text is not None:
            out = {"time": self.time_text, **out}
        return out

    def exchange(
        self, index: int, file: str, position: int | None, is_entry: bool, *, parse_time: bool = True
    ) -> Exchange | Finding:
        """The typed exchange, as :func:`build_exchange` makes it of :meth:`record`."""
        method, path, headers, resp_headers = self.method, self.path, self.headers, self.resp_headers
        status, time_text = self.status, self.time_text
        if not (
            type(method) is str
            and method
            and _plain_path(path)
            and type(status) is int
            and 0 <= status <= 599
            and (time_text is None or type(time_text) is str)
            and (self.req_text is None or type(self.req_text) is str)
            and (self.resp_text is None or type(self.resp_text) is str)
            and _strings(headers)
            and _strings(resp_headers)
        ):
            return build_exchange(self.record(), index, file, position, is_entry, parse_time=parse_time)
        headers = _lowered(headers)
        host = _host_header(headers)
        req_body = None if self.req_body is NO_BODY else self.req_body
        if not time_text or not parse_time:
            time = None
        elif self.time is not None:
            time = self.time
        else:
            time = parse_timestamp(time_text)
        return Exchange(
            index,
            file,
            position,
            is_entry,
            method.upper(),
            path,
            {},
            headers,
            status,
            time,
            time_text,
            req_body,
            req_body is not None,
            self.req_text,
            None if self.resp_body is NO_BODY else self.resp_body,
            self.resp_body is not NO_BODY,
            self.resp_text,
            _lowered(resp_headers),
            host.lower() if host else None,
            None,
        )


def request_exchange(
    method: str, path: str, headers: Mapping[str, str] | None, body: Any, file: str
) -> Exchange | Finding:
    """A request alone as an exchange (its answer unknown: status 200), as :func:`build_exchange` types it.

    The record ``{"request": {method, path, headers, body}, "response": {"status": 200}}``, built
    without the shape check where its parts plainly fit it (a path without query or host, headers
    of strings): what a sandbox or a middleware asks :meth:`fsm.Validator.predict` before each
    call. Anything else goes through :func:`build_exchange` (and may be a finding).
    """
    given = headers or {}
    if type(method) is str and method and _plain_path(path) and _strings(given):
        lowered = _lowered(dict(given))
        host = _host_header(lowered)
        return Exchange(
            -1,
            file,
            None,
            False,
            method.upper(),
            path,
            {},
            lowered,
            200,
            req_body=body,
            req_has_body=body is not None,
            host=host.lower() if host else None,
        )
    request: dict[str, Any] = {"method": method, "path": path, "headers": dict(given)}
    if body is not None:
        request["body"] = body
    return build_exchange({"request": request, "response": {"status": 200}}, -1, file, None, False)
