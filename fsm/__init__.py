"""voucher-fsm: the Bleepay voucher protocol as state machines and schemas, and a traffic validator.

The public API::

    from fsm import Validator, validate_log

    report = validate_log("capture.har")
    for v in report.violations:
        print(v.location, v.rule_id, v.message)

Names are imported lazily, so ``import fsm`` (and ``voucher-fsm --help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from fsm._version import __version__

__all__ = [
    "Config",
    "Exchange",
    "ExchangeCallback",
    "ExchangeRecord",
    "FsmError",
    "LogFormatError",
    "Match",
    "Prediction",
    "Report",
    "Rule",
    "Severity",
    "SourceLocation",
    "Spec",
    "SpecError",
    "UsageError",
    "Validator",
    "Violation",
    "__version__",
    "load_spec",
    "validate_distributed",
    "validate_log",
    "validate_sharded",
]

_WHERE = {
    "Config": "fsm.config",
    "Exchange": "fsm.exchange",
    "ExchangeCallback": "fsm.pipeline",
    "ExchangeRecord": "fsm.models.exchange",
    "FsmError": "fsm.errors",
    "LogFormatError": "fsm.errors",
    "Match": "fsm.matcher",
    "Prediction": "fsm.stepper",
    "Report": "fsm.report",
    "Rule": "fsm.violation",
    "Severity": "fsm.violation",
    "SourceLocation": "fsm.violation",
    "Spec": "fsm.spec",
    "SpecError": "fsm.errors",
    "UsageError": "fsm.errors",
    "Validator": "fsm.pipeline",
    "Violation": "fsm.violation",
    "load_spec": "fsm.spec",
    "validate_distributed": "fsm.distributed",
    "validate_log": "fsm.pipeline",
    "validate_sharded": "fsm.shards",
}

if TYPE_CHECKING:
    from fsm.config import Config
    from fsm.distributed import validate_distributed
    from fsm.errors import FsmError, LogFormatError, SpecError, UsageError
    from fsm.exchange import Exchange
    from fsm.matcher import Match
    from fsm.models.exchange import ExchangeRecord
    from fsm.pipeline import ExchangeCallback, Validator, validate_log
    from fsm.report import Report
    from fsm.shards import validate_sharded
    from fsm.spec import Spec, load_spec
    from fsm.stepper import Prediction
    from fsm.violation import Rule, Severity, SourceLocation, Violation


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'fsm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
