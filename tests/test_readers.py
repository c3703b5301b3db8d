"""Readers: JSONL (plain and gzip), HAR (plain, base64, truncated), stdin, format detection."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import orjson
import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fsm.errors import LogFormatError
from fsm.exchange import _SHAPE, _shape_problem
from fsm.generate import generate, to_har
from fsm.models import ExchangeRecord
from fsm.pipeline import Validator
from fsm.readers import detect_format, open_input, read_har

RECORD = {
    "time": "2026-06-09T12:00:00.000Z",
    "request": {"method": "GET", "path": "/api/v1/vouchers/vch_1"},
    "response": {"status": 200, "body": {"id": "vch_1", "status": "RESERVED"}},
}


def _items(path: Path | str, stdin: io.BytesIO | None = None) -> list[tuple[int | None, object, str | None]]:
    _, items = open_input(str(path), stdin)
    return list(items)


def test_jsonl_lines_are_numbered_from_one_and_blank_lines_are_not_records(tmp_path: Path) -> None:
    """Positions are 1-based line numbers; blank lines are skipped, not counted as records."""
    p = tmp_path / "log.jsonl"
    p.write_bytes(orjson.dumps(RECORD) + b"\n\n" + orjson.dumps(RECORD) + b"\n")
    assert [pos for pos, _, _ in _items(p)] == [1, 3]


def test_a_broken_line_is_reported_with_its_column_and_reading_goes_on(tmp_path: Path) -> None:
    """Invalid JSON yields an error for that line only."""
    p = tmp_path / "log.jsonl"
    p.write_bytes(b'{"a": tru\n' + orjson.dumps(RECORD) + b"\n")
    items = _items(p)
    assert items[0][0] == 1 and items[0][1] is None and "column" in (items[0][2] or "")
    assert items[1] == (2, RECORD, None)


def test_invalid_utf8_is_reported_with_its_byte(tmp_path: Path) -> None:
    """A line that is not UTF-8 says so, with the byte offset."""
    p = tmp_path / "log.jsonl"
    p.write_bytes(b'{"a": "\xff\xfe"}\n')
    [(_, rec, err)] = _items(p)
    assert rec is None and err is not None and "UTF-8" in err


def test_deep_nesting_is_an_error_not_a_crash(tmp_path: Path) -> None:
    """A line nested thousands deep is reported (orjson >= 3.10 stops at 1024), not a RecursionError."""
    p = tmp_path / "log.jsonl"
    p.write_bytes(b"[" * 5000 + b"]" * 5000 + b"\n")
    [(_, rec, err)] = _items(p)
    assert rec is None and err


def test_a_har_entry_nested_too_deeply_is_reported_alone_in_little_memory(tmp_path: Path) -> None:
    """A HAR entry 20,000 levels deep: that entry is unreadable, the others are read (D21).

    ijson's ``items`` needed memory growing with the square of the depth (about 1 GB here).
    """
    import tracemalloc

    har = to_har(list(generate(1, seed=4, partial=False)))
    har["log"]["entries"][1]["cache"] = "DEEP"
    text = orjson.dumps(har).decode().replace('"DEEP"', "[" * 20_000 + "]" * 20_000)
    p = tmp_path / "deep.har"
    p.write_text(text)
    tracemalloc.start()
    try:
        items = _items(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [(i, err) for i, _, err in items if err] == [(1, "entry nested deeper than 1024 levels")]
    assert len(items) == len(har["log"]["entries"]) and all(rec for i, rec, _ in items if i != 1)
    assert peak < 50_000_000, peak


def test_gzip_is_detected_from_the_content_not_the_name(tmp_path: Path) -> None:
    """A gzip file named .log reads like its plain twin."""
    p = tmp_path / "capture.log"
    p.write_bytes(gzip.compress(orjson.dumps(RECORD) + b"\n"))
    info, items = open_input(str(p))
    assert info.compressed and info.format == "jsonl"
    assert list(items) == [(1, RECORD, None)]


def test_har_is_detected_from_the_content(tmp_path: Path) -> None:
    """A HAR file named .json is read as HAR."""
    p = tmp_path / "capture.json"
    p.write_text(json.dumps(to_har([RECORD])))
    info, items = open_input(str(p))
    assert info.format == "har"
    [(pos, rec, err)] = list(items)
    assert pos == 0 and err is None and rec is not None
    assert rec["request"]["path"] == "/api/v1/vouchers/vch_1"
    assert rec["response"]["body"] == RECORD["response"]["body"]


def test_har_base64_content_is_decoded() -> None:
    """Response content with encoding base64 is decoded before parsing."""
    har = to_har([RECORD])
    content = har["log"]["entries"][0]["response"]["content"]
    content["text"] = __import__("base64").b64encode(content["text"].encode()).decode()
    content["encoding"] = "base64"
    [(_, rec, _)] = list(read_har(orjson.dumps(har)))
    assert rec is not None and rec["response"]["body"] == RECORD["response"]["body"]


def test_a_truncated_har_keeps_every_entry_before_the_break() -> None:
    """Entries before the cut are read; the cut entry is reported with its index."""
    text = json.dumps(to_har(list(generate(2, seed=3))), indent=1)
    cut = text[: int(len(text) * 0.6)]
    items = list(read_har(cut.encode()))
    good = [i for i in items if i[2] is None]
    bad = [i for i in items if i[2] is not None]
    assert len(good) >= 5
    assert len(bad) == 1 and bad[0][0] == len(good)
    assert "truncated" in (bad[0][2] or "") or "not valid JSON" in (bad[0][2] or "")


def test_a_har_without_entries_is_one_file_level_problem() -> None:
    """A JSON document without log.entries is reported once, at the file."""
    assert list(read_har(b'{"log": {"pages": []}}')) == [(None, None, "not a HAR file: no log.entries array")]


def test_standard_input_is_read_with_a_dash() -> None:
    """'-' reads the stream given as stdin."""
    stdin = io.BytesIO(orjson.dumps(RECORD) + b"\n")
    info, items = open_input("-", stdin)
    assert info.label == "<stdin>"
    assert list(items) == [(1, RECORD, None)]


def test_a_file_that_cannot_be_opened_is_one_unreadable_record(tmp_path: Path) -> None:
    """A missing file or a folder is one file-level problem, so the other inputs of a run go on (D21)."""
    for path, why in ((tmp_path / "nope.jsonl", "cannot open"), (tmp_path, "is a directory")):
        info, items = open_input(str(path))
        ((position, record, error),) = list(items)
        assert info.label == str(path) and position is None and record is None
        assert error is not None and why in error


@pytest.mark.parametrize(
    ("head", "fmt"),
    [
        (b'{"log": {}}', "har"),
        (b'\n  {\n "log"', "har"),
        (b'{"time": 1}', "jsonl"),
        (b"", "jsonl"),
        (b"garbage", "jsonl"),
        (b'{\n  "comment": "exported",\n  "log": {\n    "version": "1.2"', "har"),
        (b'{"time": 1, "log": {"a": 1}}\n{"time": 2}', "jsonl"),
        (b'{\n  "time": 1', "jsonl"),
    ],
)
def test_format_detection(head: bytes, fmt: str) -> None:
    """A leading {"log" means HAR, as does an object over several lines naming a "log" object."""
    assert detect_format(head) == fmt


def test_a_file_named_har_is_read_as_har_whatever_member_comes_first(tmp_path: Path) -> None:
    """A one-line HAR whose first member is not "log" is still read as HAR by its name."""
    entry = {
        "startedDateTime": "2026-01-01T00:00:00.000Z",
        "time": 1,
        "request": {"method": "GET", "url": "https://x/api/v1/ping", "headers": []},
        "response": {"status": 200, "headers": [], "content": {"size": 0, "text": ""}},
    }
    path = tmp_path / "capture.har"
    path.write_text(json.dumps({"comment": "tool", "log": {"version": "1.2", "entries": [entry]}}))
    info, items = open_input(str(path))
    assert info.format == "har"
    ((position, record, error),) = list(items)
    assert error is None and record is not None and position == 0


@given(st.binary(max_size=400))
def test_readers_never_raise_on_arbitrary_bytes(data: bytes) -> None:
    """Any bytes at all give records or errors, never an exception."""
    for reader_input in (data, b'{"log": {"entries": [' + data):
        for _, rec, err in read_har(reader_input):
            assert rec is not None or err is not None
    stream = io.BytesIO(data)
    _, items = open_input("-", stream)
    for _, rec, err in items:
        assert err is None or (isinstance(err, str) and rec is None)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-10, 1000) | st.floats(-1, 1000) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text(max_size=5), inner, max_size=2),
    max_leaves=4,
)
EDGES = ["drop", None, True, 0, -1, 599, 600, 200.0, 200.5, "", "x", [], {}, {"k": 1}, {"k": "v"}]
SHAPE_PLACES = [
    (),
    ("request",),
    ("request", "method"),
    ("request", "path"),
    ("request", "headers"),
    ("request", "headers", "authorization"),
    ("request", "query"),
    ("request", "bodyText"),
    ("response",),
    ("response", "status"),
    ("response", "headers"),
    ("response", "headers", "content-type"),
    ("response", "bodyText"),
    ("time",),
]


def _edited(edits: list[tuple[tuple[str, ...], object]], base: object = None) -> object:
    """A copy of ``base`` (default: RECORD with a header) with each edit made: a value set, or dropped."""
    if base is None:
        base = {**RECORD, "request": {**RECORD["request"], "headers": {"a": "b"}}}
    record: object = json.loads(json.dumps(base))
    for place, value in edits:
        if not place:
            record = value if value != "drop" else {}
            continue
        parent = record
        for key in place[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict):
            if value == "drop":
                parent.pop(place[-1], None)
            else:
                parent[place[-1]] = value
    return record


def _shape_verdicts(record: object) -> tuple[bool, bool, bool]:
    """(the shipped schema accepts, the model accepts, the explaining check accepts)."""
    try:
        ExchangeRecord.model_validate(record)
        modelled = True
    except pydantic.ValidationError:
        modelled = False
    return bool(_SHAPE.is_valid(record)), modelled, _shape_problem(record) is None


@pytest.mark.parametrize("place", SHAPE_PLACES)
def test_the_schema_the_model_and_the_explaining_check_agree_on_every_edge_value(
    place: tuple[str, ...],
) -> None:
    """Each place of the record, set to each edge value (or dropped): one verdict from all three forms."""
    for value in EDGES:
        schema, model, explained = _shape_verdicts(_edited([(place, value)]))
        assert schema == model == explained, (place, value, schema, model, explained)


@given(st.lists(st.tuples(st.sampled_from(SHAPE_PLACES), st.sampled_from(EDGES) | JSONISH), max_size=3))
def test_the_schema_the_model_and_the_explaining_check_agree(
    edits: list[tuple[tuple[str, ...], object]],
) -> None:
    """Several arbitrary edits at once: the three forms of the record shape accept exactly the same."""
    schema, model, explained = _shape_verdicts(_edited(edits))
    assert schema == model == explained, edits


def test_the_validator_compiles_the_shipped_exchange_schema_not_a_copy_of_it() -> None:
    """One source: the compiled shape check is built from schemas/exchange.schema.json."""
    from fsm._resources import load_schema

    assert load_schema("exchange")["$id"].endswith("/exchange.schema.json")
    edited = json.loads(json.dumps(RECORD))
    edited["response"]["status"] = 600
    assert not _SHAPE.is_valid(edited)
    assert load_schema("exchange")["$defs"]["ResponseRecord"]["properties"]["status"]["maximum"] == 599


@pytest.mark.parametrize(("status", "judged"), [(200.0, True), (200.5, False), (True, False), ("200", False)])
def test_a_status_written_as_a_whole_float_is_that_status_and_anything_else_is_a_bad_record(
    status: object, judged: bool
) -> None:
    """JSON has one kind of number: 200.0 is the status 200 (as JSON Schema says); 200.5 is not a status."""
    from fsm.pipeline import Validator

    record = json.loads(json.dumps(RECORD))
    record["response"]["status"] = status
    found = Validator().feed(record)
    bad = [v for v in found if v.rule_id == "input.bad-record"]
    if judged:
        assert bad == []
    else:
        assert [v.instance_path for v in bad] == ["/response/status"]


def test_a_har_status_that_is_not_a_number_is_a_bad_record_not_a_missing_response() -> None:
    """HAR entries keep a malformed status, so the shape check names it; a missing one means no answer."""
    from fsm.pipeline import Validator

    har = to_har(list(generate(1, seed=2, partial=False)))
    har["log"]["entries"][0]["response"]["status"] = "200"
    del har["log"]["entries"][1]["response"]["status"]
    v = Validator()
    v.feed_file("-", stdin=io.BytesIO(json.dumps(har).encode()))
    found = {
        (x.rule_id, x.instance_path)
        for x in v.finish().violations
        if str(x.location).endswith(("[0]", "[1]"))
    }
    assert ("input.bad-record", "/response/status") in found
    assert any(rule == "input.no-response" for rule, _ in found)


class _Counting(io.BytesIO):
    """Standard input that remembers how far it has been read."""

    furthest = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.furthest = max(self.furthest, self.tell())
        return chunk

    def readinto(self, buffer: Any) -> int:
        n = super().readinto(buffer)
        self.furthest = max(self.furthest, self.tell())
        return n


def test_a_har_is_streamed_entry_by_entry() -> None:
    """The first entry arrives long before the file has been read: memory does not follow file size."""
    data = orjson.dumps(to_har(list(generate(60, seed=4, partial=False))))
    stdin = _Counting(data)
    _, items = open_input("-", stdin)
    first = next(items)
    assert first[0] == 0 and first[2] is None
    assert stdin.furthest < len(data) // 4, (stdin.furthest, len(data))
    rest = list(items)
    assert [i for i, _, _ in rest] == list(range(1, len(rest) + 1))


@pytest.mark.parametrize("how", ["truncated", "bad-utf8", "not-a-har"])
def test_a_broken_har_file_is_salvaged_once_with_no_entry_twice(how: str, tmp_path: Path) -> None:
    """When streaming stops at a break, the file is salvaged from there: each entry judged once."""
    text = json.dumps(to_har(list(generate(3, seed=5, partial=False))), indent=1).encode()
    if how == "truncated":
        text = text[: len(text) * 2 // 3]
    elif how == "bad-utf8":
        middle = text.index(b'"startedDateTime"', len(text) // 2)
        text = text[:middle] + b'"x\xff\xfe": 1, ' + text[middle:]
    else:
        text = b'{"log": {"pages": []}}'
    p = tmp_path / "capture.har"
    p.write_bytes(text)
    items = _items(p)
    entries = [i for i, _, _ in items if i is not None]
    assert len(entries) == len(set(entries)), entries  # no entry twice
    problems = [e for _, _, e in items if e]
    assert problems, items
    if how == "not-a-har":
        assert problems == ["not a HAR file: no log.entries array"]
    else:
        assert len([1 for _, r, _ in items if r is not None]) >= 5


def test_a_truncated_gzip_har_is_salvaged_from_what_decompresses(tmp_path: Path) -> None:
    """A .har.gz cut short: the entries in the part that decompresses are judged, the cut reported."""
    data = gzip.compress(json.dumps(to_har(list(generate(3, seed=6, partial=False))), indent=1).encode())
    p = tmp_path / "capture.har.gz"
    p.write_bytes(data[: len(data) * 3 // 4])
    items = _items(p)
    assert len([r for _, r, _ in items if r is not None]) >= 5
    assert [e for _, _, e in items if e]


_ODD = "ODD-VALUE-MARKER"


@pytest.mark.parametrize(
    ("where", "raw"),
    [
        ("content", '{"encoding": "base64", "text": "e30=\u00e9"}'),  # base64 that is not ASCII
        ("header", "1" * 5000),  # a number too long to turn into text
        ("header", "[" * 1000 + "]" * 1000),  # nested deeper than any parser here allows
        ("method", "1" * 5000),
    ],
    ids=["base64-not-ascii", "header-5000-digits", "header-1000-deep", "method-5000-digits"],
)
def test_odd_values_in_a_har_entry_are_reported_never_raised(where: str, raw: str, tmp_path: Path) -> None:
    """Values no HAR should hold: every entry is still read or reported, and the run goes on (D21)."""
    har = to_har([RECORD, RECORD])
    entry = har["log"]["entries"][1]
    if where == "content":
        entry["response"]["content"] = _ODD
    elif where == "header":
        entry["request"]["headers"].append({"name": "x-odd", "value": _ODD})
    else:
        entry["request"]["method"] = _ODD
    path = tmp_path / "odd.har"
    path.write_text(json.dumps(har).replace(f'"{_ODD}"', raw))
    items = _items(path)
    assert [i for i, _, _ in items] == [0, 1], items
    assert items[0][1] is not None and items[0][2] is None


def test_a_parser_error_never_quotes_the_input(tmp_path: Path) -> None:
    """The streaming parser shows an excerpt of the input; a token broken off there must not leak (D20)."""
    secret = "sekrit-TOKEN-1234567890"
    text = json.dumps(to_har([RECORD]))
    text = text.replace('"entries": [', f'"entries": [{{"request": {{"x": "Bearer {secret}" @@@ }}}}, ', 1)
    for stdin in (io.BytesIO(text.encode()), None):
        path = tmp_path / "broken.har"
        path.write_text(text)
        items = _items("-", stdin) if stdin is not None else _items(path)
        errors = [e for _, _, e in items if e]
        assert errors and all(secret[-10:] not in e for e in errors), errors


def test_a_broken_har_from_a_named_pipe_is_reported_not_waited_on(tmp_path: Path) -> None:
    """A pipe cannot be read twice: the break is reported instead of reading it again (which would hang)."""
    import os
    import threading

    fifo = tmp_path / "pipe.har"
    os.mkfifo(fifo)
    text = json.dumps(to_har([RECORD, RECORD]))
    writer = threading.Thread(target=lambda: fifo.write_text(text[: len(text) * 2 // 3]))
    writer.start()
    try:
        items = _items(fifo)
    finally:
        writer.join(timeout=5)
    assert items[0][2] is None and any("cannot be read past entry" in (e or "") for _, _, e in items)


def test_header_names_are_matched_in_any_case_whatever_names_came_before() -> None:
    from fsm.exchange import Exchange, build_exchange

    def built(headers: dict[str, str]) -> Exchange:
        record = {"request": {"method": "get", "path": "/x", "headers": headers}, "response": {"status": 200}}
        ex = build_exchange(record, 0, "f", 1, False)
        assert isinstance(ex, Exchange)
        return ex

    first = built({"content-type": "application/json", "authorization": "Bearer one"})
    assert first.token == "one" and first.method == "GET"
    again = built(
        {"Authorization": "Bearer two", "content-type": "application/json"}
    )  # names seen, other case
    assert again.token == "two" and set(again.headers) == {"authorization", "content-type"}
    assert built({"Authorization": "Bearer five"}).token == "five"  # and again: no mixed case is remembered
    assert built({"AUTHORIZATION": "bearer three"}).token == "three"
    assert built({"x-trace": "1"}).token is None
    assert (
        Exchange(*built({"authorization": "Bearer four"}).args()).token == "four"
    )  # (as the worker sends it)


def test_a_request_alone_is_typed_as_build_exchange_types_its_record_fast_path_or_not() -> None:
    """request_exchange (what predict asks about) equals build_exchange of the same record, bad ones too."""
    from fsm.exchange import Exchange, build_exchange, request_exchange

    cases: list[tuple[Any, Any, Any, Any]] = [
        ("post", "/api/v1/vouchers/v1/redeem-voucher", {"Authorization": "Bearer t", "x-a": "1"}, {"a": [1]}),
        ("GET", "/api/v1/vouchers/v1", {"Host": "API.Example:8443"}, None),
        ("GET", "/api/v1/vouchers/v1", None, None),
        ("GET", "/api/v1/vouchers?status=OPEN", {}, None),  # a query: the record's way
        ("GET", "https://api.example/api/v1/vouchers", {}, None),  # a URL: its host
        ("GET", "/x", {"authorization": 7}, None),  # not a string: a finding
        ("", "/x", {}, None),
        ("GET", "", {}, None),
    ]
    for method, path, headers, body in cases:
        request: dict[str, Any] = {"method": method, "path": path, "headers": dict(headers or {})}
        if body is not None:
            request["body"] = body
        want = build_exchange({"request": request, "response": {"status": 200}}, -1, "f", None, False)
        got = request_exchange(method, path, headers, body, "f")
        if isinstance(want, Exchange):
            assert isinstance(got, Exchange) and got.args() == want.args(), (method, path)
            assert got.token == want.token
        else:
            assert got == want, (method, path, headers)


def test_a_byte_order_mark_before_the_first_jsonl_record_is_skipped(tmp_path: Path) -> None:
    """Windows tools write a UTF-8 BOM: line 1 is still a record, in a plain and in a gzip file."""
    plain = tmp_path / "bom.jsonl"
    plain.write_bytes(b"\xef\xbb\xbf" + orjson.dumps(RECORD) + b"\n" + orjson.dumps(RECORD) + b"\n")
    packed = tmp_path / "bom.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    for p in (plain, packed):
        assert _items(p) == [(1, RECORD, None), (2, RECORD, None)]


def test_a_har_method_that_is_not_a_string_is_a_bad_record() -> None:
    """method: null in a HAR entry is a record of the wrong shape, as in JSONL, not a method named NULL."""
    har = to_har(list(generate(1, seed=2, partial=False)))
    har["log"]["entries"][0]["request"]["method"] = None
    _, record, error = next(iter(read_har(orjson.dumps(har))))
    assert error is None and record is not None
    v = Validator()
    [violation] = [x for x in v.feed(record) if x.rule_id.startswith(("input", "route"))]
    assert violation.rule_id == "input.bad-record" and violation.instance_path == "/request/method"


@pytest.mark.parametrize(
    "doc",
    [
        {"log": [{"entries": 1}, [{"request": {}}]]},  # a key left over from a closed object
        [{"log": 1}, {"entries": [{"request": {}}]}],
        {"log": {"creator": {"entries": [{"request": {}}]}, "entries": "none"}},
    ],
)
def test_only_log_entries_at_the_top_are_read_as_entries(doc: object) -> None:
    """An "entries" anywhere but at log.entries is no entry, as with ijson's items."""
    from fsm.readers.har import stream_entries

    assert list(stream_entries(io.BytesIO(orjson.dumps(doc)))) == []


def test_a_har_with_a_byte_order_mark_streams(tmp_path: Path) -> None:
    """A BOM before a HAR: read as it streams, from a file and from standard input."""
    data = b"\xef\xbb\xbf" + orjson.dumps(to_har(list(generate(1, seed=2, partial=False))))
    p = tmp_path / "bom.har"
    p.write_bytes(data)
    from_file = _items(p)
    _, items = open_input("-", io.BufferedReader(io.BytesIO(data)))
    assert from_file == list(items) and len(from_file) > 5 and not [e for _, _, e in from_file if e]


def test_gzipped_standard_input_read_twice_is_a_clear_error() -> None:
    """Standard input is read to its end once, gzip or not: a second read is an error, not 0 records."""
    stdin = io.BufferedReader(io.BytesIO(gzip.compress(orjson.dumps(RECORD) + b"\n")))
    _, items = open_input("-", stdin)
    assert len(list(items)) == 1
    with pytest.raises(LogFormatError, match="read to its end already"):
        open_input("-", stdin)


def test_a_har_parser_error_never_quotes_the_input() -> None:
    """ijson's message holds an excerpt of the input (a password here): the kit says it in its own words."""
    data = (
        b'{"log":{"entries":[{"request":{"method":"POST","url":"http://x/api/v1/auth/sign-in",'
        b'"postData":{"text":"{\\"password\\":\\"HUNTERsecret99\xff\\"}"}},"response":{"status":200}}]}}'
    )
    _, items = open_input("-", io.BufferedReader(io.BytesIO(data)))
    [(_, record, error)] = list(items)
    assert record is None and error is not None
    assert "HUNTER" not in error and "lexical" not in error
    assert error == "the HAR cannot be read past entry 0: the file is truncated or not valid JSON there; " + (
        "later entries cannot be read"
    )


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_a_utf16_log_is_one_problem_that_says_how_to_convert_it(encoding: str, tmp_path: Path) -> None:
    """A HAR saved as UTF-16 ("Unicode" on Windows) or UTF-32: one problem naming iconv, not a flood."""
    p = tmp_path / "capture.har"
    p.write_bytes(orjson.dumps(to_har(list(generate(1, seed=2)))).decode().encode(encoding))
    [(position, record, error)] = _items(p)
    assert position is None and record is None and error is not None
    assert f"iconv -f {encoding.upper()} -t UTF-8" in error


def test_standard_input_with_a_file_level_problem_is_not_read_twice() -> None:
    """UTF-16 (or an undecompressable gzip) on stdin: one problem, then stdin counts as read."""
    stdin = io.BufferedReader(io.BytesIO(orjson.dumps(RECORD).decode().encode("utf-16")))
    _, items = open_input("-", stdin)
    assert [e is not None for _, _, e in items] == [True]
    with pytest.raises(LogFormatError, match="read to its end already"):
        open_input("-", stdin)


def test_junk_after_the_entries_is_one_problem_from_a_file_and_from_stdin(tmp_path: Path) -> None:
    """A HAR followed by junk: every entry judged and one problem saying so, whichever way it is read."""
    har = to_har(list(generate(1, seed=2, partial=False)))
    data = orjson.dumps(har) + b'\n{"log": {"entries": []}}'
    p = tmp_path / "junk-after.har"
    p.write_bytes(data)
    from_file = _items(p)
    _, items = open_input("-", io.BufferedReader(io.BytesIO(data)))
    assert list(items) == from_file
    problems = [(i, e) for i, _, e in from_file if e]
    n = len(har["log"]["entries"])
    assert (
        len(problems) == 1 and problems[0][0] is None and f"all {n} entries were read" in str(problems[0][1])
    )
    assert len(from_file) == len(har["log"]["entries"]) + 1


class _Trickle(io.RawIOBase):
    """A pipe that hands over its first byte alone, then the rest: format detection must not be fooled."""

    def __init__(self, data: bytes) -> None:
        self._parts = [data[:1], data[1:]]

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        part = self._parts.pop(0) if self._parts else b""
        if len(part) > len(buffer):
            self._parts.insert(0, part[len(buffer) :])
            part = part[: len(buffer)]
        buffer[: len(part)] = part
        return len(part)


@pytest.mark.parametrize("kind", ["gzip", "bom", "har"])
def test_standard_input_that_arrives_a_byte_at_first_is_read_as_its_format(kind: str) -> None:
    """gzip magic, a BOM and a HAR's opening are told from a pipe whose first read brings one byte."""
    har = orjson.dumps(to_har(list(generate(1, seed=2, partial=False))))
    plain = orjson.dumps(RECORD) + b"\n"
    data = {"gzip": gzip.compress(plain), "bom": b"\xef\xbb\xbf" + plain, "har": har}[kind]
    info, items = open_input("-", io.BufferedReader(_Trickle(data), buffer_size=8192))
    got = list(items)
    assert info.format == ("har" if kind == "har" else "jsonl") and not [e for _, _, e in got if e]
    assert info.compressed == (kind == "gzip")


def test_standard_input_read_to_its_end_is_not_read_again() -> None:
    """Less than 4 kB then the end (a terminal's ^D): no further read, which would wait for a second ^D."""

    class Terminal(io.RawIOBase):
        def __init__(self) -> None:
            self.reads = 0
            self.parts = [orjson.dumps(RECORD) + b"\n", b""]  # one line, then ^D (not sticky)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            self.reads += 1
            assert self.parts, "read again after the end: a terminal would wait for another ^D"
            part = self.parts.pop(0)
            buffer[: len(part)] = part
            return len(part)

    tty = Terminal()
    _, items = open_input("-", io.BufferedReader(tty))
    assert [e for _, _, e in items] == [None] and tty.reads == 2


def test_closed_standard_input_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """With file descriptor 0 closed Python's sys.stdin is None: a LogFormatError, not an AttributeError."""
    import sys

    monkeypatch.setattr(sys, "stdin", None)
    with pytest.raises(LogFormatError, match="no standard input"):
        open_input("-")


def test_parse_timestamp_remembers_only_the_last_time_and_never_answers_for_another() -> None:
    """The one-entry memory of ``parse_timestamp`` gives each text its own seconds, bad ones None."""
    from fsm.exchange import parse_timestamp

    a, b = "2026-06-09T12:00:00.005Z", "2026-06-09T12:00:01+01:00"
    for text, seconds in [
        (a, 1781006400.005),
        (a, 1781006400.005),
        (b, 1781002801.0),
        ("", None),
        ("not a time", None),
        (a, 1781006400.005),
        ("2026-06-09T12:00:00", 1781006400.0),
    ]:
        assert parse_timestamp(text) == seconds, text


def test_records_split_by_bare_carriage_returns_are_named_with_the_conversion(tmp_path: Path) -> None:
    """A JSONL file with old Mac line ends reads as one line; its error says why and how to convert."""
    path = tmp_path / "cr.jsonl"
    path.write_bytes(b'{"a": 1}\r{"b": 2}\r')
    _, items = open_input(str(path))
    ((position, record, error),) = list(items)
    assert position == 1 and record is None
    assert error is not None and "bare carriage returns" in error and "tr '\\r' '\\n'" in error
