"""The load-time lint: the shipped spec is clean, and every check bites on a broken copy."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fsm.errors import SpecError
from fsm.spec.lint import LINT_CHECKS, lint_spec
from fsm.spec.loader import load_spec
from fsm.spec.model import Spec


def test_shipped_spec_lints_clean() -> None:
    """No finding on the spec the wheel ships."""
    assert lint_spec(load_spec(lint=False)) == []


def _edit(folder: Path, name: str, change: Callable[[dict[str, Any]], None]) -> None:
    path = folder / name
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def _drop_transition(trigger: str) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        doc["transitions"] = [t for t in doc["transitions"] if t["trigger"] != trigger]
        doc["refusals"] = [r for r in doc.get("refusals", []) if r["trigger"] != trigger]

    return change


def _add_limbo(doc: dict[str, Any]) -> None:
    """A non-final state that sign-voucher leads into and nothing leads out of."""
    doc["states"].append({"name": "LIMBO", "description": "stuck"})
    doc["transitions"].append(
        {
            "trigger": "sign",
            "operation": "sign-voucher",
            "actor": "payer",
            "source": ["RESERVED"],
            "dest": "LIMBO",
        }
    )


BREAKS: list[tuple[str, str, Callable[[dict[str, Any]], None], str]] = [
    (
        "state-unreachable",
        "voucher.machine.json",
        lambda d: d["states"].append({"name": "LIMBO", "final": True, "description": "nowhere"}),
        "/states/5",
    ),
    ("state-trap", "voucher.machine.json", _add_limbo, "/states/5"),
    ("final-unreachable", "session.machine.json", _drop_transition("close"), "/states/2"),
    (
        "state-unknown",
        "voucher.machine.json",
        lambda d: d["refusals"].append({"trigger": "redeem", "states": ["GONE"], "code": None}),
        "/refusals/11/states/0",
    ),
    (
        "guard-unknown",
        "voucher.machine.json",
        lambda d: d["transitions"][1]["guards"].append({"guard": "is_blue", "refuse": "not_simple"}),
        "/transitions/1/guards/2",
    ),
    (
        "rule-unknown",
        "session.machine.json",
        lambda d: d["transitions"][1].update(warn="session.no-such-rule"),
        "/transitions/1/warn",
    ),
    (
        "refusal-conflict",
        "voucher.machine.json",
        lambda d: d["refusals"].append(
            {"trigger": "redeem", "states": ["RESERVED"], "code": "already_redeemed"}
        ),
        "/refusals/11",
    ),
    (
        "refusal-undocumented",
        "voucher.machine.json",
        lambda d: d["refusals"][0].update(code="voucher_gone"),
        "/refusals/0/code",
    ),
    (
        "transition-operation-unknown",
        "voucher.machine.json",
        lambda d: d["transitions"][0].update(operation="redeem-it"),
        "/transitions/0/operation",
    ),
    (
        "transition-operation-mismatch",
        "voucher.machine.json",
        lambda d: d["transitions"][0].update(operation="resolve-voucher"),
        "/transitions/0",
    ),
    (
        "transition-actor",
        "voucher.machine.json",
        lambda d: d["transitions"][0].update(actor="payer"),
        "/transitions/0/actor",
    ),
]


@pytest.mark.parametrize(("check", "file", "change", "pointer"), BREAKS, ids=[b[0] for b in BREAKS])
def test_lint_check_reports_a_broken_machine_with_file_and_pointer(
    protocol_copy: Path, check: str, file: str, change: Callable[[dict[str, Any]], None], pointer: str
) -> None:
    """Each machine check finds its own kind of breakage, naming the file and the JSON pointer."""
    _edit(protocol_copy, file, change)
    findings = lint_spec(load_spec(protocol_copy, lint=False))
    assert any(f.check == check and f.file == file and f.pointer == pointer for f in findings), findings


def test_operation_with_a_trigger_no_machine_has_is_reported(protocol_copy: Path) -> None:
    """An operation stepping an unknown trigger is a finding in operations.json."""
    _edit(
        protocol_copy,
        "operations.json",
        lambda d: d["operations"][8]["steps"][0].update(trigger="redeem_twice"),
    )
    findings = lint_spec(load_spec(protocol_copy, lint=False))
    assert any(
        f.check == "operation-trigger-unknown" and f.pointer == "/operations/8/steps/0/trigger"
        for f in findings
    )


def test_operation_naming_a_missing_schema_is_reported(protocol_copy: Path) -> None:
    """A schema id that is not shipped is a finding."""
    _edit(protocol_copy, "operations.json", lambda d: d["operations"][8].update(request="vouchers/nope"))
    findings = lint_spec(load_spec(protocol_copy, lint=False))
    assert any(f.check == "schema-missing" and f.pointer == "/operations/8/request" for f in findings)


def test_duplicate_routes_are_reported(protocol_copy: Path) -> None:
    """Two operations on one method and path cannot both be matched."""
    _edit(
        protocol_copy, "operations.json", lambda d: d["operations"][9].update(path=d["operations"][8]["path"])
    )
    findings = lint_spec(load_spec(protocol_copy, lint=False))
    assert any(f.check == "operation-duplicate" for f in findings)


def test_a_file_that_breaks_its_meta_schema_is_refused_at_load(protocol_copy: Path) -> None:
    """The machine file format is checked against its own JSON Schema before anything else."""
    _edit(protocol_copy, "voucher.machine.json", lambda d: d["states"][0].update(final="yes"))
    with pytest.raises(SpecError, match=r"voucher\.machine\.json#/states/0/final"):
        load_spec(protocol_copy)


def test_load_with_lint_raises_listing_every_finding(protocol_copy: Path) -> None:
    """load_spec() refuses a spec with lint findings and lists them."""
    _edit(protocol_copy, "voucher.machine.json", _add_limbo)
    with pytest.raises(SpecError, match="state-trap"):
        load_spec(protocol_copy)


def test_every_lint_check_is_documented() -> None:
    """Each check has a one-line description (shown by `voucher-fsm spec lint`)."""
    assert len(LINT_CHECKS) >= 15
    assert all(text and not text.endswith(".") for text in LINT_CHECKS.values())


def test_a_machine_whose_parent_does_not_exist_is_reported(protocol_copy: Path) -> None:
    """A parent that names no machine is a finding in that machine's file."""
    _edit(protocol_copy, "voucher.machine.json", lambda d: d.update(parent="wallet"))
    findings = lint_spec(load_spec(protocol_copy, lint=False))
    assert any(f.check == "machine-parent" and f.file == "voucher.machine.json" for f in findings), findings


