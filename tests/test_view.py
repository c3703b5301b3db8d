"""One party's view (D28): a change the other party's unseen calls explain is adopted, never an error."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from fsm import Config, UsageError, Validator
from fsm.cli import cli
from fsm.config import load_config

REPO = Path(__file__).resolve().parents[1]


def _records() -> list[dict]:
    return [
        json.loads(line) for line in (REPO / "examples/session-two-payments.jsonl").read_text().splitlines()
    ]


def _payee_only() -> list[dict]:
    """The calls the payee's server makes (its sign-in and every call with its token)."""
    records = _records()
    sign_in = next(r for r in records if r["request"]["body"].get("type") == "resource")
    token = sign_in["response"]["body"]["authorization"]["token"]
    return [
        r
        for r in records
        if r is sign_in or token in r["request"].get("headers", {}).get("authorization", "")
    ]


def _rules(view: str, records: list[dict]) -> list[tuple[str, str]]:
    v = Validator(config=Config(view=view))
    return [(x.rule_id, x.severity.value) for r in records for x in v.feed(r)]


def test_a_payee_view_adopts_the_payers_unseen_resolve_with_an_info_where_all_reports_an_error() -> None:
    records = _payee_only()
    assert ("observe.status-mismatch", "error") in _rules("all", records)
    payee = _rules("payee", records)
    assert ("observe.unseen-call", "info") in payee
    assert not [r for r in payee if r[1] == "error"]


def test_a_payee_view_adopts_the_unseen_join_instead_of_warning_about_reserving_before_it() -> None:
    records = _payee_only()
    assert ("session.reserve-before-join", "warning") in _rules("all", records)
    assert ("session.reserve-before-join", "warning") not in _rules("payee", records)


def test_a_payee_view_does_not_warn_of_a_close_the_payers_unseen_resolve_may_have_made_clean() -> None:
    records = _payee_only()
    assert ("session.close-with-open-vouchers", "warning") in _rules("all", records)
    payee = _rules("payee", records)
    assert ("session.close-with-open-vouchers", "warning") not in payee
    assert payee.count(("observe.unseen-call", "info")) == 3  # the join, the resolve read, the close


def test_a_payer_view_does_not_excuse_what_only_the_payers_own_calls_could_do() -> None:
    # the payer's view sees its own resolve; a RESOLVED answer no payee call explains stays an error
    assert ("observe.status-mismatch", "error") in _rules("payer", _payee_only())


def test_a_change_no_unseen_call_explains_stays_an_error_in_a_view() -> None:
    records = _payee_only()
    redeem = next(r for r in records if r["request"]["path"].endswith("/redeem-voucher"))
    at = records.index(redeem)
    again = copy.deepcopy(redeem)  # a second accepted redeem: no payer call leads back to RESERVED
    rules = _rules("payee", [*records[: at + 1], again])
    assert ("machine.illegal-transition", "error") in rules


def test_a_refusal_an_unseen_call_explains_is_adopted_not_warned() -> None:
    records = _payee_only()
    redeem = next(r for r in records if r["request"]["path"].endswith("/redeem-voucher"))
    at = records.index(redeem)
    refused = copy.deepcopy(redeem)  # the payer discarded it meanwhile: redeem is refused as discarded
    refused["response"] = {"status": 400, "body": {"code": "voucher_discarded"}}
    rules_all = _rules("all", [*records[:at], refused])
    rules_payee = _rules("payee", [*records[:at], refused])
    assert ("machine.unexpected-refusal", "warning") in rules_all
    assert ("machine.unexpected-refusal", "warning") not in rules_payee
    assert ("observe.unseen-call", "info") in rules_payee


def test_a_view_outside_the_callers_is_a_usage_error_naming_the_choices() -> None:
    with pytest.raises(UsageError, match="view must be one of all, payee, payer"):
        Config(view="merchant")


def test_the_view_is_read_from_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "voucher-fsm.toml").write_text('view = "payee"\n')
    assert load_config(tmp_path / "voucher-fsm.toml").view == "payee"
    (tmp_path / "voucher-fsm.toml").write_text('view = "everyone"\n')
    with pytest.raises(UsageError, match="view must be one of"):
        load_config(tmp_path / "voucher-fsm.toml")


def test_the_cli_takes_a_view(tmp_path: Path) -> None:
    log = tmp_path / "payee.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in _payee_only()))
    runner = CliRunner()
    seen_all = runner.invoke(cli, ["validate", str(log), "--format", "json"])
    seen_payee = runner.invoke(cli, ["validate", str(log), "--format", "json", "--view", "payee"])
    assert seen_all.exit_code == 1
    assert seen_payee.exit_code == 0, seen_payee.output
    assert "observe.unseen-call" in seen_payee.output
