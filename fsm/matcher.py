"""Matcher stage: an exchange's method and path name one operation of the table.

Routing splits the path and walks a trie (literal segments before parameters),
cheaper than a list of regexes. Paths outside the protocol (D1) are reported
once per path shape (its values replaced, D20) as ``info``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote

from fsm._shared import per_spec
from fsm.exchange import Exchange
from fsm.secrets import shown, shown_path
from fsm.spec.model import OperationSpec, Spec
from fsm.violation import Finding

__all__ = ["Match", "Matcher", "Router"]


class Match:
    """An exchange routed to an operation, with its path parameters (read-only by convention).

    A plain class: made twice for every exchange (in the worker and again in the process that
    steps), where a frozen dataclass cost twice as much to build.
    """

    __slots__ = ("operation", "params")

    def __init__(self, operation: OperationSpec, params: dict[str, str]) -> None:
        self.operation = operation
        self.params = params

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Match):
            return NotImplemented
        return self.operation == other.operation and self.params == other.params

    __hash__ = None  # type: ignore[assignment]  # (params is a dict, as with the dataclass)

    def __repr__(self) -> str:
        return f"Match(operation={self.operation.id!r}, params={self.params!r})"


@dataclass
class _Node:
    literal: dict[str, _Node] = field(default_factory=dict)
    param: _Node | None = None
    param_name: str = ""
    ops: dict[str, OperationSpec] = field(default_factory=dict)


class Router:
    """The operation table as a trie over path segments.

    Segments that are no literal of any path template are interchangeable, so the
    trie's answer depends only on the path's *shape* (literals kept, others as
    ``{}``); answers are cached per shape, making routing one dict lookup.
    """

    @classmethod
    def shared(cls, spec: Spec) -> Router:
        """The router of ``spec``, built once and shared (its cache of path shapes is a pure memo)."""
        return per_spec("router", spec, lambda: cls(spec))

    def __init__(self, spec: Spec) -> None:
        self.prefix = spec.prefix.rstrip("/")
        self.out_of_scope = spec.out_of_scope
        self._root = _Node()
        for op in spec.operations:
            node = self._root
            for seg in op.path.strip("/").split("/"):
                if seg.startswith("{"):
                    if node.param is None:
                        node.param = _Node()
                        node.param_name = seg[1:-1]
                    node = node.param
                else:
                    node = node.literal.setdefault(seg, _Node())
            node.ops[op.method] = op
        self._literals = frozenset(
            seg for op in spec.operations for seg in op.path.strip("/").split("/") if not seg.startswith("{")
        )
        self._shapes: dict[tuple[str, ...], tuple[_Node, tuple[tuple[int, str], ...]] | None] = {}

    def route(self, method: str, path: str) -> Match | list[str] | None:
        """The match; or the methods allowed on a known path; or None for an unknown path.

        ``path`` is relative to the prefix.
        """
        stripped = path.strip("/")
        segments = stripped.split("/") if stripped else [""]
        if "%" in stripped:
            segments = [unquote(s) for s in segments]
        literals = self._literals
        shape = tuple([s if s in literals else "{}" for s in segments])
        try:
            found = self._shapes[shape]
        except KeyError:
            found = self._shapes[shape] = self._walk(self._root, segments, 0, ())
        if found is None:
            return None
        node, where = found
        op = node.ops.get(method)
        if op is None:
            return sorted(node.ops)
        return Match(op, {name: segments[i] for i, name in where})

    def _walk(
        self, node: _Node, segs: list[str], i: int, params: tuple[tuple[int, str], ...]
    ) -> tuple[_Node, tuple[tuple[int, str], ...]] | None:
        if i == len(segs):
            return (node, params) if node.ops else None
        seg = segs[i]
        child = node.literal.get(seg)
        if child is not None:
            found = self._walk(child, segs, i + 1, params)
            if found is not None:
                return found
        if node.param is not None and seg:
            return self._walk(node.param, segs, i + 1, (*params, (i, node.param_name)))
        return None


class Matcher:
    """Routes exchanges for one run; remembers which outside paths it already reported."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.reported: set[str] = set()
        """Paths already reported once (D1)."""
        self._scopes = tuple(scope for scope, _ in router.out_of_scope)
        self._under = router.prefix + "/"

    def match(self, ex: Exchange) -> Match | Finding | None:
        """A :class:`Match`, a routing finding, or None (outside path already reported)."""
        prefix = self.router.prefix
        path = ex.path
        if path != prefix and not path.startswith(self._under):
            return self._once(
                "route.outside-api",
                ex,
                f" is not under the API prefix {prefix}; not checked",
            )
        rel = path[len(prefix) :] or "/"
        if rel.startswith(self._scopes):  # one C call rules out most paths
            for scope, reason in self.router.out_of_scope:
                if rel == scope or rel.startswith(scope + "/"):
                    return self._once(
                        "route.out-of-scope",
                        ex,
                        f" is outside the protocol ({reason}); not checked",
                    )
        routed = self.router.route(ex.method, rel)
        if isinstance(routed, Match):
            return routed
        method, shown_as = shown(ex.method), shown_path(path)  # as reports may show them (D20)
        if routed is None:
            return Finding(
                "route.unknown-path",
                f"{method} {shown_as} matches no operation of the protocol",
                actual=shown_as,
            )
        return Finding(
            "route.unknown-method",
            f"{method} is not allowed on {shown_as}; expected {' or '.join(routed)}",
            expected=routed,
            actual=method,
        )

    def _once(self, rule: str, ex: Exchange, says: str) -> Finding | None:
        """A finding for the first exchange on a path shaped like ``ex.path`` (its values are no new path)."""
        path = shown_path(ex.path)
        if path in self.reported:
            return None
        self.reported.add(path)
        return Finding(rule, f"{shown(ex.method)} {path}{says}", actual=path)
