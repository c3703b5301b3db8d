"""The public strategies and the pytest plugin, as integrators use them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from fsm import strategies
from fsm._validators import validator
from fsm.errors import UsageError
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


@pytest.mark.parametrize("status", [400, 401, 404, 429, 500])
def test_error_strategy_gives_the_codes_documented_for_that_status(status: int) -> None:
    """Error bodies use the envelope (D15) and a code documented, or generic, for exactly that status."""
    spec = load_spec()
    op = spec.operation("redeem-voucher")
    allowed = set(op.errors.get(status, ())) | {c for c, s in spec.generic_statuses.items() if s == status}
    seen: set[str] = set()

    @settings(max_examples=20)
    @given(strategies.responses("redeem-voucher", status))
    def check(body: Any) -> None:
        assert set(body) <= {"code", "message"}
        assert body["code"] in allowed, (status, body)
        seen.add(body["code"])

    check()
    assert seen


def test_error_strategy_refuses_a_status_nobody_documents() -> None:
    """A status with no documented answer is a usage error that lists the statuses there are."""
    with pytest.raises(UsageError, match=r"no answer with status 418.*\[200, 400"):
        strategies.responses("redeem-voucher", 418)


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

        def test_empty(assert_valid_traffic, tmp_path):
            (tmp_path / "empty.jsonl").write_bytes(b"")
            assert_valid_traffic(str(tmp_path / "empty.jsonl"))

        def test_nothing(assert_valid_traffic):
            assert_valid_traffic([])
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=3)
    result.stdout.fnmatch_lines(["*could not read any record of*empty.jsonl*"])
    result.stdout.fnmatch_lines(["*machine.illegal-transition*", "*FAILED*"])
