"""The validator end to end: streaming, accounting, secrets, the library API, robustness."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from fsm import ExchangeRecord, Validator, validate_log
from fsm.config import Config
from fsm.generate import generate

REPO = Path(__file__).resolve().parents[1]


def test_the_clean_example_passes_with_no_violation() -> None:
    """examples/session-two-payments.jsonl and .har are clean."""
    for name in ("session-two-payments.jsonl", "session-two-payments.har"):
        report = validate_log(REPO / "examples" / name)
        assert report.violations == (), name
        assert report.exit_code == 0


def test_the_broken_example_fails_on_each_planted_mistake() -> None:
    """examples/broken.jsonl raises the rules it was built to raise."""
    report = validate_log(REPO / "examples" / "broken.jsonl")
    rules = set(report.by_rule())
    assert {
        "schema.request",
        "machine.illegal-transition",
        "time.accepted-after-expiry",
        "actor.wrong-role",
        "observe.independence",
        "session.reserve-before-join",
        "session.close-with-open-vouchers",
    } <= rules
    assert report.exit_code == 1


def test_the_headline_violation_is_the_most_severe_then_shallowest_then_earliest() -> None:
    """report.best_violation() (docs/library.md) picks one violation to show first, or None when clean."""
    report = validate_log(REPO / "examples" / "broken.jsonl")
    best = report.best_violation()
    assert best is not None
    top = max(v.severity.rank for v in report.violations)
    rivals = [v for v in report.violations if v.severity.rank == top]
    shallowest = min(v.instance_path.count("/") for v in rivals)
    assert best.severity.rank == top
    assert best.instance_path.count("/") == shallowest
    assert best.exchange_index == min(
        v.exchange_index for v in rivals if v.instance_path.count("/") == shallowest
    )
    assert validate_log(REPO / "examples" / "session-two-payments.jsonl").best_violation() is None


def test_generated_traffic_gives_no_error_or_warning() -> None:
    """Soundness: valid generated flows raise nothing above info."""
    report = _validate(list(generate(40, seed=9)))
    assert report.errors == 0 and report.warnings == 0, [
        v.message for v in report.violations if v.severity.rank
    ]


@pytest.mark.parametrize("seed", range(6))
def test_complete_generated_traffic_leaves_nothing_unfinished(seed: int) -> None:
    """generate(partial=False) (the CLI's --complete) ends every flow: strict and require-complete pass."""
    v = Validator(config=Config(strict=True, require_complete=True))
    for r in generate(8, seed=seed, partial=False):
        v.feed(r)
    report = v.finish()
    assert report.exit_code == 0, [v.message for v in report.violations]
    assert all(e.final for e in report.entities)


def _validate(records: list[Any]) -> Any:
    v = Validator()
    for r in records:
        v.feed(r)
    return v.finish()


def test_feed_returns_the_violations_each_exchange_causes() -> None:
    """The embedded API reports problems as they happen."""
    records = list(generate(1, seed=2, vouchers_per_session=1, partial=False))
    v = Validator()
    assert all(v.feed(r) == [] for r in records)
    again = dict(next(r for r in records if r["request"]["path"].endswith("/resolve-voucher")))
    again["time"] = records[-1]["time"]
    problems = v.feed(again)
    assert [p.rule_id for p in problems] == ["machine.illegal-transition"]


def test_pydantic_exchange_records_are_accepted() -> None:
    """Exchanges may be built from the pydantic model as well as from dicts."""
    records = list(generate(1, seed=4, vouchers_per_session=2, partial=False))
    v = Validator()
    for r in records:
        v.feed(ExchangeRecord.model_validate(r))
    report = v.finish()
    assert report.totals.judged == len(records)
    assert report.errors == 0 and report.warnings == 0


def test_totals_add_up_with_unreadable_records(tmp_path: Path) -> None:
    """read == judged + unreadable, and each unreadable record has its own violation (D21)."""
    p = tmp_path / "mixed.jsonl"
    good = [orjson.dumps(r).decode() for r in generate(1, seed=1, partial=False)]
    p.write_text("\n".join([good[0], "{oops", '{"request": 1}', *good[1:], "[1, 2"]) + "\n")
    report = validate_log(p)
    assert report.totals.read == len(good) + 3
    assert report.totals.unreadable == 3
    assert report.totals.adds_up
    assert sorted(str(v.location) for v in report.violations if v.rule_id.startswith("input.")) == sorted(
        [f"{p}:2", f"{p}:3", f"{p}:{len(good) + 3}"]
    )


def test_secrets_never_appear_in_any_output(tmp_path: Path) -> None:
    """Tokens and passwords are replaced by fingerprints in every report format (D20)."""
    from fsm.render import render

    records = list(generate(2, seed=5, partial=False))
    secrets = {
        r["response"]["body"]["authorization"]["token"]
        for r in records
        if r["request"]["path"].endswith("/sign-in")
    }
    secrets |= {
        r["request"]["body"]["data"]["password"]
        for r in records
        if r["request"]["path"].endswith("/sign-in") and "password" in r["request"]["body"]["data"]
    }
    # make every exchange a violation that could echo its token: replay each call twice
    p = tmp_path / "leaky.jsonl"
    bad_sign_in = {
        "request": {
            "method": "POST",
            "path": "/api/v1/auth/sign-in",
            "body": {"type": "mobile-device", "data": {"installationId": "x", "password": "hunter2-secret"}},
        },
        "response": {"status": 200, "body": {"authorization": {"token": 42}}},
    }
    secrets.add("hunter2-secret")
    # secrets in the wrong place: a form body, a list, a bare string, an array where an object belongs
    refused = {"status": 400, "body": {"code": "validation_failed"}}
    misplaced = [
        {
            "request": {
                "method": "POST",
                "path": "/api/v1/auth/sign-in",
                "bodyText": "password=PWSECRET_form&token=TKSECRET_form",
            },
            "response": refused,
        },
        *(
            {"request": {"method": "POST", "path": "/api/v1/auth/sign-in", "body": body}, "response": refused}
            for body in (
                [{"password": "PWLEAK_list"}],
                "PWLEAK_bare",
                {"type": "mobile-device", "data": ["PWLEAK_array"]},
            )
        ),
    ]
    long_password, long_token = "PWLONG" + "x" * 80, "TKLONG" + "y" * 150  # shown cut short, if at all
    misplaced += [
        {
            "request": {"method": "POST", "path": "/api/v1/auth/sign-in", "body": body},
            "response": refused,
        }
        for body in (long_password, {"type": "mobile-device", "data": {"S3cr3tAsAKey!": "x"}})
    ]
    misplaced += [
        {
            "request": {"method": "POST", "path": "/api/v1/auth/sign-in", "bodyText": text},
            "response": refused,
        }
        for text in ('{"type": "x", "data": {"password": "PWCUTSHORT', "{'password': 'PWSINGLEQ'}")
    ]
    misplaced.append(
        {
            "request": {"method": "POST", "path": "/api/v1/auth/sign-in", "body": {"type": "x"}},
            "response": {"status": 401, "body": {"token": long_token, "note": "not an envelope"}},
        }
    )
    secrets |= {"PWSECRET_form", "TKSECRET_form", "PWLEAK_list", "PWLEAK_bare", "PWLEAK_array"}
    secrets |= {long_password[:12], long_token[:12], "S3cr3tAsAKey!", "PWCUTSHORT", "PWSINGLEQ"}
    # a secret fixed as an entity's terms by one exchange and quoted by the next (its own scrubber does
    # not know it), and an id that reads as a bearer token
    terms = list(generate(300, seed=1))[:160]
    assert "expectedPayment" in terms[140]["request"]["body"]
    terms[140]["request"]["body"]["expectedPayment"] = {"password": "PWTERMS_earlier"}
    secrets |= {"PWTERMS_earlier", "abcdefghijklmnopq"}
    bearer_id = {
        "request": {"method": "GET", "path": "/api/v1/vouchers/Bearer%20abcdefghijklmnopq"},
        "response": {"status": 200, "body": {"id": "Bearer abcdefghijklmnopq", "status": "NOPE"}},
    }
    log = [*records, *records, bad_sign_in, *misplaced, *terms, bearer_id]
    p.write_text("\n".join(orjson.dumps(r).decode() for r in log) + "\n")
    report = validate_log(p)
    assert report.errors > 0
    assert "machine.terms-changed" in report.by_rule()  # the earlier terms were quoted, scrubbed
    for fmt in ("text", "json", "junit", "sarif"):
        out = render(report, fmt)
        for secret in secrets:
            assert secret not in out, (fmt, secret[:12])
    wrong_role = REPO / "tests" / "corpus" / "actor-wrong-role" / "traffic.jsonl"
    assert "tok:" in render(validate_log(wrong_role), "text")


record_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)


