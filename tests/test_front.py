"""The stages before the stepper take short cuts for plain records; each gives what its general path gives.

Each test holds a short cut (a field read once, a cache key, a check skipped when a compiled check
proves it has nothing to say) to the general path it stands for, on generated traffic and on odd
records that Hypothesis builds from edge values.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsm import exchange as exchange_module
from fsm import pipeline as pipeline_module
from fsm.config import Config
from fsm.exchange import (
    Exchange,
    Parts,
    _host_header,
    _lowered,
    _plain_path,
    _shape_of,
    build_exchange,
    parse_timestamp,
)
from fsm.generate import generate
from fsm.matcher import Match
from fsm.pipeline import make_matcher
from fsm.render import write
from fsm.schemacheck import SchemaChecker
from fsm.spec import load_spec
from fsm.violation import Finding
from tests.test_readers import _edited

SPEC = load_spec()
GENERATED = list(generate(6, seed=5, partial=True))


def _general_build(
    record: Any, index: int, file: str, position: int | None, is_entry: bool, parse_time: bool = True
) -> Exchange | Finding:
    """``build_exchange`` as the functions it writes out compose (the reference its short cut keeps)."""
    problem = _shape_of(record)
    if problem is not None:
        pointer, message = problem
        return Finding("input.bad-record", message, instance_path=pointer, spec_path="exchange")
    req, resp = record["request"], record["response"]
    path = req["path"]
    query = req.get("query") or {}
    host, scheme = req.get("host"), req.get("scheme")
    if not _plain_path(path):
        try:
            parts = urlsplit(path)
        except ValueError:
            return Finding(
                "input.bad-record",
                "request.path is neither a path nor a URL that can be split into its parts",
                instance_path="/request/path",
                spec_path="exchange",
            )
        path = parts.path or "/"
        if parts.query:
            query = {**dict(parse_qsl(parts.query, keep_blank_values=True)), **query}
        if parts.scheme:
            scheme = parts.scheme
            host = parts.netloc.rpartition("@")[2] or host
    headers = _lowered(req.get("headers") or {})
    if not isinstance(host, str) or not host:
        host = _host_header(headers)
    time_text = record.get("time")
    req_body = req.get("body")
    status = resp["status"]
    return Exchange(
        index,
        file,
        position,
        is_entry,
        req["method"].upper(),
        path,
        query,
        headers,
        status if type(status) is int else int(status),
        parse_timestamp(time_text) if time_text and parse_time else None,
        time_text,
        req_body,
        req_body is not None,
        req.get("bodyText"),
        resp.get("body"),
        "body" in resp,
        resp.get("bodyText"),
        _lowered(resp["headers"]) if resp.get("headers") else None,
        host.lower() if isinstance(host, str) and host else None,
        scheme.lower() if isinstance(scheme, str) and scheme else None,
    )


def _same(a: Exchange | Finding, b: Exchange | Finding) -> bool:
    if isinstance(a, Exchange) and isinstance(b, Exchange):
        return a.args() == b.args()
    return a == b


EDGES: list[object] = [
    "drop", None, True, 0, 599, 600, 200.0, 200.5, "", "x", [], {}, {"k": 1}, {"K": "v"}, "/p?q=1",
    "https://user:pw@Host.example:8443/api/v1/vouchers/vch_1?x=2", "http://[::1", "//h/api/v1/x", "%2Fapi",
    "HOST.example", "2026-06-09T12:00:00", "not a time", {"Host": "Other.example", "X-A": "b"},
]  # fmt: skip
PLACES = [
    (),
    ("request",),
    ("request", "method"),
    ("request", "path"),
    ("request", "headers"),
    ("request", "headers", "Authorization"),
    ("request", "headers", "host"),
    ("request", "headers", ":authority"),
    ("request", "query"),
    ("request", "host"),
    ("request", "scheme"),
    ("request", "body"),
    ("request", "bodyText"),
    ("response",),
    ("response", "status"),
    ("response", "headers"),
    ("response", "body"),
    ("response", "bodyText"),
    ("response", "bodyNotKept"),
    ("request", "bodyNotKept"),
    ("time",),
]


def test_every_generated_record_is_built_as_the_shape_check_and_its_parts_build_it() -> None:
    """On generated traffic (and its HAR-like odd spellings) the written-out build equals the composed one."""
    for i, record in enumerate(GENERATED):
        for parse_time in (True, False):
            assert _same(
                build_exchange(record, i, "f.jsonl", i + 1, False, parse_time=parse_time),
                _general_build(record, i, "f.jsonl", i + 1, False, parse_time),
            ), record


@settings(max_examples=300)
@given(
    st.sampled_from(GENERATED),
    st.lists(st.tuples(st.sampled_from(PLACES), st.sampled_from(EDGES)), min_size=1, max_size=4),
)
def test_an_odd_record_is_built_or_refused_as_the_shape_check_and_its_parts_do(
    record: dict[str, Any], edits: list[tuple[tuple[str, ...], object]]
) -> None:
    """Edge values anywhere in a record (URLs, capitals, hosts, wrong types): one exchange, or one finding."""
    odd = _edited(edits, record)
    assert _same(build_exchange(odd, 3, "f.jsonl", 4, False), _general_build(odd, 3, "f.jsonl", 4, False)), (
        edits
    )


def test_a_header_name_in_capitals_is_lowered_even_after_its_lower_case_twin_was_met() -> None:
    """The known lower-case names short-cut lowering only for dicts whose every name is one of them."""
    record = copy.deepcopy(GENERATED[1])
    record["request"]["headers"] = {"content-type": "application/json", "Authorization": "Bearer t"}
    built = build_exchange(record, 0, "f.jsonl", 1, False)
    assert isinstance(built, Exchange)
    assert built.headers == {"content-type": "application/json", "authorization": "Bearer t"}
    assert built.token == "t"


# ------------------------------------------------------------------ matcher


def _exchanges() -> list[Exchange]:
    out = []
    for i, record in enumerate(GENERATED):
        built = build_exchange(record, i, "f.jsonl", i + 1, False)
        assert isinstance(built, Exchange)
        out.append(built)
    return out


EXCHANGES = _exchanges()
ASKED_HEADERS = sorted({h for k in SPEC.transport for h in k.request_headers})


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["GET", "POST", "HEAD", "OPTIONS", "DELETE"]),
            st.sampled_from([0, 101, 200, 301, 304, 307, 308, 404]),
            st.sampled_from([None, "https", "wss", "data"]),
            st.sets(st.sampled_from([*ASKED_HEADERS, "content-type", "authorization"])),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_transport_answers_each_exchange_as_the_kinds_themselves_say_whatever_came_before(
    shapes: list[tuple[str, int, str | None, set[str]]],
) -> None:
    """Answers cached per shape (a shorter key when no header asked about is there) are the kinds' own."""
    matcher = make_matcher(SPEC, Config())
    for method, status, scheme, names in shapes:
        headers = dict.fromkeys(names, "x")
        ex = Exchange(0, "f", 1, False, method, "/api/v1/x", {}, headers, status, scheme=scheme)
        expected = next((k for k in SPEC.transport if k.fits(method, status, headers, scheme)), None)
        got = matcher.transport(ex)
        assert (got.kind if got is not None else None) == expected, (method, status, scheme, names)


