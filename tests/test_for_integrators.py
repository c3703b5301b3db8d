"""The public strategies and the pytest plugin, as integrators use them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from fsm import strategies
from fsm._validators import validator
from fsm.models import SCHEMA_MODELS
from fsm.spec import load_spec

REPO = Path(__file__).resolve().parents[1]
pytest_plugins = ["pytester"]


@settings(max_examples=15)
@given(strategies.requests("redeem-voucher"))
def test_request_strategy_gives_valid_bodies(body: Any) -> None:
    """Every generated redeem body is valid for schema and model."""
    assert validator("vouchers/redeem-voucher.request").is_valid(body)
    SCHEMA_MODELS["vouchers/redeem-voucher.request"].model_validate(body)


@settings(max_examples=10)
@given(strategies.responses("redeem-voucher", 400))
def test_error_strategy_gives_documented_codes(body: Any) -> None:
    """Error bodies use the envelope and a documented or generic code (D15)."""
    op = load_spec().operation("redeem-voucher")
    assert body["code"] in op.documented_codes | load_spec().generic_errors


@settings(max_examples=5)
@given(strategies.flows(max_sessions=2))
def test_flow_strategy_gives_traffic_the_validator_accepts(records: list[dict[str, Any]]) -> None:
    """Generated flows validate without errors or warnings."""
    from fsm import Validator

    v = Validator()
    problems = [p for r in records for p in v.feed(r) if p.severity.rank > 0]
    assert problems == []


def test_every_payload_has_a_strategy() -> None:
    """strategies.payloads works for every shipped payload schema."""
    for rel in SCHEMA_MODELS:
        if rel != "report":
            assert strategies.payloads(rel) is not None


def test_pytest_plugin_passes_clean_traffic_and_fails_with_the_report(pytester: pytest.Pytester) -> None:
    """The fixture is there without configuration; a broken log fails with rule ids in the output."""
    pytester.makepyfile(
        f"""
        def test_clean(assert_valid_traffic):
            assert_valid_traffic({str(REPO / "examples" / "session-two-payments.jsonl")!r})

        def test_broken(assert_valid_traffic):
            assert_valid_traffic({str(REPO / "examples" / "broken.jsonl")!r})

        def test_fixture(voucher_validator):
            assert voucher_validator.finish().totals.read == 0
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*machine.illegal-transition*", "*FAILED*"])
