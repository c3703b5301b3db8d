"""A pytest plugin: validate recorded traffic in your own tests.

Installed with voucher-fsm (entry point ``pytest11``). It gives a fixture and an
assertion helper::

    def test_checkout_traffic(assert_valid_traffic):
        assert_valid_traffic("captures/checkout.har")          # a file, or a list of exchange dicts

    def test_step_by_step(voucher_validator):
        for record in my_recorder.exchanges:
            assert voucher_validator.feed(record) == []

A failing assertion shows the validator's text report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

__all__ = ["assert_valid_traffic", "voucher_validator"]


def check_traffic(source: str | Path | Iterable[Any], *, strict: bool = False) -> Any:
    """Validate a log file or a list of exchange records; fail the test with the text report."""
    from fsm.config import Config
    from fsm.pipeline import Validator
    from fsm.render import render_text

    v = Validator(config=Config(strict=strict))
    if isinstance(source, (str, Path)):
        v.feed_file(str(source))
    else:
        for record in source:
            v.feed(record)
    report = v.finish()
    if report.unreadable_inputs or not report.totals.judged:  # nothing checked is no pass
        what = ", ".join(report.unreadable_inputs) or "the traffic given"
        pytest.fail(
            f"voucher-fsm could not read any record of {what}:\n" + render_text(report), pytrace=False
        )
    if report.failed:
        pytest.fail("voucher-fsm found protocol violations:\n" + render_text(report), pytrace=False)
    return report


@pytest.fixture
def voucher_validator() -> Any:
    """A fresh :class:`fsm.Validator`, fed one exchange at a time by the test."""
    from fsm.pipeline import Validator

    return Validator()


@pytest.fixture
def assert_valid_traffic() -> Callable[..., Any]:
    """``assert_valid_traffic(log_or_records, strict=False)``: fails with the report on violations."""
    return check_traffic
