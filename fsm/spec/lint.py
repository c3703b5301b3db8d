"""Load-time checks of the whole spec; each finding names a file and a JSON pointer.

Modelled on python-statemachine's definition checks (unreachable states, trap
states, unreachable finals) plus the cross-file checks a data-driven spec
needs: every trigger, operation, guard, rule and schema that one file names
must exist in another.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from referencing.exceptions import Unresolvable

from fsm._resources import load_schemas, registry, schema_uri
from fsm.spec.model import MachineSpec, Spec

__all__ = ["LINT_CHECKS", "LintFinding", "lint_spec"]

LINT_CHECKS: dict[str, str] = {
    "schema-metaschema": "every schema passes the JSON Schema 2020-12 metaschema",
    "schema-unresolved-ref": "every $ref in every schema resolves offline",
    "schema-missing": "every schema an operation (or the operation table) names is shipped",
    "state-unknown": "every state a transition or refusal names is declared",
    "state-unreachable": "every state is reachable from a creation",
    "state-trap": "every non-final state has a way to another state",
    "final-unreachable": "every machine has a reachable final state, and each final is reachable",
    "guard-unknown": "every guard a transition uses is declared",
    "rule-unknown": "every rule id a machine names is in the rule catalogue",
    "refusal-conflict": "no refusal is declared where a transition is allowed unguarded",
    "refusal-undocumented": "every refusal code is documented for the operation (or generic)",
    "transition-operation-unknown": "every transition's operation exists in the operation table",
    "transition-operation-mismatch": "the operation of a transition steps that machine and trigger",
    "timed-attribute-unknown": "the attribute a timed transition waits for is declared in its machine",
    "trigger-operation-ambiguous": "every transition of one trigger names the same operation",
    "transition-actor": "a transition's actor is one the operation allows",
    "operation-trigger-unknown": "every trigger an operation steps exists in its machine",
    "operation-machine-unknown": "every machine an operation names exists",
    "machine-parent": "a machine's parent is another machine, and parents never form a cycle",
    "scope-machine-unknown": "the machine that scopes a resource token (callers.scope) exists",
    "operation-duplicate": "operation ids and (method, path) routes are unique",
    "refusal-code-rule-unknown": "every rule in refusal_codes is a rule of the catalogue",
    "style-unknown": "every style check names a known rule and a shipped schema",
    "flow-operation-unknown": "every step of a declared flow names an existing operation",
    "transport-rule": "every transport kind and the lost-body rule name a known info rule; ids unique",
    "transport-body-kept": "every redirect status that keeps the body is a status some transport kind fits",
    "ruling-unknown": "every ruling (D1, D2, ...) a rule, machine, operation or flow cites exists",
}

_RULING = re.compile(r"\bD[0-9]+\b")


@dataclass(frozen=True, slots=True)
class LintFinding:
    """One problem in the spec."""

    check: str
    file: str
    pointer: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}#{self.pointer}: {self.message} [{self.check}]"


def lint_spec(spec: Spec) -> list[LintFinding]:
    """Run every check in :data:`LINT_CHECKS` and return the findings (empty when clean)."""
    findings = list(_schemas(spec))
    for machine in spec.machines.values():
        findings.extend(_machine_graph(machine))
        findings.extend(_machine_names(spec, machine))
    findings.extend(_operations(spec))
    if spec.callers.scope not in spec.machines:
        findings.append(
            LintFinding("scope-machine-unknown", "operations.json", "/callers/scope", spec.callers.scope)
        )
    findings.extend(_style(spec))
    findings.extend(_transport(spec))
    findings.extend(_citations(spec))
    ops = {op.id for op in spec.operations}
    for flow in spec.flows:
        for i, step in enumerate(flow.steps):
            if step.operation not in ops:
                findings.append(
                    LintFinding(
                        "flow-operation-unknown",
                        "flows.json",
                        f"{flow.pointer}/steps/{i}/operation",
                        step.operation,
                    )
                )
    return findings


def _transport(spec: Spec) -> Iterator[LintFinding]:
    """Transport kinds (D22) are said by info rules of the catalogue, and never fail a run."""
    seen: set[str] = set()
    named = [(k.pointer, k.rule) for k in spec.transport]
    named.append(("/transport/body_kept/rule", spec.body_lost_rule))
    for pointer, rule_id in named:
        rule = spec.rules.get(rule_id)
        if rule is None:
            yield LintFinding("transport-rule", "operations.json", pointer, f"unknown rule {rule_id!r}")
        elif rule.severity.value != "info":
            yield LintFinding(
                "transport-rule", "operations.json", pointer, f"{rule_id} is {rule.severity.value}, not info"
            )
    for kind in spec.transport:
        if kind.id in seen:
            yield LintFinding("transport-rule", "operations.json", kind.pointer + "/id", f"{kind.id} twice")
        seen.add(kind.id)
    fitted = {s for k in spec.transport for s in k.statuses}
    for status in sorted(spec.body_kept - fitted):
        yield LintFinding(
            "transport-body-kept",
            "operations.json",
            "/transport/body_kept/statuses",
            f"{status} is no transport kind's status: such a redirect would be judged as a call",
        )


def _citations(spec: Spec) -> Iterator[LintFinding]:
    """Each D-number in a source or hint names a ruling, so every ``[D7]`` a user reads resolves."""
    cited: list[tuple[str, str, str]] = []
    for i, r in enumerate(spec.rules.values()):
        cited += [("rules.json", f"/rules/{i}/cite", r.cite), ("rules.json", f"/rules/{i}/hint", r.hint)]
    for m in spec.machines.values():
        cited += [(m.file, "/states", s.cite) for s in m.states]
        cited += [(m.file, "/guards", g.cite) for g in m.guards.values()]
        cited += [(m.file, c.pointer, c.cite) for c in m.creates]
        cited += [(m.file, t.pointer, t.cite) for t in m.transitions]
        cited += [(m.file, r.pointer, r.cite) for r in m.refusals]
    cited += [("operations.json", op.pointer, op.cite) for op in spec.operations]
    cited += [("flows.json", f.pointer, f.cite) for f in spec.flows]
    for file, pointer, text in cited:
        for number in _RULING.findall(text):
            if number not in spec.rulings:
                yield LintFinding("ruling-unknown", file, pointer, f"{number} is not in rulings.json")


def _style(spec: Spec) -> Iterator[LintFinding]:
    schemas = load_schemas()
    for check in spec.style:
        if check.rule not in spec.rules:
            yield LintFinding("style-unknown", "style.json", check.pointer + "/rule", check.rule)
        for i, rel in enumerate(check.schemas):
            if rel not in schemas:
                yield LintFinding(
                    "style-unknown", "style.json", f"{check.pointer}/schemas/{i}", f"no schema {rel!r}"
                )


def _schema_refs(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield path + "/$ref", value
            else:
                yield from _schema_refs(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _schema_refs(value, f"{path}/{i}")


_DRAFT = str(Draft202012Validator.META_SCHEMA["$id"])


def metaschema_error(doc: Mapping[str, Any]) -> SchemaError | None:
    """What is wrong with ``doc`` as a Draft 2020-12 schema, as ``jsonschema`` says; ``None`` if nothing.

    ``jsonschema`` takes about 10 ms a schema (half of loading the spec); ``jsonschema-rs`` checks
    the same meta-schema in a thousandth of that but asserts no formats, so a schema it accepts is
    taken as valid only if every regular expression in it also compiles here (``regex``, the one
    format the Python check asserts without optional packages) and it names no other draft; any
    other schema, and every error message, is ``jsonschema``'s.
    """
    if doc.get("$schema", _DRAFT) == _DRAFT and _patterns_compile(doc):
        try:
            if jsonschema_rs.meta.is_valid(dict(doc)):
                return None
        except Exception:  # (an unknown draft, anything odd: the Python check decides)
            pass
    try:
        Draft202012Validator.check_schema(dict(doc))
    except SchemaError as exc:
        return exc
    return None


def _patterns_compile(node: Any) -> bool:
    """Every ``pattern`` string and ``patternProperties`` name anywhere in ``node`` compiles.

    Looked for everywhere, not only where a schema is: a value that merely looks like one (in an
    ``example``, say) and does not compile sends the schema to the slow check, which is never wrong.
    """
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern" and isinstance(value, str) and not _compiles(value):
                return False
            if key == "patternProperties" and isinstance(value, dict) and not all(map(_compiles, value)):
                return False
            if not _patterns_compile(value):
                return False
    elif isinstance(node, list):
        return all(map(_patterns_compile, node))
    return True


def _compiles(pattern: Any) -> bool:
    try:
        re.compile(pattern)
    except (re.error, TypeError, ValueError, RecursionError, OverflowError):
        return False
    return True


def _schemas(spec: Spec) -> Iterator[LintFinding]:
    schemas = load_schemas()
    reg = registry()
    for rel, doc in schemas.items():
        file = f"schemas/{rel}.schema.json"
        error = metaschema_error(doc)
        if error is not None:
            pointer = "".join(f"/{p}" for p in error.absolute_path)
            yield LintFinding("schema-metaschema", file, pointer, error.message)
        if doc.get("$id") != schema_uri(rel):
            yield LintFinding("schema-metaschema", file, "/$id", f"$id must be {schema_uri(rel)!r}")
        resolver = reg.resolver(base_uri=schema_uri(rel))
        for at, ref in _schema_refs(doc):
            try:
                resolver.lookup(ref)
            except Unresolvable as exc:
                yield LintFinding("schema-unresolved-ref", file, at, f"{ref!r}: {exc}")
    for op in spec.operations:
        named: list[tuple[str, str | None]] = [
            ("/request", op.request),
            ("/query_schema", op.query_schema),
            *((f"/responses/{status}", rel) for status, rel in op.responses.items()),
        ]
        for where, schema_id in named:
            if schema_id is not None and schema_id not in schemas:
                yield LintFinding(
                    "schema-missing", "operations.json", op.pointer + where, f"no schema {schema_id!r}"
                )
    if spec.error_schema not in schemas:
        yield LintFinding("schema-missing", "operations.json", "/error_schema", spec.error_schema)
    if spec.optional_body not in schemas:
        yield LintFinding("schema-missing", "operations.json", "/optional_body/schema", spec.optional_body)


def reachable_states(machine: MachineSpec) -> set[str]:
    """States reachable from any creation by following transitions."""
    seen = {c.dest for c in machine.creates}
    queue = deque(seen)
    while queue:
        state = queue.popleft()
        for t in machine.transitions:
            if state in t.source:
                dest = t.dest_for(state)
                if dest not in seen:
                    seen.add(dest)
                    queue.append(dest)
    return seen


def _machine_graph(m: MachineSpec) -> Iterator[LintFinding]:
    names = set(m.state_names)
    for c in m.creates:
        if c.dest not in names:
            yield LintFinding("state-unknown", m.file, c.pointer + "/dest", f"no state {c.dest!r}")
    for t in m.transitions:
        for i, s in enumerate(t.source):
            if s not in names:
                yield LintFinding("state-unknown", m.file, f"{t.pointer}/source/{i}", f"no state {s!r}")
        if t.dest != "=" and t.dest not in names:
            yield LintFinding("state-unknown", m.file, t.pointer + "/dest", f"no state {t.dest!r}")
    for r in m.refusals:
        for i, s in enumerate(r.states):
            if s not in names:
                yield LintFinding("state-unknown", m.file, f"{r.pointer}/states/{i}", f"no state {s!r}")
    reachable = reachable_states(m)
    for i, st in enumerate(m.states):
        if st.name not in reachable:
            yield LintFinding(
                "state-unreachable", m.file, f"/states/{i}", f"state {st.name} cannot be reached"
            )
        leaves = any(st.name in t.source and t.dest_for(st.name) != st.name for t in m.transitions)
        if not st.final and not leaves:
            yield LintFinding(
                "state-trap",
                m.file,
                f"/states/{i}",
                f"state {st.name} is not final and no transition leaves it",
            )
    if not m.finals:
        yield LintFinding("final-unreachable", m.file, "/states", "the machine has no final state")
    for i, st in enumerate(m.states):
        if st.final and st.name not in reachable:
            yield LintFinding(
                "final-unreachable", m.file, f"/states/{i}", f"final state {st.name} cannot be reached"
            )


def _machine_names(spec: Spec, m: MachineSpec) -> Iterator[LintFinding]:
    ops = {op.id: op for op in spec.operations}
    parent, seen = m.parent, {m.name}
    while parent is not None:
        if parent not in spec.machines or parent in seen:
            why = "is not a machine" if parent not in spec.machines else "leads back to it (a cycle)"
            yield LintFinding("machine-parent", m.file, "/parent", f"{m.parent!r} {why}")
            break
        seen.add(parent)
        parent = spec.machines[parent].parent
    for t in m.transitions:
        for i, use in enumerate(t.guards):
            if use.guard not in m.guards:
                yield LintFinding(
                    "guard-unknown", m.file, f"{t.pointer}/guards/{i}", f"no guard {use.guard!r}"
                )
            if use.warn and use.warn not in spec.rules:
                yield LintFinding("rule-unknown", m.file, f"{t.pointer}/guards/{i}/warn", use.warn)
        if t.warn and t.warn not in spec.rules:
            yield LintFinding("rule-unknown", m.file, t.pointer + "/warn", t.warn)
    for r in m.refusals:
        if r.rule and r.rule not in spec.rules:
            yield LintFinding("rule-unknown", m.file, r.pointer + "/rule", r.rule)
        for s in r.states:
            for t in m.transitions:
                if t.trigger == r.trigger and s in t.source and not t.refusing_guards:
                    yield LintFinding(
                        "refusal-conflict",
                        m.file,
                        r.pointer,
                        f"{r.trigger} is refused in {s} but {t.pointer} allows it unguarded",
                    )
    for t in m.transitions:
        if t.timed_attribute and t.timed_attribute not in m.attributes:
            yield LintFinding(
                "timed-attribute-unknown",
                m.file,
                t.pointer + "/timed/attribute",
                f"{t.timed_attribute!r} is not among the machine's attributes ({', '.join(m.attributes)})",
            )
        if t.operation and m.operation_of[t.trigger] != t.operation:
            yield LintFinding(
                "trigger-operation-ambiguous",
                m.file,
                t.pointer + "/operation",
                f"{t.trigger} is fired by {m.operation_of[t.trigger]!r} elsewhere, here by {t.operation!r}",
            )
    moves: list[tuple[str, str | None, str, str]] = [
        (c.trigger, c.operation, c.actor, c.pointer) for c in m.creates
    ]
    moves += [(t.trigger, t.operation, t.actor, t.pointer) for t in m.transitions]
    for trigger, op_id, actor, pointer in moves:
        if op_id is None:
            continue
        op = ops.get(op_id)
        if op is None:
            yield LintFinding(
                "transition-operation-unknown", m.file, pointer + "/operation", f"no operation {op_id!r}"
            )
            continue
        if not any(s.machine == m.name and s.trigger == trigger for s in op.steps):
            yield LintFinding(
                "transition-operation-mismatch",
                m.file,
                pointer,
                f"operation {op_id} does not step {m.name}.{trigger}",
            )
        if actor not in op.actors and "any" not in op.actors:
            yield LintFinding(
                "transition-actor",
                m.file,
                pointer + "/actor",
                f"actor {actor} is not among {op_id}'s actors {list(op.actors)}",
            )
    for r in m.refusals:
        if r.code is None:
            continue
        callers = [
            ops[op_id] for t, op_id, _, _ in moves if t == r.trigger and op_id is not None and op_id in ops
        ]
        if callers and not any(
            r.code in op.documented_codes or r.code in spec.generic_errors for op in callers
        ):
            yield LintFinding(
                "refusal-undocumented",
                m.file,
                r.pointer + "/code",
                f"{r.code!r} is not documented for {[op.id for op in callers]}",
            )


def _operations(spec: Spec) -> Iterator[LintFinding]:
    for rule, code in spec.refusal_codes.items():  # a refusal the prediction answers: a rule, a generic code
        where = "/refusal_codes/codes/" + rule.replace("~", "~0").replace("/", "~1")
        if rule not in spec.rules:
            yield LintFinding("refusal-code-rule-unknown", "operations.json", where, rule)
        elif code not in spec.generic_errors:
            yield LintFinding(
                "refusal-undocumented", "operations.json", where, f"{code!r} is not a generic error code"
            )
    seen_ids: set[str] = set()
    seen_routes: set[tuple[str, str]] = set()
    for op in spec.operations:
        if op.id in seen_ids:
            yield LintFinding("operation-duplicate", "operations.json", op.pointer + "/id", op.id)
        if (op.method, op.path) in seen_routes:
            yield LintFinding(
                "operation-duplicate", "operations.json", op.pointer + "/path", f"{op.method} {op.path}"
            )
        seen_ids.add(op.id)
        seen_routes.add((op.method, op.path))
        for i, step in enumerate(op.steps):
            pointer = f"{op.pointer}/steps/{i}"
            machine = spec.machines.get(step.machine)
            if machine is None:
                yield LintFinding(
                    "operation-machine-unknown", "operations.json", pointer + "/machine", step.machine
                )
                continue
            known = machine.creation(step.trigger) if step.creates else machine.transitions_for(step.trigger)
            if not known:
                yield LintFinding(
                    "operation-trigger-unknown",
                    "operations.json",
                    pointer + "/trigger",
                    f"machine {step.machine} has no {'creation' if step.creates else 'trigger'} "
                    f"{step.trigger!r}",
                )
        for i, obs in enumerate(op.observes):
            if obs.machine not in spec.machines:
                yield LintFinding(
                    "operation-machine-unknown",
                    "operations.json",
                    f"{op.pointer}/observes/{i}/machine",
                    obs.machine,
                )
