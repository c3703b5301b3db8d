"""Exceptions that stop a run.

Problems found in recorded traffic are never raised: they become
:class:`fsm.violation.Violation` records in a report. Exceptions are for
problems with the kit's own spec (:class:`SpecError`), with how it is called
(:class:`UsageError`), and with input that cannot be read at all
(:class:`LogFormatError`).

::

    FsmError
    ├── SpecError        the machines, operation table, rules or schemas are broken
    ├── UsageError       bad arguments or configuration
    └── LogFormatError   an input file cannot be opened or is of no known format
"""

from __future__ import annotations

__all__ = ["FsmError", "LogFormatError", "SpecError", "UsageError"]


class FsmError(Exception):
    """Root of every exception voucher-fsm raises on purpose."""

    exit_code = 2


class SpecError(FsmError):
    """The spec (machine files, operation table, rules, schemas) is invalid.

    Arguments:
        message: what is wrong, and what to do about it.
        findings: the individual problems, each naming a file and a JSON pointer.
    """

    def __init__(self, message: str, findings: tuple[str, ...] = ()) -> None:
        self.findings = findings
        text = message if not findings else message + "\n" + "\n".join(f"  {f}" for f in findings)
        super().__init__(text)


class UsageError(FsmError):
    """The kit was called wrongly: unknown option value, bad config file, unknown rule id."""


class LogFormatError(FsmError):
    """An input cannot be read at all (missing file, unknown format).

    A single unreadable record inside a readable file is not an exception: it is
    reported as an ``input.unreadable`` violation and the run goes on (D21).
    """