@given(st.lists(record_values, max_size=6), st.data())
def test_any_records_at_all_are_judged_or_reported_never_raised(junk: list[Any], data: st.DataObject) -> None:
    """Fuzz: arbitrary values, and real exchanges with parts replaced, never raise (D21)."""
    base = list(generate(1, seed=data.draw(st.integers(0, 50)), vouchers_per_session=2))
    mutated = []
    for r in base:
        r = json.loads(json.dumps(r))
        if data.draw(st.booleans()):
            side = data.draw(st.sampled_from(["request", "response"]))
            key = data.draw(st.sampled_from(["body", "path", "status", "headers", "method", "query"]))
            r[side][key] = data.draw(record_values)
        mutated.append(r)
    v = Validator()
    for r in [*junk, *mutated]:
        v.feed(r)
    report = v.finish()
    assert report.totals.adds_up
    assert report.totals.read == len(junk) + len(mutated)


@given(
    seed=st.integers(0, 5000),
    op=st.sampled_from(sorted(__import__("tests.test_mutations", fromlist=["OPERATORS"]).OPERATORS)),
)
def test_fast_and_reference_engines_agree_on_generated_and_mutated_traffic(seed: int, op: str) -> None:
    """Compiled tables + jsonschema-rs give the same report as transitions + jsonschema."""
    from tests.test_mutations import OPERATORS

    log = list(generate(2, seed=seed, vouchers_per_session=3))
    mutated = OPERATORS[op](log, seed)
    records = mutated[0] if mutated else log
    reports = []
    for engine in ("table", "transitions"):
        v = Validator(engine=engine)
        for r in records:
            v.feed(r)
        reports.append(v.finish())
    assert reports[0].violations == reports[1].violations
    assert reports[0].entities == reports[1].entities


