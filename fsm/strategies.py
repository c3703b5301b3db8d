"""Hypothesis strategies for integrators: every payload, and whole valid flows.

Property-test your own client or server against the protocol::

    from hypothesis import given
    from fsm import strategies

    @given(strategies.requests("redeem-voucher"))
    def test_my_server_accepts_valid_redeems(body): ...   # no error, no warning, no extra keys

    @given(strategies.requests("redeem-voucher", extra_keys=True, style=False))
    def test_my_server_tolerates_what_the_schema_allows(body): ...

    @given(strategies.flows(max_sessions=2))
    def test_my_client_replays_valid_traffic(records): ...

Needs the ``hypothesis`` extra: ``pip install 'voucher-fsm[hypothesis]'``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

try:
    from hypothesis import strategies as st
    from hypothesis_jsonschema import from_schema
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("fsm.strategies needs Hypothesis: pip install 'voucher-fsm[hypothesis]'") from exc

from fsm._resources import load_schemas
from fsm._validators import validator
from fsm.errors import UsageError
from fsm.generate import generate
from fsm.schemacheck import SchemaChecker
from fsm.spec import load_spec
from fsm.spec.model import StyleCheck

__all__ = ["flows", "payloads", "requests", "responses"]


def payloads(schema_id: str, *, extra_keys: bool = False, style: bool = True) -> st.SearchStrategy[Any]:
    """Valid instances of one shipped schema, e.g. ``vouchers/redeem-voucher.request``.

    By default they are valid as the validator judges them: no schema error and no style
    warning (``style.json``: 0x-prefixed hex addresses, id prefixes), and objects hold only the
    fields their schema names. ``extra_keys=True`` lets documented objects carry undeclared
    fields too (which the schemas allow: tolerant readers); ``style=False`` drops the style
    checks, so values may break them (the schemas alone allow that).
    """
    schemas = load_schemas()
    if schema_id not in schemas:
        raise UsageError(f"no schema {schema_id!r}; shipped: {', '.join(sorted(schemas))}")
    schema: dict[str, Any] = dict(schemas[schema_id])
    if not extra_keys:
        schema = _closed(schema)
    valid = validator(schema_id).is_valid  # the shipped schema has the last word (hypothesis-jsonschema
    if not style:  # can draw an open object that matches two oneOf branches)
        return from_schema(schema).filter(valid)
    schema = _inlined(schema, schema.get("$defs", {}))
    checker = _checker()
    checks = [(c, p) for c in load_spec().style if schema_id in c.schemas for p in c.pointers]
    parts = [(_style_part(c, p), p.split("/")[1:-1]) for c, p in checks]
    for part, parent in parts:
        if part is not None:
            _constrain(schema, parent, part)
    if any(part is None for part, _ in parts):  # a check with no schema form: keep the bodies that pass
        return from_schema(schema).filter(
            lambda body: valid(body) and not checker.style_findings(schema_id, body)
        )
    return from_schema(schema).filter(valid)


def requests(operation_id: str, *, extra_keys: bool = False, style: bool = True) -> st.SearchStrategy[Any]:
    """Valid request bodies of an operation (``redeem-voucher``, ``session-open``, ...).

    No error and no warning by default; see :func:`payloads` for ``extra_keys`` and ``style``.
    """
    op = load_spec().operation(operation_id)
    if op.request is None:
        raise UsageError(f"{operation_id} takes no request body")
    return payloads(op.request, extra_keys=extra_keys, style=style)


def responses(
    operation_id: str, status: int = 200, *, extra_keys: bool = False, style: bool = True
) -> st.SearchStrategy[Any]:
    """Valid response bodies of an operation for a status (errors: the {code, message} envelope)."""
    spec = load_spec()
    op = spec.operation(operation_id)
    if status in op.responses:
        return payloads(op.responses[status], extra_keys=extra_keys, style=style)
    generic = {code for code, answered in spec.generic_statuses.items() if answered == status}
    codes = sorted(set(op.errors.get(status, ())) | generic)
    if not codes:
        known = sorted({*op.responses, *op.errors, *spec.generic_statuses.values()})
        raise UsageError(f"{operation_id} documents no answer with status {status}; it has {known}")
    return st.fixed_dictionaries({"code": st.sampled_from(codes)}, optional={"message": st.text(max_size=40)})


@cache
def _checker() -> SchemaChecker:
    return SchemaChecker(load_spec())


def _closed(schema: Any) -> Any:
    """``schema`` with every object that names its fields closed to others (free-form maps stay open)."""
    if isinstance(schema, list):
        return [_closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: (v if k in ("const", "enum", "default", "examples") else _closed(v)) for k, v in schema.items()}
    if isinstance(schema.get("properties"), dict) and schema.get("additionalProperties", True) is True:
        out["additionalProperties"] = False
    return out


def _inlined(schema: Any, defs: Any, seen: tuple[str, ...] = ()) -> Any:
    """``schema`` with its local ``#/$defs/...`` references written in place (a recursive one is kept)."""
    if isinstance(schema, list):
        return [_inlined(s, defs, seen) for s in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and ref[8:] in defs and ref not in seen:
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return _inlined({**defs[ref[8:]], **rest}, defs, (*seen, ref))
    return {k: (v if k in ("const", "enum", "$defs") else _inlined(v, defs, seen)) for k, v in schema.items()}


def _style_part(check: StyleCheck, pointer: str) -> dict[str, Any] | None:
    """``check`` as a schema on the object that holds ``pointer``'s last field (None: it has no such form)."""
    tokens = pointer.split("/")[1:]
    if not tokens or tokens[-1] == "*" or (check.required and "*" in tokens):
        return None
    part: dict[str, Any] = (
        {"required": [tokens[-1]]}
        if check.required
        else {"properties": {tokens[-1]: {"pattern": check.pattern}}}
    )
    if check.when is not None:
        sibling, want = check.when
        near = sibling.split("/")[1:]
        if near[:-1] != tokens[:-1] or near[-1] == "*":
            return None
        part = {"if": {"required": [near[-1]], "properties": {near[-1]: {"const": want}}}, "then": part}
    return part


def _constrain(node: Any, tokens: list[str], part: dict[str, Any]) -> None:
    """Add ``part`` to every object schema (in every branch) that ``tokens``, a pointer's parent, leads to."""
    if not isinstance(node, dict):
        return
    for key in ("anyOf", "oneOf", "allOf"):
        for branch in list(node.get(key, ())):
            _constrain(branch, tokens, part)
    if tokens:
        child = node.get("items") if tokens[0] == "*" else node.get("properties", {}).get(tokens[0])
        _constrain(child, tokens[1:], part)
    elif "properties" in node:
        fields = node["properties"]
        (leaf, rule), *_ = part.get("properties", {"": {}}).items()
        if (
            list(part) == ["properties"]
            and isinstance(fields.get(leaf), dict)
            and "pattern" not in fields[leaf]
        ):
            fields[leaf] = {**fields[leaf], **rule}  # written in place: nothing for Hypothesis to merge
        else:
            node.setdefault("allOf", []).append(_drawable(fields, part))


def _drawable(fields: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """``part``, or the condition never met, for a conditional pattern on a field with one of its own.

    Hypothesis cannot draw from two regular expressions at once: ``contexts/context`` is never
    drawn with ``format: numeric``, whose code would have to be digits and 6 letters or digits.
    """
    if "if" not in part:
        return part
    (leaf, rule), *_ = part["then"].get("properties", {"": {}}).items()
    if "pattern" not in rule or "pattern" not in fields.get(leaf, {}):
        return part
    (field, want), *_ = part["if"]["properties"].items()
    return {"properties": {field: {"not": want}}}


def flows(
    min_sessions: int = 1, max_sessions: int = 3, *, complete: bool = True
) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Whole valid flows as exchange records.

    Sessions with 1-8 vouchers each, SIMPLE and CUSTOM, FX, refusals answered with the
    right codes. Shrinks towards fewer sessions and smaller seeds.
    """
    return st.builds(
        lambda n, seed: list(generate(n, seed=seed, partial=not complete)),
        st.integers(min_sessions, max_sessions),
        st.integers(0, 2**16),
    )
