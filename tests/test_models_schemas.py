"""The pydantic models and the JSON Schemas generated from them agree, and the schemas are sound."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from jsonschema import Draft202012Validator
from pydantic import ValidationError
from referencing.exceptions import Unresolvable

from fsm._resources import load_schemas, registry, schema_uri
from fsm._validators import validator
from fsm.models import SCHEMA_MODELS
from fsm.models._export import check_schemas
from fsm.schemacheck import SchemaChecker, _style
from fsm.spec import load_spec

REPO = Path(__file__).resolve().parents[1]
GENERATED = [rel for rel in SCHEMA_MODELS if rel != "report"]  # report is recursive: see below
EXAMPLES = max(5, settings.default.max_examples // 4)
# hypothesis-jsonschema filters strings through patterns and lengths; that is expected here
FILTERING = [HealthCheck.filter_too_much, HealthCheck.too_slow]


def _verdicts(rel: str, value: Any) -> tuple[bool, bool, bool]:
    """(model accepts, jsonschema accepts, jsonschema-rs accepts)."""
    try:
        SCHEMA_MODELS[rel].model_validate(value)
        model = True
    except ValidationError:
        model = False
    authority = not validator(rel, fast=False).issues(value)
    compiled = validator(rel, fast=True).is_valid(value)
    return model, authority, compiled


def test_committed_schemas_are_exactly_what_the_models_generate() -> None:
    """schemas/ is in sync with fsm/models (run `python -m fsm.models._export` after a change)."""
    assert check_schemas(REPO / "schemas") == []


def test_every_schema_passes_the_2020_12_metaschema_and_has_its_id() -> None:
    """Each schema is valid draft 2020-12 and carries $id = base + its path."""
    for rel, doc in load_schemas().items():
        Draft202012Validator.check_schema(dict(doc))
        assert doc["$id"] == schema_uri(rel)
        assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_refs_resolve_offline_and_unknown_ones_are_refused() -> None:
    """Every $ref resolves from the shipped files; an unknown URI is never fetched."""
    resolver = registry().resolver()
    for rel in load_schemas():
        resolver.lookup(schema_uri(rel))
    with pytest.raises(Unresolvable):
        resolver.lookup("https://example.com/elsewhere.schema.json")


@pytest.mark.parametrize("rel", GENERATED)
def test_generated_valid_instances_are_accepted_by_model_and_both_validators(rel: str) -> None:
    """Instances generated from the schema pass the model, jsonschema and jsonschema-rs."""

    @settings(max_examples=EXAMPLES, suppress_health_check=FILTERING)
    @given(from_schema(dict(load_schemas()[rel])))
    def check(value: Any) -> None:
        assert _verdicts(rel, value) == (True, True, True), value

    check()


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=70),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*path, i))
    return out


def _mutate(value: Any, data: st.DataObject) -> Any:
    value = copy.deepcopy(value)
    path = data.draw(st.sampled_from(_paths(value)))
    how = data.draw(
        st.sampled_from(["drop", "replace", "stretch", "shrink", "empty", "both-shapes", "float"])
    )
    if not path:
        return data.draw(JSON) if how == "replace" else value
    parent = value
    for step in path[:-1]:
        parent = parent[step]
    key = path[-1]
    old = parent[key]
    if how == "drop" and isinstance(parent, dict):
        del parent[key]
    elif how == "replace":
        parent[key] = data.draw(JSON)
    elif how == "stretch" and isinstance(old, str):
        parent[key] = old + "A" * data.draw(st.integers(1, 300))
    elif how == "shrink" and isinstance(old, str):
        parent[key] = old[: data.draw(st.integers(0, max(0, len(old) - 1)))]
    elif how == "empty":
        parent[key] = [] if isinstance(old, list) else "" if isinstance(old, str) else {}
    elif how == "float" and isinstance(old, int) and not isinstance(old, bool):
        parent[key] = float(old)
    elif how == "both-shapes" and isinstance(value, dict):
        value["expectedPayment" if "networks" in value else "networks"] = [{"network": "polygon"}]
    return value


@pytest.mark.parametrize("rel", GENERATED)
def test_mutated_instances_get_the_same_verdict_from_model_and_both_validators(rel: str) -> None:
    """Valid instances with one thing broken: the model, jsonschema and jsonschema-rs agree."""

    @settings(max_examples=EXAMPLES, suppress_health_check=FILTERING)
    @given(from_schema(dict(load_schemas()[rel])), st.data())
    def check(value: Any, data: st.DataObject) -> None:
        mutated = _mutate(value, data)
        model, authority, compiled = _verdicts(rel, mutated)
        assert model == authority == compiled, (mutated, model, authority, compiled)

    check()


PAY = {
    "network": "polygon",
    "currency": "EURC",
    "currencyAddress": "0x73b3db5a96a4b9d9bcfc22b8f1b3d85a5e5b5e5b",
    "amount": "100",
    "wallet": {"address": "0xYourWalletAddress"},
}
CUSTOM = {
    "networks": [{"network": "ethereum", "type": "evm", "chainId": "1"}],
    "payments": [
        {
            "type": "send_transaction",
            "input": {"from": "{payer}", "to": "0x6B17", "value": "0", "data": "0xa694"},
        }
    ],
}


@pytest.mark.parametrize(
    ("body", "valid"),
    [
        ({"expectedPayment": PAY}, True),
        (CUSTOM, True),
        ({**CUSTOM, "extras": []}, True),
        ({"expectedPayment": PAY, **CUSTOM}, False),
        ({"expectedPayment": PAY, "extras": []}, False),
        ({}, False),
        ({"payeeInfo": {}}, False),
    ],
)
def test_redeem_takes_exactly_one_shape(body: dict[str, Any], valid: bool) -> None:
    """D7: SIMPLE or CUSTOM, never both and never neither; model and schemas agree."""
    assert _verdicts("vouchers/redeem-voucher.request", body) == (valid, valid, valid)


@pytest.mark.parametrize(
    ("amount", "valid"),
    [
        ("0", False),
        ("0.00", False),
        ("-1", False),
        ("1e3", False),
        ("", False),
        (" 1", False),
        ("1.", False),
        ("0.5", True),
        ("100", True),
        ("105.23", True),
        ("007", True),
    ],
)
def test_amounts_are_positive_decimal_strings(amount: str, valid: bool) -> None:
    """D13: decimal strings greater than zero."""
    body = {"suppliedPayment": {**PAY, "amount": amount}}
    assert _verdicts("vouchers/negotiate-voucher.request", body) == (valid, valid, valid)


@pytest.mark.parametrize("code", ["A1B2C3\n", "A1B2C3\n\n", "\nA1B2C3"])
def test_a_trailing_newline_does_not_satisfy_an_anchored_pattern(code: str) -> None:
    """ECMA-262 semantics: $ is the end of input, for the model and both validators."""
    assert _verdicts("vouchers/reserve-voucher.request", {"code": code}) == (False, False, False)


@pytest.mark.parametrize(
    ("decimals", "valid"), [(6, True), (6.0, True), (6.5, False), (True, False), ("6", False)]
)
def test_integral_floats_count_as_integers_everywhere(decimals: Any, valid: bool) -> None:
    """JSON Schema's integer accepts 6.0; the model does too, and booleans are refused by all."""
    body = [
        {
            "symbol": "EURC",
            "network": "polygon",
            "address": "0x1",
            "decimals": decimals,
            "bridgeable": True,
            "enabled": True,
        }
    ]
    assert _verdicts("finance/currencies", body) == (valid, valid, valid)


