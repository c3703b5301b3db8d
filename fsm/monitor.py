"""A long-lived validator for a running service: the engine under the middleware and the clients.

Built on the library API only (:class:`fsm.Validator`, its ``feed`` and ``predict``). A
:class:`Monitor` turns one captured HTTP exchange into a record, asks the prediction seam whether a
request must be refused (enforce), feeds the exchange, and hands every finding to its sinks
(:mod:`fsm.sinks`). It is shared by threads and asyncio tasks: each ``predict`` and each ``feed``
holds the monitor's lock for that call only (tens of microseconds), never across a request, so
exchanges are judged one at a time in the order they finish (D19), as one thread feeding them in
that order would judge them.

It fails open: an error inside the kit never breaks the caller's request; it is counted
(``stats()["internal_errors"]``) and logged once, with its traceback, to the ``fsm.monitor`` logger.
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import orjson

from fsm.config import Config, load_config
from fsm.errors import UsageError
from fsm.exchange import NO_BODY, Parts, format_timestamp
from fsm.pipeline import Validator
from fsm.stepper import Prediction
from fsm.violation import Severity, Violation

__all__ = [
    "BODY_LIMIT",
    "RETAIN_FINISHED",
    "Captured",
    "Monitor",
    "ProtocolViolation",
    "Refusal",
    "Sink",
    "Snapshot",
    "now_iso",
]

Mode = Literal["observe", "enforce"]
MODES = ("observe", "enforce")
BODY_LIMIT = 1 << 20
"""Bytes of one body kept for checking (default); past it the body passes on but is not checked."""
RETAIN_FINISHED = 86_400.0
"""Seconds a monitor remembers a finished entity by default (a day; D27): a later call on one, such as
a second redeem of a resolved voucher, is judged against it for that long, then adopted as first met.
Memory and the temporary file on disk then hold about a day of finished entities, not the whole life
of the process."""
_LOG = logging.getLogger("fsm.monitor")
_COUNTERS = ("exchanges", "enforced", "skipped", "bodies_not_checked", "internal_errors")


class Sink(Protocol):
    """Where findings go: called once per exchange that caused any, with its violations."""

    def __call__(self, violations: Sequence[Violation], exchange: Captured) -> None: ...


class ProtocolViolation(Exception):
    """Raised by an enforcing client before it sends a call the model says must be refused.

    ``prediction`` is the :class:`fsm.Prediction` (operation, entity, code, rule, reason).
    """

    def __init__(self, prediction: Prediction, method: str, path: str) -> None:
        self.prediction = prediction
        self.method = method
        self.path = path
        rule = prediction.rule or "machine.illegal-transition"
        super().__init__(
            f"{method} {path}: {prediction.operation} must be refused "
            f"({prediction.code or 'any 4xx'}; {rule}): {prediction.reason}"
        )


@dataclass(frozen=True, slots=True)
class Refusal:
    """The answer an enforcing middleware gives in the server's place (the spec's prediction)."""

    status: int
    body: bytes
    prediction: Prediction


_Read = tuple[Any, str | None, bool]
"""A captured body as :class:`Parts` holds it: (parsed JSON, its text if not JSON, not kept)."""


@dataclass(slots=True)
class Captured:
    """One exchange as a middleware or client saw it; bodies are bytes, ``None`` when not kept."""

    method: str
    path: str
    headers: Mapping[str, str]
    time: str
    body: bytes | None = b""
    status: int = 0
    resp_headers: Mapping[str, str] = field(default_factory=dict)
    resp_body: bytes | None = b""
    enforced: bool = False
    resp_decoded: bool = False
    """The response body is already decoded (requests decodes it), whatever its Content-Encoding says."""

    def answered_by(self, answer: Refusal, body: bytes | None) -> None:
        """Mark the exchange as answered by an enforced refusal (``body``: the request's, if kept)."""
        self.body = body
        self.status = answer.status
        self.resp_headers = {"content-type": "application/json"}
        self.resp_body = answer.body
        self.enforced = True

    def record(self) -> dict[str, Any]:
        """The exchange record (docs/log-format.md), its path as the service saw it (D25)."""
        return self.parts(self.time).record()

    def parts(
        self, time_text: str, time: float | None = None, limit: int = BODY_LIMIT, *, read: _Read | None = None
    ) -> Parts:
        """The exchange as the validator takes it, typed (``Validator.feed`` judges it as :meth:`record`).

        Its headers are the captured dicts themselves (read, never changed, by the validator and
        the exchange log): one copy fewer per exchange. A body that is not JSON is its text; one
        passed on but not kept (None) is said to be so, and the validator says it is not checked.
        A body sent with a ``Content-Encoding`` (gzip, deflate; br with the brotli package) is
        judged decoded, up to ``limit`` bytes; one that cannot be decoded, or longer, is not checked.
        ``read``: the request body already read (an enforcing monitor's prediction read these very
        bytes, sent without a Content-Encoding), not read again.
        """
        headers, resp_headers = self.headers, self.resp_headers
        body, resp_body = self.body, self.resp_body
        if body and read is None and "content-encoding" in headers:
            body = decoded(body, headers["content-encoding"], limit)
        if resp_body and not self.resp_decoded and "content-encoding" in resp_headers:
            resp_body = decoded(resp_body, resp_headers["content-encoding"], limit)
        return Parts(
            self.method,
            self.path,
            headers if type(headers) is dict else dict(headers),
            self.status,
            resp_headers if type(resp_headers) is dict else dict(resp_headers),
            time_text,
            time,
            *(read or _read(body)),
            *_read(resp_body),
        )


@functools.cache
def _brotli() -> Callable[[bytes, int], bytes] | None:
    """The brotli decoder, when the package is installed (optional: httpx asks for br only then)."""
    try:
        import brotli  # type: ignore[import-not-found,import-untyped,unused-ignore]
    except ImportError:
        return None

    def unbrotli(data: bytes, limit: int) -> bytes:
        """``data`` decoded, stopping past ``limit`` bytes (a bomb is not unpacked).

        Needs brotli 1.2's ``output_buffer_limit``; an older brotli raises ``TypeError`` here,
        so its bodies are not checked rather than decoded without a bound.
        """
        d = brotli.Decompressor()
        out: list[bytes] = []
        size = 0
        while not d.is_finished():
            piece: bytes = d.process(data, output_buffer_limit=limit + 1 - size)
            data = b""
            size += len(piece)
            if size > limit or (not piece and d.can_accept_more_data()):
                raise ValueError("longer than the bound, or cut short")
            out.append(piece)
        return b"".join(out)

    return unbrotli


def _inflate(wbits: int) -> Callable[[bytes, int], bytes]:
    """A zlib decoder of one kind (``wbits``) that stops past ``limit`` bytes (a bomb is not unpacked)."""

    def inflate(data: bytes, limit: int) -> bytes:
        out = b""
        while True:  # every member of a multi-member stream (gzip allows several), as gzip.decompress
            d = zlib.decompressobj(wbits)
            out += d.decompress(data, limit + 1 - len(out))
            if len(out) > limit or not d.eof:
                raise ValueError("longer than the bound, or cut short")
            data = d.unused_data
            if not data:
                return out

    return inflate


_GZIP = _inflate(16 + zlib.MAX_WBITS)
_ZLIB = _inflate(zlib.MAX_WBITS)
_RAW = _inflate(-zlib.MAX_WBITS)


def decoded(body: bytes, encoding: str, limit: int = BODY_LIMIT) -> bytes | None:
    """``body`` with its ``Content-Encoding`` undone (the last applied first), or None when it cannot be.

    gzip and deflate (zlib-wrapped, or raw as some servers send it) always; br when the brotli package
    is installed; ``identity`` is none. None, for an unknown or broken encoding or a body that decodes
    past ``limit`` bytes, means not checked (``input.body-not-checked``), never a false finding.
    """
    for coding in reversed([c.strip().lower() for c in encoding.split(",") if c.strip()]):
        try:
            if coding in ("gzip", "x-gzip"):
                body = _GZIP(body, limit)
            elif coding == "deflate":
                try:
                    body = _ZLIB(body, limit)
                except zlib.error:
                    body = _RAW(body, limit)
            elif coding == "br" and (unbrotli := _brotli()) is not None:
                body = unbrotli(body, limit)
            elif coding != "identity":
                return None
        except Exception:  # (zlib's, brotli's own error classes, a bound passed): not checked
            return None
    return body


_NO_BODY: _Read = (NO_BODY, None, False)
_NOT_KEPT: _Read = (NO_BODY, None, True)


def _read(body: bytes | None) -> _Read:
    """A captured body read (:data:`_Read`): parsed JSON, else its text; or none, or not kept."""
    if not body:
        return _NOT_KEPT if body is None else _NO_BODY
    try:
        return orjson.loads(body), None, False
    except orjson.JSONDecodeError:
        return NO_BODY, body.decode("utf-8", "replace"), False


def decode_body(body: bytes | None, encoding: str | None = None) -> Any:
    """A request body as ``predict`` takes it: parsed JSON, or None (``encoding``: its Content-Encoding)."""
    if body and encoding:
        body = decoded(body, encoding)
    parsed = _read(body)[0]
    return None if parsed is NO_BODY else parsed


def now_iso() -> str:
    """The current time as an exchange record writes it (UTC, milliseconds: ``2026-06-09T12:00:01.250Z``).

    It also leaves the text and its POSIX seconds in ``_stamped`` (the seconds exactly what
    :func:`fsm.exchange.parse_timestamp` reads from the text: the same sum of whole microseconds),
    so that the monitor hands the validator the time it stamped, unparsed.
    """
    global _stamped
    ms = time.time_ns() // 1_000_000
    text = format_timestamp(ms * 1000)
    _stamped = (text, ms / 1000)  # (ints divide correctly rounded: the float parse_timestamp reads)
    return text


_stamped: tuple[str, float] = ("", 0.0)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Findings so far, without finishing: the last ``kept`` violations, and counts of every one."""

    violations: tuple[Violation, ...]
    by_rule: Mapping[str, int]
    by_severity: Mapping[str, int]
    exchanges: int


class Monitor:
    """A validator that lives as long as the service, with sinks, settings and fail-open guards.

    Arguments:
        mode: ``observe`` (report only) or ``enforce`` (also refuse, before the app or the network,
            a request the model says must be refused).
        modes: per operation id, ``observe`` or ``enforce`` (overrides ``mode``).
        sinks: callables taking (violations, exchange) (see :mod:`fsm.sinks`).
        config: a :class:`fsm.Config` (rule severities as in the CLI and config file), or the path of a
            config file (``voucher-fsm.toml`` or a ``pyproject.toml``).
        severity: rule id -> level (``"warning"``, ``"off"``...), applied over ``config``.
        view: whose calls this process sees (D28): ``all``, ``payee`` or ``payer``.
        api_prefix: where the API lives in the traffic (D25; default: the config's, else
            ``/api/v1``); the validator routes both ``predict`` and ``feed`` under it, and other
            paths are not the protocol's and are skipped.
        skip_paths: glob patterns (``/api/v1/finance/*``) of paths never checked.
        skip_operations: operation ids never checked.
        body_limit: bytes of a body kept for checking; a longer body is passed on whole but not
            checked (``input.body-not-checked``, info).
        kept: violations kept for :meth:`snapshot` (all are counted).
        validator_options: more keyword arguments for the :class:`fsm.Validator` made here (e.g. the
            memory bounds of a process that runs for weeks, D27: ``max_live``, ``retain_finished``).
            ``retain_finished`` defaults to :data:`RETAIN_FINISHED` (a day) here, not to the whole
            run as for a validator over a file: finished entities are forgotten a day after they
            finished, in RAM and on disk alike; ``None`` keeps them all (the disk file then grows
            with every entity finished).
        validator: a ready :class:`fsm.Validator` (its own settings win over ``config`` and ``view``).
    """

    def __init__(
        self,
        *,
        mode: str = "observe",
        modes: Mapping[str, str] | None = None,
        sinks: Iterable[Sink] = (),
        config: Config | str | Path | None = None,
        severity: Mapping[str, str | Severity | None] | None = None,
        view: str | None = None,
        api_prefix: str | None = None,
        skip_paths: Iterable[str] = (),
        skip_operations: Iterable[str] = (),
        body_limit: int = BODY_LIMIT,
        kept: int = 1000,
        validator_options: Mapping[str, Any] | None = None,
        validator: Validator | None = None,
    ) -> None:
        if mode not in MODES:
            raise UsageError(f"mode must be observe or enforce, not {mode!r}")
        for op, m in (modes or {}).items():
            if m not in MODES:
                raise UsageError(f"modes[{op!r}] must be observe or enforce, not {m!r}")
        if type(body_limit) is not int or body_limit < 0:
            raise UsageError(f"body_limit must be a whole number of bytes, not {body_limit!r}")
        prefix = None if api_prefix is None else "/" + api_prefix.strip("/")
        if validator is None:
            cfg = load_config(Path(config)) if isinstance(config, (str, Path)) else config or Config()
            if severity:
                cfg = cfg.merged(severity={**cfg.severity, **severity})
            cfg = cfg.merged(view=view, api_prefix=prefix)
            validator = Validator(
                config=cfg, **{"retain_finished": RETAIN_FINISHED, **(validator_options or {})}
            )
        routes_under = validator.config.api_prefix
        routes_under = validator.spec.prefix if routes_under is None else routes_under
        if prefix is not None and prefix.rstrip("/") != routes_under:
            raise UsageError(
                f"api_prefix {prefix!r} differs from the validator's ({routes_under!r}): "
                "give it to the Validator, which routes what is fed and predicted (D25)"
            )
        self.validator = validator
        known = {op.id for op in validator.spec.operations}
        unknown = sorted((set(modes or {}) | set(skip_operations)) - known)
        if unknown:
            raise UsageError(
                f"unknown operation id(s) {', '.join(unknown)}; `voucher-fsm operations` lists them"
            )
        self.mode = mode
        self.modes: dict[str, str] = dict(modes or {})
        self.sinks: list[Sink] = list(sinks)
        self.prefix = routes_under
        self._under = routes_under + "/"
        self.skip_paths = tuple(skip_paths)
        self.skip_operations = frozenset(skip_operations)
        self.body_limit = body_limit
        self._route = bool(self.skip_operations) or bool(self.modes)  # (ask the model which operation)
        self._enforcing = mode == "enforce" or "enforce" in self.modes.values()
        self._lock = threading.Lock()
        self._kept: deque[Violation] = deque(maxlen=kept)
        self._by_rule: Counter[str] = Counter()
        self._by_severity: Counter[str] = Counter()
        self._stats: Counter[str] = Counter()
        self._fed = 0  # (exchanges fed: a plain number, counted on the hot path)
        self._told: set[str] = set()  # internal failures already logged with their traceback
        self._on_record: list[Callable[[dict[str, Any]], None]] = []
        self._last_read: tuple[bytes | None, _Read] = (None, _NO_BODY)  # (the body refusal() last read)

    @classmethod
    def given(cls, monitor: Monitor | None, settings: Mapping[str, Any]) -> Monitor:
        """``monitor``, or a new one made from ``settings`` (a middleware's or client's keywords)."""
        if monitor is None:
            return cls(**settings)
        if settings:
            raise UsageError(f"pass settings to the Monitor, not beside it: {', '.join(sorted(settings))}")
        return monitor

    # ---------------------------------------------------------------- settings
    @property
    def enforcing(self) -> bool:
        """Whether any operation is enforced (the request body must then be read before the app)."""
        return self._enforcing

    def wants(self, path: str) -> bool:
        """Whether a request path is checked at all (under the API prefix, not skipped by a glob)."""
        bare = path.partition("?")[0] if "?" in path else path
        prefix = self.prefix
        if prefix and not bare.startswith(self._under) and bare != prefix:
            return False
        if not self.skip_paths:
            return True
        return not any(fnmatch.fnmatchcase(bare, pattern) for pattern in self.skip_paths)

    def app_path(self, full: str, mount: str) -> str:
        """The path to check of a request to an app mounted at ``mount`` (ASGI root_path, WSGI SCRIPT_NAME).

        The app's own view of it when that one is under the API prefix and the full path is not (an
        app serving ``/api/v1`` mounted at ``/gateway``, or behind a proxy that strips the mount:
        ``uvicorn --root-path``), else ``full``. Paths are the service's own (D25).
        """
        if not mount or not full.startswith(mount) or mount == "/":
            return full
        own = full[len(mount) :] or "/"
        if own[:1] != "/":
            return full  # (a mount of /gate and a path /gateway/...: not under the mount)
        prefix, under = self.prefix, self._under
        if not prefix or full == prefix or full.startswith(under):
            return full
        return own if own == prefix or own.startswith(under) else full

    def on_record(self, writer: Callable[[dict[str, Any]], None]) -> None:
        """Call ``writer`` with every record fed, in the order fed (the exchange log, see fsm.sinks)."""
        self._on_record.append(writer)

    # -------------------------------------------------------------- the seams
    def refusal(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes | None, at: str | None = None
    ) -> Prediction | None:
        """The prediction when an enforced request must be refused; None to let it through.

        Fails open: a failure inside the kit lets the request through (counted and logged once).
        """
        if not self._enforcing:
            return None
        try:
            encoding = headers.get("content-encoding")
            if encoding:
                parsed = decode_body(body, encoding)
            else:  # (the feed of this request reads these very bytes: parsed once, kept for it)
                read = _read(body)
                if body:
                    self._last_read = (body, read)
                parsed = None if read[0] is NO_BODY else read[0]
            with self._lock:
                p = self.validator.predict(method, path, headers, parsed, at=at)
            if p.accepted is not False or p.operation is None or p.operation in self.skip_operations:
                return None
            if self.modes.get(p.operation, self.mode) != "enforce":
                return None
            return p
        except Exception:
            self.failed("predict")
            return None

    def refuse(self, p: Prediction) -> Refusal:
        """The status and error envelope (D15) the spec predicts for a refused call."""
        rule = p.rule or "machine.illegal-transition"
        code = p.code or "validation_failed"
        status = p.status or (self.validator.spec.generic_statuses.get(code) or 409)
        body = orjson.dumps({"code": code, "message": f"refused by voucher-fsm ({rule}): {p.reason}"})
        return Refusal(status, body, p)

    def skipped_operation(self, captured: Captured) -> bool:
        """Whether the exchange's operation is one of ``skip_operations`` (asked only when set)."""
        if not self._route:
            return False
        with self._lock:
            p = self.validator.predict(captured.method, captured.path, captured.headers)
        return p.operation in self.skip_operations

    def feed(self, captured: Captured) -> list[Violation]:
        """Judge one finished exchange and hand its findings to the sinks. Never raises."""
        try:
            if self.skip_operations and self.skipped_operation(captured):
                with self._lock:
                    self._stats["skipped"] += 1
                return []
            read, body = self._last_read, captured.body
            parts = captured.parts(
                "",
                limit=self.body_limit,
                read=read[1]
                if read[0] is body and body and "content-encoding" not in captured.headers
                else None,
            )
            unkept = parts.req_unkept + parts.resp_unkept
            with self._lock:
                # stamped when fed: exchanges that ran at once finish in another order than they began,
                # and the validator judges in the order fed (D19), so their times must not go backwards
                parts.time_text = stamp = now_iso()
                stamped = _stamped  # (its seconds, unless another thread stamped since: then parsed)
                parts.time = stamped[1] if stamped[0] is stamp else None
                if self._on_record:
                    record = parts.record()
                    for write in self._on_record:
                        write(record)
                found = self.validator.feed(parts, source="<monitor>")
                self._fed += 1
                if unkept:
                    self._stats["bodies_not_checked"] += unkept
                if captured.enforced:
                    self._stats["enforced"] += 1
                for v in found:
                    self._kept.append(v)
                    self._by_rule[v.rule_id] += 1
                    self._by_severity[v.severity.value] += 1
        except Exception:
            self.failed("feed")
            return []
        if found:
            for sink in self.sinks:
                try:
                    sink(found, captured)
                except Exception:
                    self.failed(f"sink {type(sink).__name__}")
        return found

    def failed(self, where: str) -> None:
        """Count an internal failure; log it with its traceback the first time it happens there."""
        with self._lock:
            self._stats["internal_errors"] += 1
            first = where not in self._told
            self._told.add(where)
        if first:
            _LOG.exception("voucher-fsm failed in %s; the request went on unchecked (logged once)", where)

    def count(self, what: str, n: int = 1) -> None:
        """Add to one of :meth:`stats`' counters."""
        with self._lock:
            self._stats[what] += n

    # ------------------------------------------------------------------ output
    def snapshot(self) -> Snapshot:
        """Findings and counts so far, without finishing the run."""
        with self._lock:
            return Snapshot(tuple(self._kept), dict(self._by_rule), dict(self._by_severity), self._fed)

    def stats(self) -> dict[str, int]:
        """Counters: exchanges fed, enforced refusals, skipped, bodies not checked, internal errors."""
        with self._lock:
            out = dict.fromkeys(_COUNTERS, 0)
            out.update(self._stats)
            out["exchanges"] = self._fed
            out["findings"] = sum(self._by_rule.values())
            return out

    def finish(self) -> Any:
        """Close the run and return the validator's :class:`fsm.Report` (unfinished entities, D18)."""
        with self._lock:
            return self.validator.finish()
