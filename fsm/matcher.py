"""Matcher stage: an exchange's method and path name one operation of the table.

Routing splits the path and walks a trie (literal segments before parameters),
cheaper than a list of regexes. Paths outside the protocol (D1) are reported
once per path shape (its values replaced, D20) as ``info``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import repeat
from urllib.parse import unquote, urljoin, urlsplit

from fsm._record import Record
from fsm._shared import per_spec
from fsm.exchange import Exchange
from fsm.secrets import shown, shown_path
from fsm.spec.model import OperationSpec, Spec, TransportKind
from fsm.violation import Finding

__all__ = ["Match", "Matcher", "Router", "Transport", "host_matches", "shown_host"]


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


@dataclass(frozen=True, slots=True)
class Transport(Record):
    """An exchange that is HTTP mechanics, not a protocol call (D22): its kind, and what it was.

    ``said``: method and path as a report may show them (D20).
    """

    kind: TransportKind
    said: str


class Router:
    """The operation table as a trie over path segments.

    Segments that are no literal of any path template are interchangeable, so the
    trie's answer depends only on the path's *shape* (literals kept, others as
    ``{}``); answers are cached per shape, making routing one dict lookup.

    ``prefix``: where the API lives (D25), instead of the spec's ``/api/v1``.
    """

    @classmethod
    def shared(cls, spec: Spec, prefix: str | None = None) -> Router:
        """The router of ``spec`` and ``prefix``, built once and shared (its cache of shapes is a memo)."""
        return per_spec(f"router:{prefix}", spec, lambda: cls(spec, prefix))

    def __init__(self, spec: Spec, prefix: str | None = None) -> None:
        self.prefix = (spec.prefix if prefix is None else prefix).rstrip("/")
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
        literals = {
            seg for op in spec.operations for seg in op.path.strip("/").split("/") if not seg.startswith("{")
        }
        # a segment's place in a path's shape: itself if it is a literal of some template (see route)
        self._literal: Callable[[str, str], str] = {seg: seg for seg in literals}.get
        self._shapes: dict[tuple[str, ...], tuple[_Node, tuple[tuple[int, str], ...]] | None] = {}
        # the last request matched, (method, path, match): a sandbox or an enforcing middleware routes
        # each request twice, itself and through Validator.predict (replaced whole: thread-safe)
        self._last: tuple[str, str, Match] | None = None

    def route(self, method: str, path: str) -> Match | list[str] | None:
        """The match; or the methods allowed on a known path; or None for an unknown path.

        ``path`` is relative to the prefix.
        """
        last = self._last
        if last is not None and last[1] == path and last[0] == method:
            return last[2]
        stripped = path.strip("/")
        segments = stripped.split("/") if stripped else [""]
        if "%" in stripped:
            segments = [unquote(s) for s in segments]
        # each segment as itself if it is a literal of some template, else "{}" (one C loop)
        shape = tuple(map(self._literal, segments, _PARAM))
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
        match = Match(op, {name: segments[i] for i, name in where} if where else {})
        self._last = (method, path, match)
        return match

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
    """Routes exchanges for one run; remembers which outside paths it already reported.

    ``hosts``: the API's hosts (D25; empty: any host). An exchange on another host is outside
    the API; one whose host was not recorded is judged. ``transport``: the kinds of HTTP
    mechanics to recognise (D22), and ``body_kept`` the redirect statuses after which a client
    sends the same body again.
    """

    def __init__(
        self,
        router: Router,
        hosts: tuple[str, ...] = (),
        transport: tuple[TransportKind, ...] = (),
        body_kept: frozenset[int] = frozenset(),
    ) -> None:
        self.router = router
        self.reported: set[str] = set()
        """Paths already reported once (D1); at most ``_REPORTED`` of them, then each is reported."""
        self.cookies: set[str] = set()
        """Files with a cookie in some exchange (a sanitized HAR has none)."""
        self._scopes = tuple(scope for scope, _ in router.out_of_scope)
        self._under = router.prefix + "/"
        self._hosts = frozenset(h.lower() for h in hosts)
        self._transport = transport
        self._asked = tuple(sorted({h for k in transport for h in k.request_headers}))
        self._kinds: dict[tuple[object, ...], TransportKind | None] = {}  # the answer per shape of exchange
        self._body_kept = body_kept
        self._followed: dict[tuple[str, str, str], None] = {}  # (file, method, path) a 307/308 sent on

    def state(self) -> tuple[set[str], set[str]]:
        """What a copy of this matcher (in a worker process) learnt, for :meth:`take`."""
        return self.reported, self.cookies

    def take(self, state: tuple[set[str], set[str]]) -> None:
        """Learn what a copy of this matcher learnt (see :meth:`state`)."""
        self.reported |= state[0]
        self.cookies |= state[1]

    def transport(self, ex: Exchange, cached: bool = False) -> Transport | None:
        """The kind of HTTP mechanics ``ex`` is (D22), or None for a call to judge.

        ``cached``: the client's cache gave the answer (the record's ``response.fromCache``).

        A 307/308 that carried a body is remembered, so that the request following it can be
        told from one sent without a body (:meth:`body_lost`).
        """
        headers = ex.headers
        if "cookie" in headers or "set-cookie" in ex.resp_headers:
            self.cookies.add(ex.file)
        # the answer depends only on these: asked once per shape (a dict lookup for most exchanges)
        if headers.keys().isdisjoint(self._asked):  # (most exchanges: none of them; a key of its own length)
            shape: tuple[object, ...] = (ex.method, ex.status, ex.scheme, cached)
        else:
            shape = (ex.method, ex.status, ex.scheme, cached, *[name in headers for name in self._asked])
        try:
            kind = self._kinds[shape]
        except KeyError:
            fits = (k for k in self._transport if k.fits(ex.method, ex.status, headers, ex.scheme, cached))
            kind = next(fits, None)
            if len(self._kinds) < _SHAPES:
                self._kinds[shape] = kind
        if kind is None:
            return None
        if ex.status in self._body_kept and (ex.req_has_body or ex.req_text is not None):
            target = _location_path(ex.resp_headers.get("location"), ex.path)
            if target is not None:
                if len(self._followed) >= _FOLLOWED:
                    del self._followed[next(iter(self._followed))]
                self._followed[(ex.file, ex.method, target)] = None
        return Transport(kind, f"{shown(ex.method)} {shown_path(ex.path)}")

    def body_lost(self, ex: Exchange) -> bool:
        """True when ``ex`` followed a 307/308 that carried a body, and was recorded without one."""
        if not self._followed or ex.req_has_body or ex.req_text is not None:
            return False
        try:
            del self._followed[(ex.file, ex.method, ex.path)]
        except KeyError:
            return False
        return True

    def match(self, ex: Exchange) -> Match | Finding | None:
        """A :class:`Match`, a routing finding, or None (outside path already reported)."""
        prefix = self.router.prefix
        path = ex.path
        if self._hosts and ex.host is not None and not host_matches(ex.host, self._hosts):
            host = shown_host(ex.host)
            if f"host:{host}" in self.reported:
                return None
            if len(self.reported) < _REPORTED:
                self.reported.add(f"host:{host}")
            listed = ", ".join(sorted(self._hosts))
            return Finding(
                "route.outside-api",
                f"{shown(ex.method)} {shown_path(path)} on host {host} is not on the API's hosts "
                f"({listed}); not checked (nor any other exchange with that host)",
                actual=host,
            )
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
        if len(self.reported) < _REPORTED:  # past it, a new path is reported each time: never dropped
            self.reported.add(path)
        return Finding(rule, f"{shown(ex.method)} {path}{says}", actual=path)


_PARAM = repeat("{}")  # (the shape of a segment no template has as a literal; endless, shared, stateless)
_REPORTED = 100_000  # outside paths remembered (about 100 bytes each): a log may bring any number
_FOLLOWED = 1024  # redirects remembered at once: a request follows its redirect closely
_SHAPES = 4096  # (method, status, scheme, headers asked) answers kept: traffic may bring any method


def _location_path(location: str | None, base: str) -> str | None:
    """The path a redirect's ``Location`` names (absolute, or relative to ``base``), or None."""
    if not location:
        return None
    try:
        return urlsplit(urljoin(base, location)).path or "/"
    except ValueError:
        return None


_PORT = re.compile(r":[0-9]*$")


def host_matches(host: str, hosts: frozenset[str]) -> bool:
    """True when ``host`` (``name`` or ``name:port``) is one of ``hosts`` (one given without a port: any)."""
    host = host.lower()
    if host in hosts:
        return True
    bare = host if host.endswith("]") else _PORT.sub("", host)
    return bare in hosts


_HOST_NAME = re.compile(
    r"^(?:(?:[a-z0-9-]{1,63}\.)+[a-z]{1,24}|localhost|[0-9]{1,3}(?:\.[0-9]{1,3}){3}|\[[0-9a-f:.]{2,45}\])"
    r"(?::[0-9]{1,5})?$"
)


def shown_host(host: str) -> str:
    """A host as reports show it: a host name or an IP address as it is, anything else fingerprinted (D20)."""
    host = host.lower()
    if len(host) <= 100 and _HOST_NAME.match(host) and not host.startswith("eyj"):
        return host
    return str(shown(host))
