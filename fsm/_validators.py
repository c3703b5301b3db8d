"""Schema validators in two forms: compiled (jsonschema-rs) and explaining (jsonschema).

Python ``jsonschema`` is the authority: it explains every failure with its JSON
pointer and keyword path. ``jsonschema-rs`` answers "valid or not" about a
hundred times faster; the validator asks it first and asks ``jsonschema`` only
when a payload fails (rare). Both resolve ``$ref`` offline from the shipped
schemas. A test requires both to agree on the corpus and on generated payloads.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError

from fsm._resources import load_schemas, registry, schema_uri, shipped_schema
from fsm._text import clip
from fsm.errors import SpecError
from fsm.pointer import join

__all__ = ["EcmaValidator", "SchemaIssue", "SchemaValidator", "compiled", "ecma_regex", "validator"]


_ECMA_DOT = "[^\n\r\u2028\u2029]"
"""ECMA-262's ``.``: any character but a line terminator."""


@functools.cache
def ecma_regex(pattern: str) -> re.Pattern[str]:
    r"""Compile a JSON Schema (ECMA-262) pattern for Python: ``$`` means end of input, ``.`` no line end.

    Python's ``$`` also matches before a final newline, so ``^[A-Z]{6}$`` would accept
    ``"A1B2C3\n"``; ECMA-262, jsonschema-rs and pydantic's regex engine do not. Every
    unescaped ``$`` outside a character class becomes ``\Z``. Python's ``.`` matches a carriage
    return and the Unicode line and paragraph separators; ECMA-262's (and jsonschema-rs's) does not,
    so every unescaped ``.`` outside a class becomes :data:`_ECMA_DOT`.
    """
    out = []
    escaped = in_class = False
    for ch in pattern:
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
        elif ch == "$":
            out.append("\\Z")
            continue
        elif ch == ".":
            out.append(_ECMA_DOT)
            continue
        out.append(ch)
    return re.compile("".join(out))


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not ecma_regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


EcmaValidator: Any = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator, {"pattern": _pattern}
)
"""Draft 2020-12 with ECMA-262 ``pattern`` semantics: the authority on every payload."""


@dataclass(frozen=True, slots=True)
class SchemaIssue:
    """One reason a payload fails its schema."""

    pointer: str
    message: str
    keyword: str
    schema_path: str


def _refuse(uri: str) -> Any:
    raise ValueError(f"refusing to fetch {uri}: schemas resolve offline only")


@functools.cache
def _rs_registry() -> Any:
    return jsonschema_rs.Registry(
        [(schema_uri(rel), dict(doc)) for rel, doc in load_schemas().items()], retriever=_refuse
    )


def compiled(schema: dict[str, Any]) -> Any:
    """A jsonschema-rs validator for a derived schema (``$ref``s to shipped schemas resolve offline)."""
    return jsonschema_rs.validator_for(
        {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}, registry=_rs_registry()
    )