@pytest.mark.parametrize("end", ["\r", "\n", "\u2028", "\u2029", "x\r", "abc"])
def test_a_line_terminator_gets_one_verdict_from_model_and_both_validators(end: str) -> None:
    """ECMA-262's '.' matches no line terminator; Python's and pydantic's would take '\r': all three agree."""
    body = {"type": "resource", "data": {"resource": "voucher::context::code::" + end}}
    valid = end == "abc"
    assert _verdicts("auth/sign-in.request", body) == (valid, valid, valid)


def test_a_dot_in_a_schema_pattern_matches_what_ecma_262_matches() -> None:
    """ecma_regex: '.' outside a class stops at line terminators, inside a class or escaped it is a dot."""
    from fsm._validators import ecma_regex

    assert ecma_regex("^a.b$").match("a\rb") is None
    assert ecma_regex("^a.b$").match("a-b") is not None
    assert ecma_regex("^a[.]b$").match("a.b") is not None
    assert ecma_regex("^a\\.b$").match("a.b") is not None and ecma_regex("^a\\.b$").match("a-b") is None


def test_doc_variants_are_accepted_in_responses_only() -> None:
    """D12: alphanumeric and payment are accepted in responses; requests keep the documented enums."""
    ctx = {
        "id": "ctx_1",
        "code": "A1B2C3",
        "status": "OPEN",
        "format": "alphanumeric",
        "payers": [{"address": "0x1"}],
        "createdAt": "2026-06-09T12:00:00Z",
    }
    assert _verdicts("contexts/context", ctx) == (True, True, True)
    assert _verdicts(
        "contexts/context-open.request", {"format": "alphanumeric", "payers": [{"address": "0x1"}]}
    ) == (False, False, False)
    session = {"id": "ses_1", "code": "D4E5F6", "status": "OPEN", "type": "payment"}
    assert _verdicts("sessions/session", session) == (True, True, True)
    assert _verdicts("sessions/session-open.request", {"code": "A1B2C3"}) == (True, True, True)