def test_machines_whose_parents_form_a_cycle_are_reported(protocol_copy: Path) -> None:
    """context -> voucher -> session -> context never ends: a finding, not a hang."""
    _edit(protocol_copy, "context.machine.json", lambda d: d.update(parent="voucher"))
    findings = lint_spec(load_spec(protocol_copy, lint=False))
    assert any(f.check == "machine-parent" and "cycle" in f.message for f in findings), findings


def test_a_scope_machine_that_does_not_exist_is_reported(protocol_copy: Path) -> None:
    """The machine that scopes a resource token (callers.scope) must be one of the machines."""
    _edit(protocol_copy, "operations.json", lambda d: d["callers"].update(scope="wallet"))
    findings = lint_spec(load_spec(protocol_copy, lint=False))
    assert any(f.check == "scope-machine-unknown" and f.pointer == "/callers/scope" for f in findings)


def test_an_optional_body_schema_that_is_not_shipped_is_reported(protocol_copy: Path) -> None:
    """The schema standing for 'no body needed' is checked like any schema the table names."""
    _edit(protocol_copy, "operations.json", lambda d: d["optional_body"].update(schema="common/nothing"))
    findings = lint_spec(load_spec(protocol_copy, lint=False))
    assert any(f.check == "schema-missing" and f.pointer == "/optional_body/schema" for f in findings)


def test_every_machine_file_in_the_folder_is_loaded_parents_first(protocol_copy: Path) -> None:
    """The machine list is the folder's *.machine.json files, each after its parent, not a list in code."""
    doc = json.loads((protocol_copy / "context.machine.json").read_text())
    doc["name"] = "audit"
    (protocol_copy / "audit.machine.json").write_text(json.dumps({**doc, "parent": "voucher"}))
    spec = load_spec(protocol_copy, lint=False)
    assert list(spec.machines) == ["context", "session", "voucher", "audit"]


