"""Loads the protocol data files, checks them against their own JSON Schemas, and types them."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from fsm._resources import load_json, load_schemas, protocol_dir, registry, schema_uri
from fsm.errors import SpecError
from fsm.pointer import join
from fsm.spec.model import (
    CallerSpec,
    CreateSpec,
    EntityRef,
    FlowSpec,
    FlowStep,
    GuardSpec,
    GuardUse,
    MachineSpec,
    ObserveSpec,
    OperationSpec,
    PaymentFields,
    Ref,
    RefusalSpec,
    Ruling,
    Spec,
    StateSpec,
    StepSpec,
    StyleCheck,
    TermsByValue,
    TokenSpec,
    TransitionSpec,
    TransportKind,
)
from fsm.violation import Rule, Severity

__all__ = ["MACHINE_SUFFIX", "check_file", "load_spec"]

MACHINE_SUFFIX = ".machine.json"  # every such file in the protocol folder is one machine, named by its stem


def check_file(path: Path, meta: str) -> Any:
    """Load ``path`` and check it against the meta-schema ``meta/<meta>``; raise on any error."""
    doc = load_json(path)
    validator = Draft202012Validator(dict(load_schemas()[f"meta/{meta}"]), registry=registry())
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        findings = tuple(f"{path.name}#{join(e.absolute_path)}: {e.message}" for e in errors)
        raise SpecError(f"{path} does not match {schema_uri('meta/' + meta)}", findings)
    return doc


def _machine(doc: Mapping[str, Any], file: str) -> MachineSpec:
    states = tuple(
        StateSpec(
            name=s["name"],
            status=s.get("status", s["name"]),
            final=s.get("final", False),
            description=s["description"],
            cite=s.get("cite", ""),
        )
        for s in doc["states"]
    )
    guards = {
        name: GuardSpec(
            name=name,
            description=g["description"],
            attribute=g.get("attribute"),
            equals=g.get("equals"),
            equals_request=g.get("equals_request"),
            children=g.get("children"),
            all_final=g.get("all_final", False),
            cite=g.get("cite", ""),
        )
        for name, g in doc.get("guards", {}).items()
    }
    creates = tuple(
        CreateSpec(
            trigger=c["trigger"],
            operation=c["operation"],
            actor=c["actor"],
            dest=c["dest"],
            cite=c.get("cite", ""),
            pointer=f"/creates/{i}",
        )
        for i, c in enumerate(doc["creates"])
    )
    transitions = tuple(
        TransitionSpec(
            trigger=t["trigger"],
            actor=t["actor"],
            source=tuple(t["source"]),
            dest=t["dest"],
            operation=t.get("operation"),
            guards=tuple(GuardUse(g["guard"], g.get("refuse"), g.get("warn")) for g in t.get("guards", ())),
            warn=t.get("warn"),
            timed_attribute=t.get("timed", {}).get("attribute"),
            description=t.get("description", ""),
            cite=t.get("cite", ""),
            pointer=f"/transitions/{i}",
        )
        for i, t in enumerate(doc["transitions"])
    )
    refusals = tuple(
        RefusalSpec(
            trigger=r["trigger"],
            states=tuple(r["states"]),
            code=r["code"],
            rule=r.get("rule"),
            cite=r.get("cite", ""),
            pointer=f"/refusals/{i}",
            lazy=r.get("lazy", False),
        )
        for i, r in enumerate(doc.get("refusals", ()))
    )
    return MachineSpec(
        name=doc["name"],
        title=doc["title"],
        description=doc["description"],
        file=file,
        states=states,
        creates=creates,
        transitions=transitions,
        refusals=refusals,
        guards=guards,
        attributes={k: v["description"] for k, v in doc.get("attributes", {}).items()},
        parent=doc.get("parent"),
    )


def _record(doc: Mapping[str, Any]) -> dict[str, Ref | tuple[Ref, str, str]]:
    out: dict[str, Ref | tuple[Ref, str, str]] = {}
    for name, value in doc.items():
        if isinstance(value, str):
            out[name] = Ref.parse(value)
        else:
            out[name] = (Ref.parse(value["present"]), value["then"], value["else"])
    return out


def _entity_ref(doc: Mapping[str, str]) -> EntityRef:
    return EntityRef(
        id=Ref.parse(doc["id"]) if "id" in doc else None,
        code=Ref.parse(doc["code"]) if "code" in doc else None,
    )


def _operation(doc: Mapping[str, Any], index: int, optional_body: str) -> OperationSpec:
    steps = tuple(
        StepSpec(
            machine=s["machine"],
            trigger=s["trigger"],
            ref=_entity_ref(s["ref"]),
            creates=s.get("creates", False),
            parent=s.get("parent"),
            status=Ref.parse(s["status"]) if "status" in s else None,
            record=_record(s.get("record", {})),
            expect={k: Ref.parse(v) for k, v in s.get("expect", {}).items()},
        )
        for s in doc.get("steps", ())
    )
    observes = tuple(
        ObserveSpec(
            machine=o["machine"],
            ref=_entity_ref(o["ref"]),
            status=Ref.parse(o["status"]),
            each=Ref.parse(o["each"]) if "each" in o else None,
            record=_record(o.get("record", {})),
            expect={k: Ref.parse(v) for k, v in o.get("expect", {}).items()},
            member_of=o.get("member_of"),
        )
        for o in doc.get("observes", ())
    )
    token = doc.get("issues_token")
    learns = doc.get("learns")
    return OperationSpec(
        id=doc["id"],
        summary=doc["summary"],
        method=doc["method"],
        path=doc["path"],
        auth=doc["auth"],
        actors=tuple(doc["actors"]),
        request=doc["request"],
        body_required=doc["request"] not in (None, optional_body),
        responses={int(k): v for k, v in doc["responses"].items()},
        errors={int(k): tuple(v) for k, v in doc["errors"].items()},
        cite=doc["cite"],
        pointer=f"/operations/{index}",
        query=dict(doc.get("query", {})),
        query_schema=doc.get("query_schema"),
        steps=steps,
        observes=observes,
        issues_token=TokenSpec(
            token=Ref.parse(token["token"]),
            type=Ref.parse(token["type"]),
            resource=Ref.parse(token["resource"]) if "resource" in token else None,
        )
        if token
        else None,
        learns={k: Ref.parse(v) for k, v in learns.items()} if learns else None,
        payments=tuple(Ref.parse(r) for r in doc.get("payments", ())),
    )


def _callers(doc: Mapping[str, Any]) -> CallerSpec:
    claims = doc["claims"]
    return CallerSpec(
        roles=tuple(doc["roles"]),
        resource_role=doc["resource_role"],
        user_role=doc["user_role"],
        scope=doc["scope"],
        type_claim=claims["type"],
        resource_type=claims["resource_type"],
        resource_claim=claims["resource"],
        user_claims=tuple(claims["user"]),
    )


def _parents_first(machines: Mapping[str, MachineSpec]) -> dict[str, MachineSpec]:
    """The machines, each after its parent, then by name (the lint checks that parents exist)."""

    def depth(m: MachineSpec) -> int:
        n, seen, parent = 0, {m.name}, m.parent
        while parent is not None and parent in machines and parent not in seen:
            seen.add(parent)
            parent, n = machines[parent].parent, n + 1
        return n

    return {m.name: m for m in sorted(machines.values(), key=lambda m: (depth(m), m.name))}


def _read(root: Path) -> Spec:
    machines: dict[str, MachineSpec] = {}
    paths = sorted(root.glob(f"*{MACHINE_SUFFIX}"))
    if not paths:
        raise SpecError(f"{root} holds no *{MACHINE_SUFFIX} file: a protocol needs at least one machine")
    for path in paths:
        name = path.name.removesuffix(MACHINE_SUFFIX)
        doc = check_file(path, "machine")
        if doc["name"] != name:
            raise SpecError(f"{path}#/name: is {doc['name']!r}, expected {name!r} (the file name)")
        machines[name] = _machine(doc, path.name)
    machines = _parents_first(machines)
    ops_doc = check_file(root / "operations.json", "operations")
    rules_doc = check_file(root / "rules.json", "rules")
    tokens_doc = check_file(root / "tokens.json", "tokens")
    style_doc = check_file(root / "style.json", "style")
    flows_doc = check_file(root / "flows.json", "flows")
    rulings_doc = check_file(root / "rulings.json", "rulings")
    rules = {
        r["id"]: Rule(r["id"], Severity(r["severity"]), r["cite"], r["title"], r["hint"])
        for r in rules_doc["rules"]
    }
    return Spec(
        machines=machines,
        operations=tuple(
            _operation(o, i, ops_doc["optional_body"]["schema"]) for i, o in enumerate(ops_doc["operations"])
        ),
        rules=rules,
        tokens=tuple((t["symbol"], t["network"], t["address"]) for t in tokens_doc["tokens"]),
        prefix=ops_doc["prefix"],
        error_schema=ops_doc["error_schema"],
        generic_statuses=dict(ops_doc["generic_errors"]),
        token_types=dict(ops_doc["token_types"]),
        resource_pattern=ops_doc["resource_pattern"],
        out_of_scope=tuple((o["prefix"], o["reason"]) for o in ops_doc["out_of_scope"]),
        callers=_callers(ops_doc["callers"]),
        general_statuses=frozenset(ops_doc["general_statuses"]["statuses"]),
        optional_body=ops_doc["optional_body"]["schema"],
        refusal_codes=dict(ops_doc.get("refusal_codes", {}).get("codes", {})),
        payment_fields=PaymentFields(
            network=ops_doc["payment_fields"]["network"],
            currency=ops_doc["payment_fields"]["currency"],
            address=ops_doc["payment_fields"]["address"],
        ),
        terms_by_value=TermsByValue(
            decimal=frozenset(ops_doc.get("terms_by_value", {}).get("decimal", ())),
            caseless=frozenset(ops_doc.get("terms_by_value", {}).get("caseless_hex", ())),
        ),
        style=tuple(
            StyleCheck(
                rule=c["rule"],
                schemas=tuple(c["schemas"]),
                pointers=tuple(c["pointers"]),
                expected=c["expected"],
                pattern=c.get("pattern"),
                required=c.get("required", False),
                when=(c["when"]["pointer"], c["when"]["equals"]) if "when" in c else None,
                pointer=f"/checks/{i}",
            )
            for i, c in enumerate(style_doc["checks"])
        ),
        flows=tuple(
            FlowSpec(
                name=f["name"],
                title=f["title"],
                steps=tuple(FlowStep(s["actor"], s["operation"], s.get("note", "")) for s in f["steps"]),
                cite=f.get("cite", ""),
                pointer=f"/flows/{i}",
            )
            for i, f in enumerate(flows_doc["flows"])
        ),
        participants=dict(flows_doc["participants"]),
        transport=tuple(
            TransportKind(
                id=k["id"],
                rule=k["rule"],
                name=k["name"],
                methods=frozenset(k.get("methods", ())),
                statuses=frozenset(k.get("statuses", ())),
                request_headers=tuple(k.get("request_headers", ())),
                schemes_other_than=frozenset(k.get("schemes_other_than", ())),
                from_cache=k.get("from_cache", False),
                pointer=f"/transport/kinds/{i}",
            )
            for i, k in enumerate(ops_doc["transport"]["kinds"])
        ),
        body_kept=frozenset(ops_doc["transport"]["body_kept"]["statuses"]),
        body_lost_rule=ops_doc["transport"]["body_kept"]["rule"],
        rulings=_rulings(rulings_doc, root / "rulings.json"),
    )


def _rulings(doc: Any, path: Path) -> dict[str, Ruling]:
    """The rulings in file order, numbered D1, D2, ... without gaps."""
    rulings: dict[str, Ruling] = {}
    for i, r in enumerate(doc["rulings"]):
        if r["id"] != f"D{i + 1}":
            raise SpecError(
                f"{path}#/rulings/{i}/id: is {r['id']!r}, expected 'D{i + 1}' (numbers run in order)"
            )
        rulings[r["id"]] = Ruling(r["id"], r["section"], r["title"], r["text"])
    return rulings


def load_spec(root: Path | None = None, *, lint: bool = True) -> Spec:
    """Load the protocol from ``root`` (default: the shipped ``fsm/protocol``), checked.

    Every file is checked against its meta-schema, then (with ``lint``) the whole
    spec is linted; any finding raises :class:`SpecError` naming file and pointer.
    The shipped spec is loaded once per process.
    """
    if root is None:
        return _load_shipped(lint)
    return _load(root, lint)


@functools.cache
def _load_shipped(lint: bool) -> Spec:
    return _load(protocol_dir(), lint)


def _load(root: Path, lint: bool) -> Spec:
    spec = _read(root)
    if lint:
        from fsm.spec.lint import lint_spec  # lint imports the loader's types only

        findings = lint_spec(spec)
        if findings:
            raise SpecError(
                f"the spec in {root} has {len(findings)} lint finding(s)",
                tuple(str(f) for f in findings),
            )
    return spec
