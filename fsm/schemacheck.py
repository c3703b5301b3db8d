"""Schema stage: request and response bodies against their schemas, plus D11-D15 checks.

Every schema error is reported (not only the first), each with its JSON pointer
prefixed ``/request`` or ``/response``, grouped under one finding per body.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from fsm._resources import load_schemas
from fsm._shared import per_spec
from fsm._text import clip
from fsm._validators import SchemaValidator, compiled, ecma_regex, validator
from fsm.exchange import Exchange
from fsm.matcher import Match
from fsm.pointer import expand, get, split
from fsm.secrets import SECRET_KEYS, scrub, secrets_in, shown_text
from fsm.spec.model import OperationSpec, Spec, StyleCheck
from fsm.violation import NAMED_IN_MESSAGE, Finding

__all__ = ["SchemaChecker"]

_Pointer = tuple[str, tuple[str, ...], bool]  # (pointer, tokens, has a '*')
_MAX_DETAIL = 20  # schema errors listed per body; the rest are counted


class SchemaChecker:
    """Checks the payloads of matched exchanges.

    Arguments:
        spec: the loaded spec.
        fast: use the compiled validators (``False``: Python jsonschema only).
    """

    def __init__(self, spec: Spec, *, fast: bool = True) -> None:
        self.spec = spec
        self.fast = fast
        self._error = validator(spec.error_schema, fast)
        self._style: dict[str, list[tuple[StyleCheck, re.Pattern[str] | None, list[_Pointer]]]] = {}
        for check in spec.style:
            compiled_pattern = ecma_regex(check.pattern) if check.pattern else None
            pointers = [(p, split(p), "*" in p) for p in check.pointers]
            for rel in check.schemas:
                self._style.setdefault(rel, []).append((check, compiled_pattern, pointers))
        self._validators = {
            rel: validator(rel, fast)
            for op in spec.operations
            for rel in (op.request, op.query_schema, *op.responses.values())
            if rel is not None
        }
        schemas = load_schemas()
        self._secret_schemas = {  # schemas with a secret field -> the words they declare (not secrets)
            rel: frozenset(_declared_words(schemas[rel]))
            for rel in self._validators
            if _names_secret(schemas.get(rel))
        }
        self._secret_ops = frozenset(  # operations whose request or any answer has a secret field
            op.id
            for op in spec.operations
            if any(rel in self._secret_schemas for rel in (op.request, *op.responses.values()))
        )
        # The fast path: one compiled schema that holds when the body satisfies its schema and every
        # style check it has (most bodies); otherwise both are explained. A schema with a style check
        # that cannot be written as a schema has none: its bodies are always explained.
        self._clean: dict[str, Any] = {}
        if fast:
            for rel, checks in self._style.items():
                parts = [
                    _style_schema(check, pointer) for check, _, pointers in checks for pointer, *_ in pointers
                ]
                if rel in self._validators and all(p is not None for p in parts):
                    self._clean[rel] = compiled({"allOf": [{"$ref": self._validators[rel].uri}, *parts]})
            for rel, v in self._validators.items():  # bodies without style checks: their compiled schema
                if rel not in self._style and v.native is not None:
                    self._clean[rel] = v.native

    @classmethod
    def shared(cls, spec: Spec, *, fast: bool = True) -> SchemaChecker:
        """The checker of ``spec``, compiled once and shared (it keeps no state between exchanges)."""
        return per_spec(f"schemas:{fast}", spec, lambda: cls(spec, fast=fast))

    def secrets(self, ex: Exchange, op: OperationSpec, findings: Iterable[Finding]) -> set[str]:
        """Every secret string the exchange's payloads hold, to be scrubbed from what is said of it (D20).

        The values of secret fields and secrets in raw text; and a body meant to carry a secret
        (a password, a token) that breaks its schema has all its strings, field names too, taken
        as secrets, but for the words its schema declares: a secret may sit anywhere in it.
        """
        broken = {f.rule_id for f in findings}
        secret = self._secret_schemas
        answer = op.responses.get(ex.status)
        found: set[str] = set()
        for rule, body, public in (
            ("schema.request", ex.req_body, secret.get(op.request) if op.request is not None else None),
            ("schema.response", ex.resp_body, secret.get(answer) if answer is not None else None),
        ):
            every = public is not None and rule in broken
            found |= secrets_in(body, every_string=every, public=public or frozenset())
        for text in (ex.req_text, ex.resp_text):
            if text:
                found |= secrets_in(text)
        return found

    def style_findings(self, rel: str, body: Any, side: str = "request") -> list[Finding]:
        """The style checks (``style.json``) a body of schema ``rel`` breaks, as findings."""
        acc: list[Finding] = []
        if isinstance(body, (dict, list)):
            for check, pattern, pointers in self._style.get(rel, ()):
                acc.extend(_style(check, pattern, pointers, body, side))
        return acc

    def _validator(self, rel: str) -> SchemaValidator:
        return self._validators.get(rel) or validator(rel, self.fast)

    def check(
        self, ex: Exchange, match: Match, *, request: bool = True, response: bool = True
    ) -> list[Finding]:
        """Every payload finding for one exchange (or only one side of it)."""
        op = match.operation
        out: list[Finding] = []
        if request:
            if op.query_schema is not None or (op.query and ex.query):
                out.extend(self._query(ex, op))
            rel = op.request
            # a JSON body its compiled check finds clean has nothing to say (as _request and _body find)
            if rel is not None and not (
                ex.req_has_body and ex.req_text is None and self._clean_body(rel, ex.req_body)
            ):
                out.extend(self._request(ex, op))
        status = ex.status
        if response and status != 0:
            rel = op.responses.get(status) if 200 <= status < 300 else None
            if not (
                rel is not None
                and ex.resp_has_body
                and ex.resp_text is None
                and self._clean_body(rel, ex.resp_body)
            ):  # (likewise: a documented 2xx with a clean JSON body, as _response and _body find)
                out.extend(self._response(ex, op))
        return out

    def _clean_body(self, rel: str, body: Any) -> bool:
        """True when ``body`` passes the compiled check of ``rel`` and its style checks (see ``_clean``)."""
        clean = self._clean.get(rel)
        if clean is None:
            return False
        try:
            return bool(clean.is_valid(body))
        except (ValueError, OverflowError):  # values jsonschema-rs cannot take: ask the authorities
            return False

    def _query(self, ex: Exchange, op: OperationSpec) -> list[Finding]:
        if op.query_schema is not None:
            return self._query_schema(ex, op, op.query_schema)
        acc: list[Finding] = []
        query = _single(ex.query)
        for name, kind in op.query.items():
            value = query.get(name)
            if value is None or kind != "integer":
                continue
            if isinstance(value, bool) or not (
                isinstance(value, int) or (isinstance(value, str) and value.lstrip("-").isdigit())
            ):
                acc.append(
                    Finding(
                        "schema.query",
                        f"query parameter {name} should be an integer, got {value!r}",
                        instance_path=f"/request/query/{name}",
                        expected="integer",
                        actual=value,
                    )
                )
        return acc

    def _query_schema(self, ex: Exchange, op: OperationSpec, rel: str) -> list[Finding]:
        """The query parameters against their schema: missing, out of range, not in an enum."""
        typed = {  # a query holds text: integer parameters are read from it first
            name: int(value) if op.query.get(name) == "integer" and _is_integer_text(value) else value
            for name, value in _single(ex.query).items()
        }
        v = self._validator(rel)
        if v.is_valid(typed):
            return []
        return [
            Finding(
                "schema.query",
                f"the query of {op.id} breaks {rel}: {i.pointer.lstrip('/') or '(query)'}: {i.message}",
                instance_path=f"/request/query{i.pointer}",
                spec_path=i.schema_path,
                expected=rel,
                actual=typed.get(i.pointer.lstrip("/")) if i.pointer else None,
            )
            for i in v.issues(typed)[:_MAX_DETAIL]
        ]

    def _request(self, ex: Exchange, op: OperationSpec) -> list[Finding]:
        acc: list[Finding] = []
        rel = op.request
        assert rel is not None
        if ex.req_text is not None:
            acc.append(_not_json("request", op, ex.req_text, quote=op.id not in self._secret_ops))
            return acc
        if not ex.req_has_body:
            if op.body_required:
                acc.append(
                    Finding(
                        "schema.request",
                        f"{op.id} needs a JSON request body ({rel}); none was recorded",
                        instance_path="/request/body",
                        spec_path=self._validator(rel).uri,
                        expected=rel,
                    )
                )
            return acc
        acc.extend(self._body("request", ex.req_body, rel, op))
        return acc

    def _response(self, ex: Exchange, op: OperationSpec) -> list[Finding]:
        acc: list[Finding] = []
        status = ex.status
        if 200 <= status < 300:
            rel = op.responses.get(status)
            if rel is None:
                acc.append(
                    Finding(
                        "schema.undocumented-status",
                        f"{op.id} answered {status}; the docs list {sorted(op.responses)} for success",
                        instance_path="/response/status",
                        expected=sorted(op.responses),
                        actual=status,
                    )
                )
                if not op.responses or not (ex.resp_has_body or ex.resp_text is not None):
                    return acc  # (a 204 No Content: the status is the finding)
                # a body it carries is still the documented answer's (a 201 Created for a 200)
                rel = op.responses[min(op.responses)]
            if ex.resp_text is not None:
                acc.append(_not_json("response", op, ex.resp_text, quote=op.id not in self._secret_ops))
            elif not ex.resp_has_body:
                acc.append(
                    Finding(
                        "schema.response",
                        f"{op.id} answered {status} with no body; expected {rel}",
                        instance_path="/response/body",
                        expected=rel,
                    )
                )
            else:
                acc.extend(self._body("response", ex.resp_body, rel, op))
            return acc
        if status not in op.errors and status not in self.spec.general_statuses:
            acc.append(
                Finding(
                    "schema.undocumented-status",
                    f"{op.id} answered {status}, which the docs never list",
                    instance_path="/response/status",
                    expected=sorted({*op.errors, *self.spec.general_statuses}),
                    actual=status,
                )
            )
        if not ex.resp_has_body:
            return acc
        body = ex.resp_body
        if not self._error.is_valid(body):
            acc.append(
                Finding(
                    "schema.error-envelope",
                    f"the {status} body of {op.id} is not an error envelope {{code, message}}",
                    instance_path="/response/body",
                    spec_path=self._error.uri,
                    expected="{code: string, message?: string}",
                    # an error answer to a call that carries a secret may echo it, or an earlier one
                    actual=_short(body) if op.id not in self._secret_ops else _NOT_SHOWN,
                )
            )
            return acc
        code = body["code"]
        documented_at = self.spec.error_status(op, code)
        listed = status in op.errors or status in self.spec.general_statuses  # (else: reported above)
        if documented_at is not None and documented_at != status and listed:
            acc.append(
                Finding(
                    "schema.error-status",
                    f"{op.id} refused with {code!r} as HTTP {status}; the docs give it as {documented_at}",
                    instance_path="/response/status",
                    expected=documented_at,
                    actual=status,
                )
            )
        if code not in op.documented_codes and code not in self.spec.generic_errors:
            documented = sorted(op.documented_codes | self.spec.generic_errors)
            acc.append(
                Finding(
                    "schema.undocumented-error-code",
                    f"{op.id} refused with {code!r}, which is not documented for it "
                    f"(documented: {', '.join(documented)})",
                    instance_path="/response/body/code",
                    expected=documented,
                    actual=code,
                )
            )
        return acc

    def _body(self, side: str, body: Any, rel: str, op: OperationSpec) -> list[Finding]:
        acc: list[Finding] = []
        if self._clean_body(rel, body):
            return acc
        v = self._validator(rel)
        if not v.is_valid(body):
            issues = v.issues(body)
            details = tuple(
                Finding(
                    f"schema.{side}",
                    f"{i.pointer or '(body)'}: {_safe(i.pointer, i.message, i.keyword)}",
                    instance_path=f"/{side}/body{i.pointer}",
                    spec_path=i.schema_path,
                )
                for i in issues[:_MAX_DETAIL]
            )
            more = f" (+{len(issues) - _MAX_DETAIL} more)" if len(issues) > _MAX_DETAIL else ""
            first = issues[0] if issues else None
            acc.append(
                Finding(
                    f"schema.{side}",
                    f"the {side} body of {op.id} breaks {rel}: "
                    + "; ".join(d.message for d in details[:NAMED_IN_MESSAGE])
                    + ("; ..." if len(details) > NAMED_IN_MESSAGE else "")
                    + more,
                    instance_path=f"/{side}/body{first.pointer if first else ''}",
                    spec_path=v.uri,
                    expected=rel,
                    context=details,
                )
            )
        checks = self._style.get(rel)
        if checks and isinstance(body, (dict, list)):
            for check, pattern, pointers in checks:
                acc.extend(_style(check, pattern, pointers, body, side))
        return acc


def _style_schema(check: StyleCheck, pointer: str) -> dict[str, Any] | None:
    """One style check at one pointer as a JSON Schema that holds exactly when the check passes.

    A pattern check becomes ``properties``/``items`` down to a ``pattern`` (which, like the
    check, ignores non-strings); a required field becomes ``required`` on objects along a plain
    pointer. A ``when`` condition on a sibling becomes ``if``/``then`` at the parent. None when
    the check has no such form (a required field under a wildcard, a condition elsewhere).
    """
    tokens = split(pointer)
    if check.required:
        if "*" in tokens or not tokens:
            return None
        node: dict[str, Any] = {"required": [tokens[-1]]}
        for token in reversed(tokens[:-1]):
            node = {"required": [token], "properties": {token: {"type": "object", **node}}}
        return node
    if check.pattern is None or not tokens or tokens[-1] == "*":
        return None
    node = {"properties": {tokens[-1]: {"pattern": check.pattern}}}
    if check.when is not None:
        when_ptr, want = check.when
        when_tokens = split(when_ptr)
        if when_tokens[:-1] != tokens[:-1] or when_tokens[-1] == "*":
            return None
        node = {
            "if": {"required": [when_tokens[-1]], "properties": {when_tokens[-1]: {"const": want}}},
            "then": node,
        }
    for token in reversed(tokens[:-1]):
        node = {"items": node} if token == "*" else {"properties": {token: node}}
    return node


_NOT_SHOWN = "<not shown: this call carries a secret, which its bodies may echo (D20)>"


def _not_json(side: str, op: OperationSpec, text: str, *, quote: bool) -> Finding:
    """A captured body that should be JSON but is not (shown truncated, secrets scrubbed first)."""
    # a body meant to carry a secret is never quoted: in text that is not JSON it may sit anywhere
    shown = (
        shown_text(scrub(text, secrets_in(text))[:80])
        if quote
        else f"<{len(text)} characters, not shown: D20>"
    )
    return Finding(
        "input.body-not-json",
        f"the {side} body of {op.id} is not JSON",
        instance_path=f"/{side}/body",
        actual=shown,
    )


def _declared_words(schema: Any, depth: int = 0) -> set[str]:
    """Property names and const/enum strings of a schema (with its $defs)."""
    words: set[str] = set()
    if depth > 32:
        return words
    if isinstance(schema, dict):
        props = schema.get("properties")
        if isinstance(props, dict):
            words.update(props)
        words.update(v for v in (schema.get("const"), *schema.get("enum", ())) if isinstance(v, str))
        for v in schema.values():
            words |= _declared_words(v, depth + 1)
    elif isinstance(schema, list):
        for v in schema:
            words |= _declared_words(v, depth + 1)
    return words


def _names_secret(schema: Any, depth: int = 0) -> bool:
    """True when a schema (with its $defs) declares a property named like a secret (D20)."""
    if depth > 32:
        return False
    if isinstance(schema, dict):
        props = schema.get("properties")
        if isinstance(props, dict) and SECRET_KEYS.intersection(props):
            return True
        return any(_names_secret(v, depth + 1) for v in schema.values())
    if isinstance(schema, list):
        return any(_names_secret(v, depth + 1) for v in schema)
    return False


_INTEGER_TEXT = re.compile(r"-?[0-9]{1,19}")


def _single(query: dict[str, Any]) -> dict[str, Any]:
    """A query with each parameter given once as itself, not as a list of one value.

    A record may write ``{"limit": ["10"]}``: a parameter's values as a list, as Python's
    ``parse_qs`` and Go's ``url.Values`` hold them.
    """
    for value in query.values():
        if type(value) is list:
            return {k: v[0] if type(v) is list and len(v) == 1 else v for k, v in query.items()}
    return query


def _is_integer_text(value: Any) -> bool:
    return isinstance(value, str) and _INTEGER_TEXT.fullmatch(value) is not None


def _safe(pointer: str, message: str, keyword: str) -> str:
    """The schema message, unless the value is a secret (D20): then only the keyword."""
    if pointer.rsplit("/", 1)[-1] in SECRET_KEYS:
        return f"fails {keyword} (value not shown: it is a secret)"
    return message


def _short(value: Any) -> Any:
    try:
        text = orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):  # nested beyond orjson's limit
        return "<nested too deeply to show>"
    return value if len(text) <= 120 else clip(text, 120)


def _style(
    check: StyleCheck, pattern: re.Pattern[str] | None, pointers: list[_Pointer], body: Any, side: str
) -> Iterator[Finding]:
    for pointer, tokens, star in pointers:
        if not star and pattern is not None and check.when is None:
            node = get(body, tokens)  # fast path: a plain pointer
            if isinstance(node, str) and not pattern.search(node):
                yield _off_style(check, side, pointer, node)
            continue
        if check.required:
            if isinstance(body, dict) and not any(True for _ in expand(body, pointer)):
                yield Finding(
                    check.rule,
                    f"{side} body has no {pointer.lstrip('/')}; expected {check.expected}",
                    instance_path=f"/{side}/body{pointer}",
                    expected=check.expected,
                )
            continue
        for path, value, idx in expand(body, pointer):
            if not isinstance(value, str) or pattern is None or pattern.search(value):
                continue
            if check.when is not None:
                when_ptr, want = check.when
                for i in idx:
                    when_ptr = when_ptr.replace("*", str(i), 1)
                if not any(v == want for _, v, _ in expand(body, when_ptr)):
                    continue
            yield _off_style(check, side, path, value)


def _off_style(check: StyleCheck, side: str, path: str, value: str) -> Finding:
    """The finding for a string at ``path`` of the ``side`` body that the style check does not match."""
    return Finding(
        check.rule,
        f"{path.lstrip('/')} is {value!r}; expected {check.expected}",
        instance_path=f"/{side}/body{path}",
        expected=check.expected,
        actual=value,
    )