class SchemaValidator:
    """Validates payloads against one shipped schema, named by relative id.

    Arguments:
        relative_id: e.g. ``vouchers/redeem-voucher.request``.
        fast: ask the compiled validator first (``False``: jsonschema only, the reference).
    """

    def __init__(self, relative_id: str, *, fast: bool = True) -> None:
        schema = shipped_schema(relative_id)
        if schema is None:
            raise SpecError(f"no shipped schema {relative_id!r}")
        self.relative_id = relative_id
        self.uri = schema_uri(relative_id)
        self._schema = schema
        self._explainer = EcmaValidator(self._schema, registry=registry())
        self._compiled = jsonschema_rs.validator_for(self._schema, registry=_rs_registry()) if fast else None

    @property
    def native(self) -> Any:
        """The compiled (jsonschema-rs) validator, or None when made with ``fast=False``.

        Its ``is_valid`` may raise ValueError or OverflowError for values it cannot take.
        """
        return self._compiled

    def is_valid(self, instance: Any) -> bool:
        """True when ``instance`` satisfies the schema."""
        if self._compiled is not None:
            try:
                return bool(self._compiled.is_valid(instance))
            except (ValueError, OverflowError):  # values jsonschema-rs cannot take (huge ints)
                pass
        return not self.issues(instance)

    def issues(self, instance: Any) -> list[SchemaIssue]:
        """Every failure (not just the first), most specific first, each with its pointer."""
        try:
            errors = list(self._explainer.iter_errors(instance))
        except RecursionError:
            return [SchemaIssue("", "the payload is nested too deeply to check", "depth", "")]
        out: list[SchemaIssue] = []
        for error in errors:
            leaves = _leaves(error)
            for leaf in leaves:
                out.append(
                    SchemaIssue(
                        pointer=join(leaf.absolute_path),
                        message=_message(leaf, self._schema),
                        keyword=str(leaf.validator),
                        schema_path=self.uri + "#" + join(leaf.absolute_schema_path),
                    )
                )
        out.sort(key=lambda i: (i.pointer, i.keyword))
        return out


def _message(error: Any, root: dict[str, Any]) -> str:
    """The validator's message, said in the schema's terms where it can be.

    A failed pattern says what the field means, not the regex; a value that fits no branch
    of a union names the shapes it could have had (e.g. D7's SIMPLE and CUSTOM redeem).
    """
    meaning = error.schema.get("description") if isinstance(error.schema, dict) else None
    if error.validator == "pattern" and meaning:
        return f"{error.instance!r} is not {meaning[0].lower()}{meaning[1:]}"
    if error.validator in ("anyOf", "oneOf") and "is not valid under any" in str(error.message):
        shapes = [_shape_name(branch, root) for branch in error.validator_value]
        if all(shapes):
            what = "an empty object" if error.instance == {} else _what(error.instance)
            return f"{what} fits none of the {len(shapes)} shapes: " + "; ".join(shapes)
    return str(error.message)


def _shape_name(branch: Any, root: dict[str, Any]) -> str:
    """A union branch as ``Title (with a, b)``, following a local ``$ref``; empty if it has no name."""
    if isinstance(branch, dict) and str(branch.get("$ref", "")).startswith("#/$defs/"):
        name = branch["$ref"].rsplit("/", 1)[1]
        branch = {"title": name, **root.get("$defs", {}).get(name, {})}
    if not isinstance(branch, dict) or "title" not in branch:
        return ""
    required = branch.get("required")
    return f"{branch['title']} (with {', '.join(required)})" if required else str(branch["title"])


def _what(instance: Any) -> str:
    if isinstance(instance, dict):
        return "an object with " + ", ".join(sorted(map(str, instance))[:6])
    text = repr(instance)
    return clip(text, 60)


def _leaves(error: Any) -> list[Any]:
    """Explain an anyOf/oneOf failure inside the branch whose shape the payload has.

    A branch "has the shape" when none of its errors sits at the union's own
    level (no missing key, no wrong type there): its deeper errors are the real
    reasons, explained recursively (an optional field is itself a union with null).
    Otherwise the union error stays as it is.
    """
    if error.validator in ("oneOf", "anyOf") and error.context:
        depth = len(error.absolute_path)
        branches: dict[Any, list[Any]] = {}
        for e in error.context:
            branches.setdefault(e.relative_schema_path[0], []).append(e)

        def score(errors: list[Any]) -> tuple[int, int]:
            return (sum(1 for e in errors if len(e.absolute_path) <= depth), len(errors))

        best = min(branches.values(), key=score)
        if score(best)[0] == 0:
            return [leaf for e in best for leaf in _leaves(e)]
    return [error]


@functools.cache
def validator(relative_id: str, fast: bool = True) -> SchemaValidator:
    """The cached validator for one schema."""
    return SchemaValidator(relative_id, fast=fast)