def test_each_input_has_its_own_clock_and_an_outlier_is_flagged_once(tmp_path: Path) -> None:
    """time.backwards compares an exchange with the one before it in the same file (D19)."""
    lines = (REPO / "examples" / "session-two-payments.jsonl").read_text().splitlines()
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text("\n".join(lines) + "\n")
    records = [orjson.loads(line) for line in lines]
    for r in records:  # the same flow, captured a year earlier elsewhere
        r["time"] = r["time"].replace("2026", "2025", 1)
    second.write_text("\n".join(orjson.dumps(r).decode() for r in records) + "\n")
    both = validate_log([first, second])
    assert "time.backwards" not in {v.rule_id for v in both.violations}
    outlier = [orjson.loads(line) for line in lines]
    outlier[2]["time"] = outlier[2]["time"].replace("2026", "2030", 1)
    odd = tmp_path / "odd.jsonl"
    odd.write_text("\n".join(orjson.dumps(r).decode() for r in outlier) + "\n")
    late = [v for v in validate_log(odd).violations if v.rule_id == "time.backwards"]
    assert [str(v.location) for v in late] == [f"{odd}:4"]


def test_a_finished_validator_refuses_more_traffic() -> None:
    """feed or feed_file after finish() is a usage error, never a record silently dropped (D21)."""
    from fsm import Validator
    from fsm.errors import UsageError

    v = Validator()
    v.feed_file(str(REPO / "examples" / "session-two-payments.jsonl"))
    report = v.finish()
    with pytest.raises(UsageError, match="finished"):
        v.feed({"request": {"method": "GET", "path": "/api/v1/vouchers/vch_1"}, "response": {"status": 200}})
    with pytest.raises(UsageError, match="finished"):
        v.feed_file(str(REPO / "examples" / "broken.jsonl"))
    assert v.finish() is report


def test_progress_reports_records_and_the_share_of_the_file_read(tmp_path: Path) -> None:
    """feed_file calls back with (records so far, fraction of the file read); None for standard input."""
    log = tmp_path / "big.jsonl"
    log.write_text("".join(orjson.dumps(r).decode() + "\n" for r in generate(700, seed=9, partial=False)))
    calls: list[tuple[int, float | None]] = []
    Validator().feed_file(str(log), on_progress=lambda n, f: calls.append((n, f)))
    assert len(calls) >= 2
    fractions = [f for _, f in calls]
    assert all(f is not None and 0 < f <= 1 for f in fractions)
    assert fractions == sorted(fractions) and [n for n, _ in calls] == sorted(n for n, _ in calls)
    piped: list[tuple[int, float | None]] = []
    Validator().feed_file(
        "-", stdin=io.BytesIO(log.read_bytes()), on_progress=lambda n, f: piped.append((n, f))
    )
    assert piped and all(f is None for _, f in piped)