def test_a_folder_without_machines_is_refused_with_what_it_needs(protocol_copy: Path) -> None:
    """No machine file at all is a spec error that says what is missing."""
    for path in protocol_copy.glob("*.machine.json"):
        path.unlink()
    with pytest.raises(SpecError, match=r"no \*\.machine\.json file"):
        load_spec(protocol_copy, lint=False)


def test_general_statuses_and_the_optional_body_are_read_from_the_operation_table(
    protocol_copy: Path,
) -> None:
    """Which statuses every operation may answer, and which request may be absent, are data."""
    shipped = load_spec(lint=False)
    assert 403 in shipped.general_statuses
    assert not shipped.operation("session-join").body_required
    assert shipped.operation("session-reserve-voucher").body_required is False
    assert shipped.operation("sign-in").body_required

    def change(d: dict[str, Any]) -> None:
        d["general_statuses"]["statuses"].remove(403)
        d["optional_body"]["schema"] = "auth/sign-in.request"

    _edit(protocol_copy, "operations.json", change)
    edited = load_spec(protocol_copy, lint=False)
    assert 403 not in edited.general_statuses
    assert edited.operation("session-join").body_required
    assert not edited.operation("sign-in").body_required


def test_a_trigger_fired_by_two_operations_is_reported(protocol_copy: Path) -> None:
    """One trigger, one operation: the trigger-to-operation map the diagrams and docs read is unambiguous."""

    def change(d: dict[str, Any]) -> None:
        reserves = [t for t in d["transitions"] if t["trigger"] == "reserve"]
        reserves[1]["operation"] = "get-session"

    _edit(protocol_copy, "session.machine.json", change)
    findings = lint_spec(load_spec(protocol_copy, lint=False))
    assert any(f.check == "trigger-operation-ambiguous" for f in findings), findings


def test_a_timed_transition_waiting_for_an_undeclared_attribute_is_reported(protocol_copy: Path) -> None:
    """The clock reads the attribute the timed transition names; the machine must declare it."""

    def change(d: dict[str, Any]) -> None:
        timed = next(t for t in d["transitions"] if "timed" in t)
        timed["timed"]["attribute"] = "validUntil"

    _edit(protocol_copy, "voucher.machine.json", change)
    findings = lint_spec(load_spec(protocol_copy, lint=False))
    assert any(f.check == "timed-attribute-unknown" and "validUntil" in f.message for f in findings)


def test_transport_kinds_must_name_known_info_rules_and_cover_the_body_kept_statuses(
    protocol_copy: Path,
) -> None:
    """A kind naming an unknown or non-info rule, a kind id twice, a 307 no kind fits (D22)."""

    def change(d: dict[str, Any]) -> None:
        kinds = d["transport"]["kinds"]
        kinds[0]["rule"] = "transport.nope"
        kinds[1]["rule"] = "schema.request"
        kinds[2]["id"] = kinds[3]["id"]
        kinds[-1]["statuses"] = [301]

    _edit(protocol_copy, "operations.json", change)
    found = {(f.check, f.pointer) for f in lint_spec(load_spec(protocol_copy, lint=False))}
    assert ("transport-rule", "/transport/kinds/0") in found
    assert ("transport-rule", "/transport/kinds/1") in found
    assert ("transport-rule", "/transport/kinds/3/id") in found
    assert ("transport-body-kept", "/transport/body_kept/statuses") in found


def test_the_transport_table_is_read_in_its_order_with_its_conditions(spec: Spec) -> None:
    """The loaded kinds: each fits what its data says, and nothing else (D22)."""
    kinds = {k.id: k for k in spec.transport}
    assert kinds["preflight"].fits("OPTIONS", 204, {"access-control-request-method": "POST"}, "https")
    assert not kinds["preflight"].fits("OPTIONS", 204, {}, "https")
    assert kinds["not-modified"].fits("GET", 304, {}, None)
    assert not kinds["not-modified"].fits("POST", 304, {}, None)
    assert kinds["non-http"].fits("GET", 200, {}, "data")
    assert not kinds["non-http"].fits("GET", 200, {}, "https") and not kinds["non-http"].fits(
        "GET", 200, {}, None
    )
    assert spec.body_kept == {307, 308} and spec.body_lost_rule == "transport.body-lost"


