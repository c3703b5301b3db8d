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


def _extra_fields(model: Any) -> list[str]:
    """Fields a parsed payload holds that its models do not declare (pydantic's model_extra), at any depth."""
    from pydantic import BaseModel

    if isinstance(model, BaseModel):
        found = [f"{type(model).__name__}.{k}" for k in model.model_extra or {}]
        return found + [x for name in type(model).model_fields for x in _extra_fields(getattr(model, name))]
    if isinstance(model, (list, tuple)):
        return [x for item in model for x in _extra_fields(item)]
    if isinstance(model, dict):
        return [x for item in model.values() for x in _extra_fields(item)]
    return []


@pytest.mark.parametrize("rel", sorted(r for r in SCHEMA_MODELS if r != "report"))
def test_every_payload_has_a_strategy_whose_values_break_no_rule_and_carry_no_extra_field(rel: str) -> None:
    """strategies.payloads draws, for every shipped schema, bodies with no schema error, no style warning
    and only declared fields."""
    from fsm.schemacheck import SchemaChecker

    checker = SchemaChecker(load_spec())
    drawn: list[Any] = []

    @settings(max_examples=10, database=None)
    @given(strategies.payloads(rel))
    def check(body: Any) -> None:
        assert validator(rel).is_valid(body)
        assert checker.style_findings(rel, body) == []
        assert _extra_fields(SCHEMA_MODELS[rel].model_validate(body)) == []
        drawn.append(body)

    check()
    assert drawn


def test_request_strategy_breaks_style_and_adds_fields_only_when_asked() -> None:
    """requests(style=False, extra_keys=True) gives the variants the schemas allow; the default never."""
    from fsm.schemacheck import SchemaChecker

    checker = SchemaChecker(load_spec())
    rel = "vouchers/redeem-voucher.request"
    seen = {"style": 0, "extra": 0}

    @settings(max_examples=60, database=None)
    @given(strategies.requests("redeem-voucher", style=False, extra_keys=True))
    def check(body: Any) -> None:
        assert validator(rel).is_valid(body)
        seen["style"] += bool(checker.style_findings(rel, body))
        seen["extra"] += bool(_extra_fields(SCHEMA_MODELS[rel].model_validate(body)))

    check()
    assert seen["style"] > 0 and seen["extra"] > 0, seen


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


BROKEN_RULES = (  # every rule examples/broken.jsonl breaks at warning level or above
    "actor.wrong-role",
    "machine.illegal-transition",
    "observe.independence",
    "schema.request",
    "schema.response",
    "session.close-with-open-vouchers",
    "session.reserve-before-join",
    "time.accepted-after-expiry",
)


def test_pytest_plugin_reads_the_config_the_cli_reads_and_passes_what_the_cli_passes(
    pytester: pytest.Pytester,
) -> None:
    """With [tool.voucher-fsm.severity] turning the broken log's rules off, CLI and plugin both pass it."""
    from click.testing import CliRunner

    from fsm.cli import cli

    broken = str(REPO / "examples" / "broken.jsonl")
    table = "\n".join(f'"{rule}" = "off"' for rule in BROKEN_RULES)
    pytester.makefile(".toml", pyproject=f"[tool.voucher-fsm.severity]\n{table}\n")
    pytester.makepyfile(
        f"""
        def test_broken_under_the_project_config(assert_valid_traffic):
            assert_valid_traffic({broken!r})
        """
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(pytester.path)
        assert CliRunner().invoke(cli, ["validate", broken]).exit_code == 0
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)
    (pytester.path / "pyproject.toml").unlink()  # the same test without the config file fails
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*machine.illegal-transition*"])