def test_interleaved_sources_keep_their_own_clocks() -> None:
    """Records fed from two sources in turn: a step back within one source is flagged, across not."""
    record = {
        "request": {"method": "GET", "path": "/api/v1/vouchers/vch_1"},
        "response": {"status": 200, "body": {"id": "vch_1", "status": "RESERVED"}},
    }
    v = Validator()
    found = []
    for source, second in (("a", 10), ("b", 5), ("a", 1)):
        timed = {**record, "time": f"2026-06-09T12:00:{second:02d}Z"}
        found += [x.rule_id for x in v.feed(timed, source=source)]
    assert found.count("time.backwards") == 1


def test_an_entity_keeps_one_key_in_every_violation_whatever_secrets_its_exchanges_hold() -> None:
    """Ids are redacted alike everywhere, never scrubbed per exchange (that renamed the entity)."""
    records = list(generate(300, seed=1))[:6]  # ... up to a voucher reserved
    voucher = records[5]["response"]["body"]["id"]
    user = records[1]["request"]["headers"]["authorization"]

    def sign(body: dict[str, Any], status: str) -> dict[str, Any]:
        return {
            "time": "2026-06-09T12:00:20.000Z",
            "request": {
                "method": "POST",
                "path": f"/api/v1/vouchers/{voucher}/sign-voucher",
                "headers": {"authorization": user},
                "body": body,
            },
            "response": {"status": 200, "body": {"id": voucher, "code": "164870", "status": status}},
        }

    for odd in (
        sign({"voucherId": voucher, "publicKey": "pk-1"}, "RESERVED"),  # the id among a broken body's secrets
        sign({"publicKey": "pk-1", "signature": voucher[-4:] + "f00dbeef"}, "REDEEMED"),  # a secret ending it
        sign({"voucherId": voucher, "publicKey": "pk-1"}, "REDEEMED"),  # and a message that names it
    ):
        report = _validate([*records, odd])
        keys = {v.entity for v in report.violations if v.entity and "vch_" in v.entity}
        assert keys == {f"voucher:{voucher}"}, keys
        named = [v.message for v in report.violations if v.message.startswith("voucher:")]
        assert named and all(m.startswith(f"voucher:{voucher}") for m in named), named  # messages too
        assert f"voucher:{voucher}" in {e.key for e in report.entities}


def test_bearer_tokens_are_redacted_in_any_case_and_in_paths_up_to_the_next_segment() -> None:
    """BEARER, Bearer and bearer alike; URL-encoded in a path the token ends at the next '/'."""
    from fsm.secrets import fingerprint, redact

    token = "abcdefghijklmnop"
    for text in (f"BEARER {token}", f"Bearer {token}", f"bearer {token}"):
        assert redact(text) == fingerprint(token), text
    assert redact(f"POST /api/v1/vouchers/Bearer%20{token}/redeem-voucher -> 200") == (
        f"POST /api/v1/vouchers/{fingerprint(token)}/redeem-voucher -> 200"
    )
    plus = "abc+defghijklmnop"  # a literal + is part of a path segment
    assert redact(f"GET /api/v1/vouchers/Bearer%20{plus} -> 200") == (
        f"GET /api/v1/vouchers/{fingerprint(plus)} -> 200"
    )
    assert redact(f"voucher:Bearer {plus}") == f"voucher:{fingerprint(plus)}"


def _redact_as_before(text: str) -> str:
    """The text redaction as it was written before its cheap first look: every pattern, always."""
    import re

    from fsm.secrets import _JWT, _SCHEMES, _WORDS, _fingerprint_groups, fingerprint

    for pattern in (*_SCHEMES, _JWT):
        text = pattern.sub(lambda m: fingerprint(m.group(1)), text)
    in_text = re.compile(  # (without the look-behind that keeps the scan linear)
        rf"""(?i)(?:[\w.-]*(?:{_WORDS})[\w.-]*=([^&;\s]+))"""
        rf"""|(?:["'][\w.-]*(?:{_WORDS})[\w.-]*["']\s*:\s*["']((?:[^"'\\]|\\.)*))"""
        rf"""|(?:^|[\r\n])[ \t]*[\w-]*(?:{_WORDS})[\w-]*[ \t]*:[ \t]+(?:\w+[ \t]+)?([^\s;,]+)"""
    )
    return in_text.sub(_fingerprint_groups, text)