def test_the_compiled_validator_never_fetches_anything() -> None:
    """jsonschema-rs is given a registry whose retriever refuses every URI."""
    from fsm._validators import _rs_registry

    registry = _rs_registry()
    with pytest.raises(jsonschema_rs.ValidationError, match="refusing to fetch"):
        jsonschema_rs.validator_for({"$ref": "https://example.com/x.json"}, registry=registry)


def test_real_reports_conform_to_the_report_schema() -> None:
    """The JSON report of the broken example validates against report.schema.json and its model.

    The report schema is recursive (violations nest), which hypothesis-jsonschema cannot
    generate from; real reports are checked instead.
    """
    from fsm.models import ReportDocument
    from fsm.pipeline import validate_log
    from fsm.render import report_to_dict

    doc = report_to_dict(validate_log(REPO / "examples" / "broken.jsonl"))
    assert validator("report", fast=False).issues(doc) == []
    ReportDocument.model_validate(doc)


def _put(value: Any, pointer: str, draw: Any) -> None:
    """Set every place a style pointer (with ``*``) names, making the objects and arrays on the way."""
    nodes = [value]
    tokens = pointer.split("/")[1:]
    for i, token in enumerate(tokens[:-1]):
        fresh = list if tokens[i + 1] == "*" else dict
        nxt: list[Any] = []
        for node in nodes:
            if token == "*" and isinstance(node, list):
                if not node:
                    node.append(fresh())
                nxt += [n for n in node if isinstance(n, (dict, list))]
            elif isinstance(node, dict):
                if not isinstance(node.get(token), (dict, list)):
                    node[token] = fresh()
                nxt.append(node[token])
        nodes = nxt
    for node in nodes:
        if isinstance(node, dict):
            node[tokens[-1]] = draw()
        elif isinstance(node, list) and tokens[-1] == "*":
            node[:] = [draw() for _ in node] or [draw()]


STYLED = sorted({rel for check in load_spec().style for rel in check.schemas})
# per style pattern, a value that passes and values that do not (a new pattern needs its samples here)
SAMPLES = {
    "^ctx_": ["ctx_1", "ses_1"],
    "^ses_": ["ses_1", "vch_1"],
    "^vch_": ["vch_1", "ctx_1"],
    "^(0x[0-9a-fA-F]{40})?$": ["0x" + "a" * 40, "", "0xShort", "0x" + "a" * 40 + "\n"],
    "^0x[0-9a-fA-F]{40}$": ["0x" + "a" * 40, "", "0xShort", "0x" + "a" * 40 + "\n"],
    "^[0-9]+$": ["123456", "ABC123"],
    None: ["SIMPLE", "CUSTOM"],
}
CONDITIONS = st.sampled_from(["numeric", "alphanum"])


@pytest.mark.parametrize("rel", STYLED)
def test_the_compiled_style_check_agrees_with_the_explained_one(rel: str) -> None:
    """One compiled schema (body schema + style checks) holds exactly when neither explains a problem."""
    checker = SchemaChecker(load_spec())
    clean = checker._clean[rel]
    checks = [check for check in load_spec().style if rel in check.schemas]
    pointers = [(p, SAMPLES[check.pattern]) for check in checks for p in check.pointers]
    conditions = [check.when[0] for check in checks if check.when]

    @settings(max_examples=max(20, EXAMPLES), suppress_health_check=FILTERING)
    @given(from_schema(dict(load_schemas()[rel])), st.data())
    def check(value: Any, data: st.DataObject) -> None:
        value = copy.deepcopy(value)
        # every style place gets a passing value but one, which may get any sample
        tried = data.draw(st.sampled_from(range(len(pointers))))
        for i, (pointer, values) in enumerate(pointers):
            pick = st.sampled_from(values) if i == tried else st.just(values[0])
            _put(value, pointer, lambda pick=pick: data.draw(pick))
        for pointer in conditions:
            _put(value, pointer, lambda: data.draw(CONDITIONS))
        if isinstance(value, dict) and value and not data.draw(st.integers(0, 3)):
            value.pop(data.draw(st.sampled_from(sorted(value))))
        explained = not validator(rel, fast=False).issues(value) and not [
            f
            for check, pattern, ps in checker._style[rel]
            for f in _style(check, pattern, ps, value, "response")
        ]
        assert bool(clean.is_valid(value)) == explained, value

    check()


