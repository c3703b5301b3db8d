"""Where an embedded monitor's findings go: logs, a callback, a JSONL file, OpenTelemetry.

A sink is any callable taking ``(violations, exchange)``: the violations one exchange caused and the
:class:`fsm.monitor.Captured` exchange. :class:`ExchangeLog` is not a sink but a recorder: it writes
every exchange fed (secrets replaced by stable fingerprints, D29) as a JSONL log that
``voucher-fsm validate`` re-validates.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import orjson

from fsm.monitor import Captured, Monitor
from fsm.render.json import violation_to_dict
from fsm.secrets import without_secrets
from fsm.violation import Severity, Violation

__all__ = ["Callback", "ExchangeLog", "JsonlFindings", "LoggingSink", "OpenTelemetrySink", "recorded"]

_LEVELS = {Severity.ERROR: logging.ERROR, Severity.WARNING: logging.WARNING, Severity.INFO: logging.INFO}


def _fields(v: Violation, exchange: Captured) -> dict[str, Any]:
    out = violation_to_dict(v)
    out["method"] = exchange.method
    out["status"] = exchange.status
    return out


class LoggingSink:
    """One log record per finding on ``logger`` (default ``fsm.findings``), at the finding's level.

    The record's message is ``RULE: message``; its ``voucher_fsm`` attribute holds the finding as
    the JSON report writes it (rule, severity, message, operation, entity, instance path...), plus
    the method and status, for structured log handlers.
    """

    def __init__(self, logger: logging.Logger | str = "fsm.findings") -> None:
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger

    def __call__(self, violations: Sequence[Violation], exchange: Captured) -> None:
        for v in violations:
            level = _LEVELS[v.severity]
            if self.logger.isEnabledFor(level):
                self.logger.log(
                    level, "%s: %s", v.rule_id, v.message, extra={"voucher_fsm": _fields(v, exchange)}
                )


class Callback:
    """Calls ``fn(violation)`` once per finding (a plain function as a sink)."""

    def __init__(self, fn: Callable[[Violation], object]) -> None:
        self.fn = fn

    def __call__(self, violations: Sequence[Violation], exchange: Captured) -> None:
        for v in violations:
            self.fn(v)


class _Lines:
    """A file written one JSON line at a time by many threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._file: IO[bytes] = open(self.path, "ab")  # noqa: SIM115 (kept open for the process's life)

    def write(self, value: Any) -> None:
        line = orjson.dumps(value) + b"\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        """Close the file (the sink writes nothing more)."""
        with self._lock:
            self._file.close()

    def __enter__(self) -> _Lines:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class JsonlFindings(_Lines):
    """Appends one JSON line per finding (the JSON report's violation, plus method and status)."""

    def __call__(self, violations: Sequence[Violation], exchange: Captured) -> None:
        for v in violations:
            self.write(_fields(v, exchange))


class ExchangeLog(_Lines):
    """Writes every exchange a monitor feeds, in the order fed, as a JSONL log (docs/log-format.md).

    Paths are as the service saw them: under a monitor's other ``api_prefix``, validate the log
    with the same ``--api-prefix`` (D25).

    Secrets are replaced by stable fingerprints of the same length (D29): bearer tokens in
    Authorization headers and the same tokens where a sign-in answer issues them (so the validator
    still tells callers apart and learns their roles), passwords, signatures and the other secret
    fields of ``fsm/protocol/redaction.json``. ``keep_secrets=True`` writes them as they were, and
    warns.
    """

    def __init__(self, path: str | Path, monitor: Monitor, *, keep_secrets: bool = False) -> None:
        super().__init__(path)
        self.keep_secrets = keep_secrets
        if keep_secrets:
            logging.getLogger("fsm.monitor").warning(
                "the exchange log %s keeps raw tokens, passwords and signatures (keep_secrets=True)", path
            )
        monitor.on_record(self.record)

    def record(self, record: dict[str, Any]) -> None:
        """Write one record (fingerprinted unless ``keep_secrets``)."""
        self.write(record if self.keep_secrets else recorded(record))


def _stand_in(secret: str, kind: str = "tok") -> str:
    """A stable fingerprint as long as ``secret`` (so length rules still hold), never the secret."""
    digest = hashlib.blake2b(secret.encode("utf-8", "surrogatepass"), digest_size=32).hexdigest()
    body = f"{kind}:{digest}"
    while len(body) < len(secret):
        body += hashlib.blake2b(body.encode(), digest_size=32).hexdigest()
    return body[: max(len(secret), len(kind) + 7)]


def recorded(record: Mapping[str, Any]) -> dict[str, Any]:
    """An exchange record as written to disk: secrets replaced by same-length fingerprints (D29)."""
    return without_secrets(dict(record), _stand_in)


class OpenTelemetrySink:
    """Each finding as an event on the current span, and a counter ``voucher_fsm.findings`` by rule.

    Needs the ``otel`` extra (``opentelemetry-api``); without an SDK configured both are no-ops.
    The counter carries the attributes ``rule`` and ``severity``; the span event is named
    ``voucher_fsm.finding`` with the rule, severity, message, operation and entity.
    """

    def __init__(self, meter_provider: Any = None) -> None:
        try:
            from opentelemetry import metrics, trace
        except ImportError as exc:  # pragma: no cover - the extra is missing
            from fsm.errors import UsageError

            raise UsageError(
                "OpenTelemetrySink needs opentelemetry-api: pip install 'voucher-fsm[otel]'"
            ) from exc
        self._trace = trace
        meter = (meter_provider or metrics.get_meter_provider()).get_meter("voucher-fsm")
        self.counter = meter.create_counter(
            "voucher_fsm.findings", unit="1", description="Protocol findings by rule (voucher-fsm)"
        )

    def __call__(self, violations: Sequence[Violation], exchange: Captured) -> None:
        span = self._trace.get_current_span()
        for v in violations:
            attributes = {"rule": v.rule_id, "severity": v.severity.value}
            self.counter.add(1, attributes)
            if span.is_recording():
                span.add_event(
                    "voucher_fsm.finding",
                    {
                        **attributes,
                        "message": v.message,
                        "operation": v.operation_id or "",
                        "entity": v.entity or "",
                    },
                )