def test_pytest_plugin_marker_and_call_overrides_win_over_the_config_file(pytester: pytest.Pytester) -> None:
    """A voucher_fsm marker and assert_valid_traffic's keywords override the project's settings."""
    broken = str(REPO / "examples" / "broken.jsonl")
    clean = str(REPO / "examples" / "session-two-payments.jsonl")
    off = dict.fromkeys(BROKEN_RULES, "off")
    pytester.makefile(".toml", **{"voucher-fsm": '[severity]\n"style.hex-address" = "error"\n'})
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.voucher_fsm(severity={off!r})
        def test_marker_turns_rules_off(assert_valid_traffic):
            assert_valid_traffic({broken!r})

        def test_call_turns_rules_off(assert_valid_traffic):
            assert_valid_traffic({broken!r}, severity={off!r})

        @pytest.mark.voucher_fsm(severity={{"machine.illegal-transition": "off"}})
        def test_marker_turns_only_one_rule_off(assert_valid_traffic):
            assert_valid_traffic({broken!r})

        def test_config_file_is_read(voucher_fsm_config):
            from fsm import Severity
            assert voucher_fsm_config.severity == {{"style.hex-address": Severity.ERROR}}

        @pytest.mark.voucher_fsm(require_complete=True, strict=True)
        def test_marker_makes_a_partial_log_fail(assert_valid_traffic):
            import json
            with open({clean!r}) as fh:
                assert_valid_traffic([json.loads(line) for line in fh.readlines()[:5]])

        @pytest.mark.voucher_fsm(strictly=True)
        def test_unknown_marker_keyword(assert_valid_traffic):
            pass
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=3, failed=2, errors=1)
    result.stdout.fnmatch_lines(["*FAILED*test_marker_turns_only_one_rule_off*"])
    result.stdout.fnmatch_lines(["*entity.incomplete*", "*FAILED*test_marker_makes_a_partial_log_fail*"])
    result.stdout.fnmatch_lines(["*voucher_fsm takes keyword arguments config, severity*strictly*"])


def test_voucher_validator_finishes_the_run_after_the_test_and_fails_with_the_report(
    pytester: pytest.Pytester,
) -> None:
    """End-of-log rules count: every feed() was clean, yet unfinished entities at error level fail it."""
    clean = str(REPO / "examples" / "session-two-payments.jsonl")
    pytester.makepyfile(
        f"""
        import json
        import pytest

        def feed(validator, lines):
            with open({clean!r}) as fh:
                for line in fh.readlines()[:lines]:
                    assert validator.feed(json.loads(line)) == []

        @pytest.mark.voucher_fsm(severity={{"entity.incomplete": "error"}})
        def test_partial(voucher_validator):
            feed(voucher_validator, 5)

        @pytest.mark.voucher_fsm(severity={{"entity.incomplete": "error"}})
        def test_whole(voucher_validator):
            feed(voucher_validator, 99)

        def test_partial_at_the_default_severity(voucher_validator):
            feed(voucher_validator, 5)

        def test_body_fails_first(voucher_validator):
            feed(voucher_validator, 5)
            assert False, "the test's own failure"
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        ["*voucher-fsm found protocol violations:*", "*entity.incomplete*", "*FAILED*test_partial*"]
    )
    result.stdout.fnmatch_lines(["*the test's own failure*"])


def test_the_strategies_in_testing_md_draw_what_their_comments_promise() -> None:
    """Each strategy docs/testing.md passes to @given draws values the validator accepts as the page says."""
    import re

    from fsm import Validator
    from fsm.schemacheck import SchemaChecker

    spec = load_spec()
    checker = SchemaChecker(spec)
    page = (REPO / "docs/testing.md").read_text()
    block = page.split("## Strategies for your own tests", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    calls = re.findall(r"@given\((strategies\..*?\))\)\s", block)
    assert len(calls) == 5, calls

    def judged(rel: str, body: Any, *, strict: bool) -> None:
        assert validator(rel).is_valid(body)
        if strict:
            assert checker.style_findings(rel, body) == []
            assert _extra_fields(SCHEMA_MODELS[rel].model_validate(body)) == []

    def judge(name: str, args: str, strict: bool, value: Any) -> None:
        first = args.split(",")[0].rstrip(")").strip('"')
        if name == "requests":
            rel = spec.operation(first).request
            assert rel is not None
            judged(rel, value, strict=strict)
        elif name == "payloads":
            judged(first, value, strict=strict)
        elif name == "responses":
            status = int(args.split(",")[1].strip(" )"))
            op = spec.operation(first)
            generic = {c for c, s in spec.generic_statuses.items() if s == status}
            assert value["code"] in set(op.errors.get(status, ())) | generic
        else:
            v = Validator()
            assert [p for r in value for p in v.feed(r) if p.severity.rank > 0] == []

    def run(name: str, args: str, strict: bool, strategy: Any) -> None:
        @settings(max_examples=10, database=None)
        @given(strategy)
        def check(value: Any) -> None:
            judge(name, args, strict, value)

        check()

    for call in calls:
        name, args = call.split("(", 1)[0].split(".")[1], call.split("(", 1)[1]
        strict = "style=False" not in args and "extra_keys=True" not in args
        run(name, args, strict, eval(call, {"strategies": strategies}))