def _context_item(**changes: Any) -> dict[str, Any]:
    """One item of a context list (``contexts/context-list``), valid and clean but for ``changes``."""
    item = {
        "id": "ctx_1",
        "code": "ABC123",
        "format": "alphanum",
        "status": "OPEN",
        "payers": [{"address": "0x" + "a" * 40}],
        "createdAt": "2026-01-01T00:00:00Z",
    }
    return {**item, **changes}


def test_a_conditional_style_check_looks_inside_list_items_on_both_paths() -> None:
    """A numeric context's letters-and-digits code is flagged in a context list by both checks."""
    checker = SchemaChecker(load_spec())
    item = _context_item(format="numeric")
    for body, flagged in (([item], True), ([{**item, "format": "alphanum"}], False)):
        explained = [
            f.rule_id
            for check, pattern, pointers in checker._style["contexts/context-list"]
            for f in _style(check, pattern, pointers, body, "response")
        ]
        assert explained == (["style.numeric-code"] if flagged else [])
        assert bool(checker._clean["contexts/context-list"].is_valid(body)) is not flagged


def test_a_style_check_no_schema_can_express_is_still_applied_to_every_body(tmp_path: Path) -> None:
    """A body whose style checks cannot all be compiled has no fast path: its checks are explained."""
    import json
    import shutil

    import fsm
    from fsm.pipeline import Validator

    protocol = tmp_path / "protocol"
    shutil.copytree(Path(fsm.__file__).parent / "protocol", protocol)
    style = json.loads((protocol / "style.json").read_text())
    style["checks"].append(  # required under "*": not expressible as one compiled schema
        {
            "rule": "style.id-prefix",
            "schemas": ["contexts/context-list"],
            "pointers": ["/*/id"],
            "required": True,
            "expected": "an id",
        }
    )
    (protocol / "style.json").write_text(json.dumps(style))
    spec = load_spec(protocol)
    assert "contexts/context-list" not in SchemaChecker(spec)._clean
    item = _context_item(id="BAD_1")
    found = Validator(spec).feed(
        {
            "time": "2024-01-01T00:00:00Z",
            "request": {"method": "GET", "path": "/api/v1/vouchers/contexts"},
            "response": {"status": 200, "body": [item]},
        }
    )
    assert [v.rule_id for v in found if v.rule_id.startswith("style.")] == ["style.id-prefix"]


_CITE = re.compile(r"protocol-facts [0-9]|\bD[0-9]+\b")
_CONSTRAINTS = {
    "pattern",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "enum",
    "const",
}
_SAME_VALUE = {"anyOf", "oneOf", "allOf", "items", "not"}  # sub-schemas of the same field


def _uncited(node: Any, path: str, cited: bool) -> Iterator[str]:
    if isinstance(node, list):
        for i, item in enumerate(node):
            yield from _uncited(item, f"{path}/{i}", cited)
        return
    if not isinstance(node, dict):
        return
    here = cited or bool(_CITE.search(str(node.get("description", ""))))
    if _CONSTRAINTS & node.keys() and not here:
        yield path
    for key, value in node.items():
        if key in ("properties", "$defs") and isinstance(value, dict):
            for name, sub in value.items():  # each field and each model cites for itself
                yield from _uncited(sub, f"{path}/{key}/{name}", False)
        elif key in _SAME_VALUE:
            yield from _uncited(value, f"{path}/{key}", here)


def test_every_payload_schema_and_each_of_its_constraints_cites_its_source() -> None:
    """A schema's description, and every field with a constraint, name a docs section or a D-number."""
    from fsm.models._export import build_schemas

    payloads = {rel: s for rel, s in build_schemas().items() if rel not in ("exchange", "report")}
    unnamed = [rel for rel, s in payloads.items() if not _CITE.search(s.get("description", ""))]
    assert unnamed == []
    uncited = [f"{rel}#{p}" for rel, s in payloads.items() for p in _uncited(s, "", False)]
    assert uncited == []
    assert len(payloads) == 37