def _walked(path: str, method: str) -> Match | list[str] | None:
    """What the router's trie answers for ``path``, walked afresh (no shape, no cache)."""
    from urllib.parse import unquote

    router = make_matcher(SPEC, Config()).router
    stripped = path.strip("/")
    segments = [unquote(s) for s in stripped.split("/")] if stripped else [""]
    found = router._walk(router._root, segments, 0, ())
    if found is None:
        return None
    node, where = found
    op = node.ops.get(method)
    if op is None:
        return sorted(node.ops)
    return Match(op, {name: segments[i] for i, name in where})


SEGMENTS = st.sampled_from(
    [
        *[
            "vouchers",
            "contexts",
            "vch_1",
            "ctx_2",
            "",
            "%2F",
            "auth",
            "sign-in",
            "x y",
            "{}",
            "redeem-voucher",
        ],
        *sorted({seg for op in SPEC.operations for seg in op.path.strip("/").split("/")}),
    ]
)


@settings(max_examples=300)
@given(st.lists(SEGMENTS, min_size=0, max_size=5), st.sampled_from(["GET", "POST", "PUT"]))
def test_a_path_is_routed_by_its_shape_as_the_trie_walked_afresh_routes_it(
    segments: list[str], method: str
) -> None:
    """Shapes (literals kept, other segments as one placeholder) route each path as the trie does."""
    router = make_matcher(SPEC, Config()).router
    path = "/" + "/".join(segments)
    assert router.route(method, path) == _walked(path, method), path