_SCHEME_PIECES = [
    "Bearer ",
    "bearer%20",
    "BASIC ",
    "Digest\t",
    "eyJhbGciOi",
    "tok:ab12cd",
    "abcdefghijklmnop",
]
_MARK_PIECES = [".", "=", "&", ";", ":", ": ", ":\t", '"', "'", "\n", "\r", " ", "-", "_", "é", "\\"]
_WORD_PIECES = [
    "access_token",
    "X-Api-Key",
    "Session",
    "ſession",
    "\u212aey",
    "pwd",
    "PIN",
    "vch_01HZ",
    "/api/v1/",
]
_REDACTION_PIECES = st.sampled_from(_SCHEME_PIECES + _MARK_PIECES + _WORD_PIECES)
_NAMES = st.sampled_from(["X-Api-Key", "access_token", "ſession", "\u212aEY", "client.secret", "Pin", "name"])
_SEPARATORS = st.sampled_from(["=", ": ", ":\t", " : ", "': '", '": "', '":"', ":"])
_NAMED = st.tuples(
    st.sampled_from(["", "\n", "'", '"', " ", "&"]), _NAMES, _SEPARATORS, st.text(max_size=10)
).map("".join)


@given(st.lists(_REDACTION_PIECES | _NAMED | st.text(max_size=4), max_size=10).map("".join))
@example("X-Api-Key: abcdefgh")  # a header line: the one cue with a space after the colon
@example("\naccess_token:\tabcdefgh")  # or a tab
@example("ſession=abcdef")  # (?i) takes the long s for an s; lower() does not: no first look
@example("a Bearer abcdefghijklmnop and eyJhbGciOi.eyJzdWIi.sig with token=xyz12")
def test_the_cheap_first_look_of_the_text_redaction_changes_no_redacted_text(text: str) -> None:
    """Texts with no cue are handed back as they are; every other text is redacted as it always was."""
    from fsm.secrets import redact

    assert redact(text) == _redact_as_before(text)


@given(st.lists(_REDACTION_PIECES | _NAMED | st.text(max_size=4), max_size=10).map("".join))
@example("X-Api-Key: abcdefgh")
@example("ſession=abcdef")  # (non-ASCII: no first look)
@example("PASSWORD=hunter22")  # a secret word in capitals
def test_the_cheap_first_look_of_secrets_in_text_finds_what_the_full_scan_finds(text: str) -> None:
    """A text with no cue holds no named secret: the first look skips the scan, never a secret."""
    from fsm.secrets import _IN_TEXT, secrets_in

    scanned = {next(g for g in groups if g) for groups in _IN_TEXT.findall(text) if any(groups)}
    assert secrets_in(text) == {found for found in scanned if len(found) >= 3}


def test_two_inputs_whose_names_read_alike_keep_their_own_clocks(tmp_path: Path) -> None:
    """A Latin-1 name shown escaped reads like a name that spells the escape: told apart, own clocks."""
    import os

    lines = (REPO / "examples" / "session-two-payments.jsonl").read_bytes().splitlines(keepends=True)
    latin = os.fsdecode(bytes(tmp_path) + b"/x\xe9.jsonl")
    spelt = str(tmp_path / "x\\xe9.jsonl")
    Path(latin).write_bytes(b"".join(lines[8:]))  # the later half first...
    Path(spelt).write_bytes(b"".join(lines[:8]))  # ...then the earlier half, in another file
    report = validate_log([latin, spelt])
    labels = [i.label for i in report.inputs]
    assert len(set(labels)) == 2 and labels[1] == labels[0] + " (2)", labels
    assert "time.backwards" not in report.by_rule()


