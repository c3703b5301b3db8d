"""Leaf data module: severities, locations, rules and violations.

Imports nothing from :mod:`fsm`, so every stage can use it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from fsm._record import Record

__all__ = [
    "NAMED_IN_MESSAGE",
    "Finding",
    "RelatedExchange",
    "Rule",
    "Severity",
    "SourceLocation",
    "Violation",
]


NAMED_IN_MESSAGE = 3
"""A violation with ``context`` names its first this many sub-violations in its own message."""


class Severity(enum.Enum):
    """How much a violation matters: ``error`` fails a run, ``info`` never does."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        """Order for sorting and thresholds: info < warning < error."""
        return _RANK[self]

    @classmethod
    def parse(cls, text: str) -> Severity:
        """Read a severity name, case-insensitively (``off`` is not a severity)."""
        try:
            return cls(text.strip().lower())
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown severity {text!r}; use one of {names}") from None

    def __str__(self) -> str:
        return self.value


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.ERROR: 2}


@dataclass(frozen=True, slots=True)
class SourceLocation(Record):
    """Where a record sits in its input: ``FILE:LINE`` (JSONL) or ``FILE:entries[N]`` (HAR).

    ``line`` is 1-based; ``entry`` is the 0-based index into the HAR's ``log.entries``.
    """

    file: str
    line: int | None = None
    entry: int | None = None

    def __str__(self) -> str:
        if self.entry is not None:
            return f"{self.file}:entries[{self.entry}]"
        if self.line is not None:
            return f"{self.file}:{self.line}"
        return self.file


@dataclass(frozen=True, slots=True)
class Rule(Record):
    """One entry of the rule catalogue."""

    id: str
    severity: Severity
    cite: str
    title: str
    hint: str


@dataclass(frozen=True, slots=True)
class RelatedExchange(Record):
    """An earlier exchange that helps explain a violation (it put the entity where it is)."""

    index: int
    location: SourceLocation
    summary: str


@dataclass(frozen=True, slots=True)
class Violation(Record):
    """One broken rule, found in one exchange (or at the end of the log).

    Arguments:
        rule_id: stable dotted id from the rule catalogue, e.g. ``machine.illegal-transition``.
        severity: the effective severity after configuration.
        message: one line saying what happened and what was expected.
        location: where the exchange sits in its input.
        exchange_index: 0-based position of the exchange in the run (``-1`` at end of log).
        operation_id: the operation the exchange matched, if any.
        entity: ``kind:id`` of the entity concerned, if any (e.g. ``voucher:vch_1``).
        instance_path: RFC 6901 pointer prefixed ``/request`` or ``/response`` (``""`` if none).
        spec_path: where the broken rule lives: a schema ``$id`` plus keyword path,
            or ``machine#state/trigger``.
        expected: what the spec expected, as plain data.
        actual: what the exchange showed, as plain data.
        related: earlier exchanges that put the entity into its current state.
        context: nested sub-violations (e.g. every schema error of one body).
        state: the state the model holds for ``entity`` at that point (``one of A, B`` while
            undecided), as the message states it; None when the violation judges no entity's state.
    """

    rule_id: str
    severity: Severity
    message: str
    location: SourceLocation
    exchange_index: int = -1
    operation_id: str | None = None
    entity: str | None = None
    instance_path: str = ""
    spec_path: str = ""
    expected: Any = None
    actual: Any = None
    related: tuple[RelatedExchange, ...] = ()
    context: tuple[Violation, ...] = field(default=())
    state: str | None = None

    def sort_key(self) -> tuple[int, int, str]:
        """Log order, then most severe first, then rule id."""
        return (self.exchange_index, -self.severity.rank, self.rule_id)


@dataclass(frozen=True, slots=True)
class Finding(Record):
    """What a check yields: a violation before the driver adds location and severity.

    Checks do not know where the exchange sits in its file, nor how the user
    configured the rule; :mod:`fsm.pipeline` adds both (like jsonschema's
    ``descend`` adding path segments as errors pass through).
    """

    rule_id: str
    message: str
    instance_path: str = ""
    spec_path: str = ""
    expected: Any = None
    actual: Any = None
    entity: str | None = None
    related: tuple[RelatedExchange, ...] = ()
    context: tuple[Finding, ...] = ()
    state: str | None = None