def test_every_generated_path_is_routed_as_the_trie_walked_afresh_routes_it() -> None:
    """All of generated traffic's paths: the same operation and parameters."""
    matcher = make_matcher(SPEC, Config())
    prefix = matcher.router.prefix
    for ex in EXCHANGES:
        rel = ex.path[len(prefix) :]
        assert matcher.router.route(ex.method, rel) == _walked(rel, ex.method), ex.path


# ------------------------------------------------------------------ schemas


def _general_check(
    checker: SchemaChecker, ex: Exchange, match: Match, request: bool = True, response: bool = True
) -> list[Finding]:
    """``SchemaChecker.check`` with no check skipped: every side through its explaining path."""
    op = match.operation
    out: list[Finding] = []
    if request and (op.query_schema is not None or (op.query and ex.query)):
        out.extend(checker._query(ex, op))
    if request and op.request is not None:
        out.extend(checker._request(ex, op))
    if response and ex.status != 0:
        out.extend(checker._response(ex, op))
    return out


BODY_EDITS: list[object] = [
    "drop", None, 0, -1, 10**30, "", "x", "vch_1", [], {}, {"k": 1}, 1.5, True, "2026-06-09T12:00:00Z",
]  # fmt: skip


@settings(max_examples=300)
@given(
    st.sampled_from([r for r in GENERATED if isinstance(r["response"].get("body"), dict)]),
    st.sampled_from(["request", "response"]),
    st.integers(0, 50),
    st.sampled_from(BODY_EDITS),
    st.sampled_from([None, 200, 201, 204, 400, 404, 409]),
    st.booleans(),
)
def test_a_body_is_judged_as_its_explaining_checks_judge_it_whether_clean_or_broken(
    record: dict[str, Any], side: str, pick: int, value: object, status: int | None, request: bool
) -> None:
    """Bodies the compiled check finds clean skip the explaining path: the same findings as taking it."""
    odd = copy.deepcopy(record)
    body = odd[side].get("body")
    if isinstance(body, dict) and body:
        key = sorted(body)[pick % len(body)]
        if value == "drop":
            del body[key]
        else:
            body[key] = value
    if status is not None:
        odd["response"]["status"] = status
    ex = build_exchange(odd, 0, "f.jsonl", 1, False)
    assert isinstance(ex, Exchange)
    match = make_matcher(SPEC, Config()).match(ex)
    if not isinstance(match, Match):
        return
    for fast in (True, False):
        checker = SchemaChecker.shared(SPEC, fast=fast)
        for sides in ((request, True), (True, request)):
            assert checker.check(ex, match, request=sides[0], response=sides[1]) == _general_check(
                checker, ex, match, *sides
            ), (side, pick, value, status)