def test_a_run_collects_cycles_less_often_and_gives_the_callers_collector_setting_back(
    tmp_path: Path,
) -> None:
    import gc

    from fsm._collector import fewer_collections

    seen: list[tuple[int, int, int]] = []
    v = Validator(on_exchange=lambda *_: seen.append(gc.get_threshold()))
    log = tmp_path / "t.jsonl"
    log.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in generate(2, seed=5)))
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        v.feed_file(str(log))
        assert seen and all(t == (50_000, 10, 10) for t in seen)  # raised while the file is judged
        assert gc.get_threshold() == (700, 10, 10)  # and given back
        gc.set_threshold(0, 10, 10)  # automatic collection off: left off
        with fewer_collections():
            assert gc.get_threshold() == (0, 10, 10)
        gc.set_threshold(700, 10, 10)
        with fewer_collections():
            gc.set_threshold(1234, 5, 5)  # the block's own setting is kept
        assert gc.get_threshold() == (1234, 5, 5)
        gc.set_threshold(700, 10, 10)
        with pytest.raises(KeyError), fewer_collections():
            raise KeyError("x")
        assert gc.get_threshold() == (700, 10, 10)  # given back on an exception too
    finally:
        gc.set_threshold(*before)


def test_reports_and_the_spec_pickle_and_copy_to_equal_values() -> None:
    import copy
    import pickle

    from fsm.spec import load_spec

    report = validate_log(Path(__file__).parents[1] / "examples" / "broken.jsonl")
    assert report.violations and report.violations[0].related
    for value in (load_spec(), report, report.violations[0]):
        assert pickle.loads(pickle.dumps(value)) == value
        assert copy.deepcopy(value) == value and copy.copy(value) == value


def test_an_unknown_engine_is_a_usage_error() -> None:
    """Validator(engine="bogus") raises the kit's UsageError (an FsmError), as the docs say."""
    from fsm.errors import FsmError

    with pytest.raises(FsmError, match="unknown engine 'bogus'"):
        Validator(engine="bogus")


def test_standard_input_read_twice_is_a_clear_error() -> None:
    """A second feed_file("-") after stdin ended: LogFormatError, not 'peek of closed file'."""
    import io

    from fsm.errors import LogFormatError

    stdin = io.BufferedReader(io.BytesIO((REPO / "examples" / "session-two-payments.jsonl").read_bytes()))
    v = Validator()
    v.feed_file("-", stdin=stdin)
    with pytest.raises(LogFormatError, match="read to its end already"):
        v.feed_file("-", stdin=stdin)


def test_generated_voucher_ids_never_repeat(monkeypatch: pytest.MonkeyPatch) -> None:
    """A voucher id drawn twice (same code, same 4 hex digits) is drawn again: generated ids are unique."""
    from fsm.generate import TrafficBuilder

    b = TrafficBuilder(seed=1)
    monkeypatch.setattr(b, "_code", lambda digits=False: "123456")
    draws = iter(["abcd", "abcd", "abcd", "ef01"])
    monkeypatch.setattr(b, "_hex", lambda n: next(draws))
    first, _ = b.reserve("tok", "CODE01")
    second, _ = b.reserve("tok", "CODE01")
    assert (first.id, second.id) == ("vch_123456abcd", "vch_123456ef01")


def test_generated_traffic_can_start_at_any_time_with_the_same_flows() -> None:
    """generate(start=...) moves the clock, not the choices: the same records, every time shifted alike."""
    import re
    from datetime import UTC, datetime

    stamp = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z")
    fixed = json.dumps(list(generate(2, seed=4, partial=False)))
    later = json.dumps(list(generate(2, seed=4, partial=False, start=datetime(2030, 1, 2, tzinfo=UTC))))
    assert stamp.sub("T", later) == stamp.sub("T", fixed)

    def when(text: str) -> datetime:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    shifts = {when(b) - when(a) for a, b in zip(stamp.findall(fixed), stamp.findall(later), strict=True)}
    assert len(shifts) == 1 and shifts.pop().days > 1000
    v = Validator()
    assert [x for r in json.loads(later) for x in v.feed(r)] == []


def test_every_entity_outcome_counts_every_exchange_that_named_it_final_or_not() -> None:
    """EntityOutcome.exchanges counts all of an entity's exchanges, past the five a timeline keeps."""
    report = validate_log(REPO / "examples" / "session-two-payments.jsonl")
    counts = {e.key: e.exchanges for e in report.entities}
    assert counts == {  # counted by hand from the file: every entity there ends final
        "context:ctx_46dae72c162": 3,  # the payee's sign-in with its code, open, close
        "session:ses_46455c8dd23": 6,  # open, join, two reserves, GET, close
        "voucher:vch_647258fe38": 5,  # reserve, redeem, resolve; the session's GET and close list it
        "voucher:vch_4600130933": 7,  # reserve, redeem, negotiate, resolve, GET; listed by GET and close
    }
    named: dict[str, int] = {}

    def count(_ex: object, _match: object, _found: object, touched: tuple[str, ...]) -> None:
        named.update({k: named.get(k, 0) + 1 for k in touched})

    v = Validator(on_exchange=count)
    for record in generate(3, seed=5, vouchers_per_session=8, partial=True):
        v.feed(record)
    outcomes = v.finish().entities
    assert {e.key: e.exchanges for e in outcomes} == named
    assert max(named.values()) > 5 and any(e.final for e in outcomes) and not all(e.final for e in outcomes)