def test_a_rule_citing_a_ruling_that_does_not_exist_is_reported(protocol_copy: Path) -> None:
    """A hint ending [D99] names no ruling: ruling-unknown, at the rule's hint."""
    _edit(protocol_copy, "rules.json", lambda d: d["rules"][3].update(hint="See the ruling. [D99]"))
    findings = lint_spec(load_spec(protocol_copy, lint=False))
    found = [(f.check, f.file, f.pointer) for f in findings]
    assert found == [("ruling-unknown", "rules.json", "/rules/3/hint")]


def test_a_machine_citing_a_dropped_ruling_is_reported(protocol_copy: Path) -> None:
    """Removing D29 from rulings.json leaves nothing cited unresolved; removing D6 onwards does."""
    _edit(protocol_copy, "rulings.json", lambda d: d.update(rulings=d["rulings"][:28]))
    assert lint_spec(load_spec(protocol_copy, lint=False)) == []
    _edit(protocol_copy, "rulings.json", lambda d: d.update(rulings=d["rulings"][:5]))
    findings = lint_spec(load_spec(protocol_copy, lint=False))
    assert {f.check for f in findings} == {"ruling-unknown"}
    assert {f.file for f in findings} == {
        "rules.json",
        "voucher.machine.json",
        "context.machine.json",
    }


def test_rulings_out_of_order_are_refused_at_load(protocol_copy: Path) -> None:
    """Numbers run D1, D2, ... in file order: a gap is a SpecError naming the entry."""
    _edit(protocol_copy, "rulings.json", lambda d: d["rulings"].pop(4))
    with pytest.raises(SpecError, match=r"rulings\.json#/rulings/4/id: is 'D6', expected 'D5'"):
        load_spec(protocol_copy)


_DRAFT_07 = "http://json-schema.org/draft-07/schema#"


@pytest.mark.parametrize(
    ("doc", "pointer"),
    [
        ({"type": "strng"}, "/type"),  # not a JSON type
        ({"type": "string", "pattern": "(?<name>a)"}, "/pattern"),  # a regex Python does not compile
        ({"properties": {"a": {"pattern": "[z-a]"}}}, "/properties/a/pattern"),  # nested, reversed range
        ({"patternProperties": {"(": {"type": "string"}}}, "/patternProperties"),  # a name that is no regex
        (
            {"$schema": _DRAFT_07, "items": [{"type": "string"}]},
            "/items",
        ),  # draft-07 tuple form: not 2020-12's
        ({"minLength": -1}, "/minLength"),
    ],
)
def test_a_schema_that_breaks_draft_2020_12_is_refused_with_the_python_message_and_place(
    doc: dict[str, Any], pointer: str
) -> None:
    """The fast look (jsonschema-rs and compiling every pattern) never accepts what jsonschema refuses."""
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    from fsm.spec.lint import metaschema_error

    error = metaschema_error(doc)
    assert error is not None
    with pytest.raises(SchemaError) as expected:
        Draft202012Validator.check_schema(doc)
    assert (error.message, list(error.absolute_path)) == (
        expected.value.message,
        list(expected.value.absolute_path),
    )
    assert "/" + "/".join(map(str, error.absolute_path)) == pointer


def test_every_shipped_schema_passes_the_fast_look_and_the_python_check_alike() -> None:
    """The fast look is taken for the shipped schemas (no slow check at load) and agrees with jsonschema."""
    import jsonschema_rs
    from jsonschema import Draft202012Validator

    from fsm._resources import load_schemas
    from fsm.spec import lint

    for rel, doc in load_schemas().items():
        Draft202012Validator.check_schema(dict(doc))  # valid by the reference check
        assert lint._patterns_compile(doc), rel
        assert jsonschema_rs.meta.is_valid(dict(doc)), rel
        assert doc.get("$schema", lint._DRAFT) == lint._DRAFT, rel
        assert lint.metaschema_error(doc) is None, rel


def test_every_call_for_the_shipped_schemas_hands_out_copies_its_caller_may_change() -> None:
    """The files are read once, but no caller's edit (openapi, strategies) reaches another caller."""
    from fsm._resources import load_schemas, shipped_schema

    first = load_schemas()
    first["vouchers/voucher"]["properties"].clear()
    one = shipped_schema("vouchers/voucher")
    assert one is not None and one["properties"]
    one["properties"].clear()
    assert load_schemas()["vouchers/voucher"]["properties"]
    assert shipped_schema("vouchers/no-such-schema") is None