def test_every_generated_exchange_gets_the_findings_its_explaining_checks_give() -> None:
    """All of generated traffic (refusals, error envelopes, bodies of every operation): the same findings."""
    matcher = make_matcher(SPEC, Config())
    checker = SchemaChecker.shared(SPEC)
    for ex in EXCHANGES:
        match = matcher.match(ex)
        if isinstance(match, Match):
            assert checker.check(ex, match) == _general_check(checker, ex, match), ex.path


def test_a_text_body_or_a_missing_one_is_never_taken_for_a_clean_json_body() -> None:
    """The short cut asks for a JSON body that is there; text or nothing goes the explaining way."""
    record = next(r for r in GENERATED if r["request"].get("body") and r["response"]["status"] == 200)
    checker = SchemaChecker.shared(SPEC)
    for edit in ({"bodyText": "{not json"}, {"body": None}):
        odd = copy.deepcopy(record)
        odd["request"].update(edit)
        if "body" in edit:
            del odd["request"]["body"]
        ex = build_exchange(odd, 0, "f.jsonl", 1, False)
        assert isinstance(ex, Exchange)
        match = make_matcher(SPEC, Config()).match(ex)
        assert isinstance(match, Match)
        assert checker.check(ex, match) == _general_check(checker, ex, match)
        assert checker.check(ex, match) != []


# ------------------------------------------------------------------ pipeline glue


def _general_not_kept(record: Any) -> tuple[str, ...]:
    if type(record) is Parts:
        return record.unkept
    if not isinstance(record, Mapping):
        return ()
    out: tuple[str, ...] = ()
    for side in ("request", "response"):
        half = record.get(side)
        if isinstance(half, Mapping) and half.get("bodyNotKept") is True:
            out += (side,)
    return out


class _Frozen(Mapping[str, Any]):
    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Any:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


@pytest.mark.parametrize("request_says", ["drop", True, False, None, "yes", 1])
@pytest.mark.parametrize("response_says", ["drop", True, False, None, "yes", 1])
def test_the_sides_not_kept_are_read_as_the_general_reading_reads_them(
    request_says: object, response_says: object
) -> None:
    """``bodyNotKept`` true on either side (and nothing else) says that side's body was not kept."""
    record = copy.deepcopy(GENERATED[1])
    for side, says in (("request", request_says), ("response", response_says)):
        if says != "drop":
            record[side]["bodyNotKept"] = says
    assert pipeline_module._not_kept(record) == _general_not_kept(record)
    wrapped = _Frozen({k: _Frozen(v) if isinstance(v, dict) else v for k, v in record.items()})
    assert pipeline_module._not_kept(wrapped) == _general_not_kept(wrapped)


def test_the_shapes_of_odd_records_are_judged_alike_by_the_validator_whatever_their_order() -> None:
    """A log of generated and odd records: the validator's report equals one built from the general paths."""
    odd = [
        _edited([(PLACES[i % len(PLACES)], EDGES[i % len(EDGES)])], GENERATED[i % len(GENERATED)])
        for i in range(len(PLACES) * 3)
    ]
    log = [*GENERATED[:20], *odd, *GENERATED[20:]]
    fast = pipeline_module.Validator()
    for record in log:
        fast.feed(copy.deepcopy(record))
    general = pipeline_module.Validator()
    real_build, real_check = exchange_module.build_exchange, SchemaChecker.check
    try:
        pipeline_module.build_exchange = _general_build  # type: ignore[assignment]
        SchemaChecker.check = _general_check  # type: ignore[method-assign]
        for record in log:
            general.feed(copy.deepcopy(record))
    finally:
        pipeline_module.build_exchange = real_build
        SchemaChecker.check = real_check  # type: ignore[method-assign]
    assert _json(fast) == _json(general)
    assert '"input.bad-record"' in _json(fast)  # (the odd records reached the shape check)


def _json(v: pipeline_module.Validator) -> str:
    out = io.StringIO()
    write(v.finish(), "json", out)
    return out.getvalue()