_JUDGES_A_STATE = ("machine.", "observe.", "session.", "time.accepted-after-expiry", "time.call-after-expiry")


def test_every_message_about_an_entitys_state_states_the_models_state_as_the_record_carries_it() -> None:
    """Violation.state is the state the model holds at that point, and the message says the same."""
    logs = [REPO / "examples" / "broken.jsonl", *sorted((REPO / "tests" / "corpus").glob("*/traffic.*"))]
    judged = 0
    for log in logs:
        for v in validate_log(log).violations:
            if v.rule_id.startswith(_JUDGES_A_STATE) or v.rule_id == "entity.incomplete":
                assert v.state is not None, f"{log.parent.name}: {v.rule_id} carries no state"
            if v.state is not None:
                judged += 1
                assert v.entity is not None and v.state in v.message, f"{log.parent.name}: {v.message}"
    assert judged >= 20


def test_the_broken_example_never_contradicts_itself_about_a_voucher() -> None:
    """Each voucher's messages name the state the model held then, and it ends where the last one left it."""
    report = validate_log(REPO / "examples" / "broken.jsonl")
    ends = {e.key: e.state for e in report.entities}
    for key, found in report.by_entity().items():
        stated = [v for v in found if v.state is not None]
        if key is None or not stated:
            continue
        last = stated[-1]
        follows = "the model follows the answer (" in last.message
        if last.rule_id.startswith("session."):
            continue
        assert (
            (f"follows the answer ({ends[key]})" in last.message) if follows else ends[key] == last.state
        ), (
            key,
            ends[key],
            last.message,
        )


def test_the_validator_takes_the_clock_skew_as_an_argument() -> None:
    """Validator(clock_skew=0): no tolerance, so a redeem a second after expiresAt is an error (D24)."""
    log = REPO / "tests" / "corpus" / "clean-lenient-server" / "traffic.jsonl"
    assert validate_log(log).violations == ()
    strict = Validator(clock_skew=0)
    strict.feed_file(str(log))
    assert {v.rule_id for v in strict.finish().violations} == {"time.accepted-after-expiry"}
    assert Validator().config.clock_skew == 5


def test_the_reports_own_words_are_never_taken_for_secrets_of_the_traffic() -> None:
    """A prefix or method the spec names stays readable when an exchange holds the same text (D20).

    A browser's page answered ``{"api": "/api/v1"}`` (a string with no safe shape), and a plain
    OPTIONS carried ``Allow: GET``: the messages that name the prefix and the expected method
    must still say ``/api/v1`` and ``GET``, while a real secret in the same exchange stays hidden.
    """
    page = {
        "time": "2026-06-09T12:00:00.000Z",
        "request": {"method": "GET", "path": "/plan.json", "headers": {}},
        "response": {"status": 200, "body": {"api": "/api/v1", "password": "hunter2-hunter2"}},
    }
    options = {
        "time": "2026-06-09T12:00:01.000Z",
        "request": {"method": "OPTIONS", "path": "/api/v1/vouchers/vch_1", "headers": {"x-note": "GET"}},
        "response": {"status": 204, "headers": {"allow": "GET"}},
    }
    report = _validate([page, options])
    said = "\n".join(f"{v.message} {v.expected} {v.actual}" for v in report.violations)
    assert "under the API prefix /api/v1" in said, said
    assert "expected GET" in said, said
    assert "hunter2" not in said


def _under(prefix: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records with their paths moved from the spec's /api/v1 to ``prefix`` (D25)."""
    moved = json.loads(json.dumps(records))
    for r in moved:
        r["request"]["path"] = prefix + r["request"]["path"].removeprefix("/api/v1")
    return moved


def test_predict_routes_under_the_validators_api_prefix_and_hosts_as_feed_does() -> None:
    """D25: under /bleepay/v2 a second redeem is refused; /api/v1 or another host is no protocol call."""
    records = _under("/bleepay/v2", list(generate(1, seed=1, partial=False)))
    first = next(i for i, r in enumerate(records) if r["request"]["path"].endswith("/redeem-voucher"))
    v = Validator(api_prefix="/bleepay/v2", hosts=["pay.example"])
    for record in records[: first + 1]:
        assert v.feed(record) == []
    req = records[first]["request"]
    again = v.predict("POST", req["path"], req["headers"], req["body"])
    assert (again.operation, again.accepted, again.code) == ("redeem-voucher", False, "already_redeemed")
    on_host = v.predict("POST", "https://pay.example" + req["path"], req["headers"], req["body"])
    assert (on_host.operation, on_host.accepted, on_host.code) == (
        "redeem-voucher",
        False,
        "already_redeemed",
    )
    spec_path = "/api/v1" + req["path"].removeprefix("/bleepay/v2")
    outside = v.predict("POST", spec_path, req["headers"], req["body"])
    assert (outside.operation, outside.accepted) == (None, None)
    assert "not under the API prefix /bleepay/v2" in outside.reason
    elsewhere = v.predict("POST", "https://other.example" + req["path"], req["headers"], req["body"])
    assert (elsewhere.operation, elsewhere.accepted) == (None, None)
    assert "not on the API's hosts" in elsewhere.reason
    # asking changed nothing: the run still reports the outside path it is fed, once
    fed = dict(records[first], request={**req, "path": spec_path})
    assert [x.rule_id for x in v.feed(fed)] == ["route.outside-api"]


def test_a_prediction_before_each_call_changes_no_verdict_whichever_request_it_asked_about() -> None:
    """Feed reuses the route of the request just predicted only when it is that request (method, path, host).

    An enforcing middleware predicts each request, then feeds it answered; a sandbox may ask about
    one request and be fed another. Either way the findings are those of a validator only fed.
    """
    lines = (REPO / "examples" / "broken.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    records += list(generate(3, seed=7))

    def findings(ask: int | None) -> list[tuple[str, str]]:
        v = Validator()
        out = []
        for n, r in enumerate(records):
            if ask is not None:
                q = records[(n + ask) % len(records)]["request"]
                v.predict(q["method"], q["path"], q.get("headers"), q.get("body"))
            out += [(x.rule_id, x.message) for x in v.feed(r)]
        return out

    fed = findings(None)
    assert len(fed) > 10
    assert findings(0) == fed  # (the request itself: its route reused)
    assert findings(1) == fed and findings(3) == fed  # (another request: routed afresh)


def test_outside_paths_are_remembered_up_to_a_bound_and_past_it_reported_each_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """D1 reports an outside path once; a log of endless new paths must not grow memory, nor lose one."""
    import fsm.matcher

    monkeypatch.setattr(fsm.matcher, "_REPORTED", 3)
    v = Validator()

    def outside(name: str) -> list[str]:
        record = {"request": {"method": "GET", "path": f"/elsewhere/{name}"}, "response": {"status": 200}}
        return [x.rule_id for x in v.feed(record) if x.rule_id.startswith("route.")]

    assert [outside(n) for n in ("a", "b", "a", "c", "b")] == [
        ["route.outside-api"],
        ["route.outside-api"],
        [],
        ["route.outside-api"],
        [],
    ]
    # the bound is reached: new paths are reported every time, remembered ones still once
    assert [outside(n) for n in ("d", "d", "e", "a")] == [["route.outside-api"]] * 3 + [[]]


def test_the_router_remembers_only_the_last_request_and_answers_each_by_its_own_method_and_path() -> None:
    """Routing a request twice (a sandbox, then its prediction) gives one match; others get their own."""
    from fsm.matcher import Match, Router
    from fsm.spec import load_spec

    router = Router(load_spec())
    first = router.route("GET", "/vouchers/vch_1")
    assert isinstance(first, Match) and first.params == {"voucherId": "vch_1"}
    assert router.route("GET", "/vouchers/vch_1") is first
    other = router.route("GET", "/vouchers/vch_2")
    assert isinstance(other, Match) and other.params == {"voucherId": "vch_2"}
    assert router.route("DELETE", "/vouchers/vch_2") == ["GET"]  # (a known path, another method)
    redeem = router.route("POST", "/vouchers/vch_2/redeem-voucher")
    assert isinstance(redeem, Match) and redeem.operation.id == "redeem-voucher"
    assert router.route("POST", "/vouchers/vch_1") != redeem
