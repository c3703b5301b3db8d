"""Hostile input (D20, D21): no secret out, no run lost, no input unbounded.

Each case runs the real command in its own process, in every report format, and asserts what a
user relies on: no traceback, the documented exit code, totals that add up, and that no secret
planted by ``tests/hostile/plant.py`` appears in stdout, stderr or the report.
"""

from __future__ import annotations

import copy
import gzip
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fsm import Report, UsageError, Validator, validate_log
from fsm.config import Config, load_config
from fsm.generate import generate, to_har
from fsm.readers import open_input
from fsm.readers.har import AfterEntries, EntryTooLong, stream_entries
from fsm.render import render_json, render_junit, render_sarif, render_text
from fsm.report import Totals
from fsm.secrets import Scrubber, bounded, fingerprint, shown, shown_path
from fsm.violation import Severity
from tests.hostile import plant

FORMATS = ("text", "json", "sarif", "junit")
CORPUS = Path(__file__).parent / "corpus"
ENTRY = b'{"request": {"method": "GET", "url": "http://x/api/v1/vouchers/query-vouchers"}, ' + (
    b'"response": {"status": 200}}'
)


def voucher_fsm(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> tuple[int, str, str]:
    """Run ``python -m fsm`` in a fresh process: exit code, stdout, stderr."""
    proc = subprocess.run(
        [sys.executable, "-m", "fsm", *args],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


def markers(secret: str) -> tuple[str, ...]:
    """Pieces of a planted secret that no report may hold: each is unique to that secret."""
    if secret.startswith("eyJ"):  # a JWT: its claims and its signature are unique, its header is not
        _, claims, sig = secret.split(".")
        return claims[:16], claims[-16:], sig[:16]
    digest = secret[-20:]
    return digest[:10], digest[5:15], digest[10:]


def leaked(text: str, secrets: list[str]) -> list[str]:
    """The planted secrets that ``text`` shows, whole or in part."""
    return [s for s in secrets if any(m in text for m in markers(s))]


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    folder = tmp_path_factory.mktemp("planted")
    return folder, plant.write(folder, jwt_sizes=(1_000, 100_000, 1_000_000))


def test_the_planting_harness_plants_hundreds_of_distinct_secrets(planted: tuple[Path, list[str]]) -> None:
    """Sanity of the harness: many secrets, all distinct, each found by the leak check in the log itself."""
    folder, secrets = planted
    assert len(secrets) >= 400 and len(set(secrets)) == len(secrets)
    logs = (folder / "planted.jsonl").read_text() + (folder / "planted.har").read_text()
    assert leaked(logs, secrets) == secrets


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("log", ["planted.jsonl", "planted.har"])
def test_no_planted_secret_reaches_stdout_stderr_or_the_report(
    planted: tuple[Path, list[str]], log: str, fmt: str, tmp_path: Path
) -> None:
    """Secrets in bodies, forms, headers, cookies, queries, paths, userinfo and JWTs: none is shown."""
    folder, secrets = planted
    code, out, err = voucher_fsm("validate", "--format", fmt, "--max-per-rule", "0", str(folder / log))
    assert code == 1, err  # the log breaks rules: FAILED, and not a crash (3) or a usage error (2)
    assert "Traceback" not in out + err
    assert leaked(out + err, secrets) == []
    report = tmp_path / f"report.{fmt}"
    code, out, err = voucher_fsm("validate", "--format", fmt, "-o", str(report), str(folder / log))
    assert code == 1 and leaked(out + err + report.read_text(errors="replace"), secrets) == []


def test_only_values_of_a_safe_shape_are_quoted_and_the_rest_by_fingerprint() -> None:
    """The allow-list (D20): ids, codes, words, amounts and addresses as they are; anything else hidden."""
    for safe in ("vch_7299754400", "EURC", "already_redeemed", "100.50", "0x" + "ab" * 20, "REDEEMED"):
        assert shown(safe) == safe
    for unsafe in ("hunter2!", "Pl4nted9Xabc", "a b c 1", "x" * 300, "dev_ice\x1b"):
        hidden = shown(unsafe)
        assert unsafe not in hidden and hidden.startswith(f"<{len(unsafe)} characters, str:")
    assert shown("REDEEMED", "password").startswith("secret:")  # a secret field hides even a safe word
    assert shown("x", "sessionKey").startswith("secret:")  # an undeclared field named like a secret
    assert shown_path("/api/v1/vouchers/vch_1/p4ss!w0rd/x") == "/api/v1/vouchers/vch_1/{value}/x"


def test_bounded_cuts_what_traffic_makes_large_and_escapes_lone_surrogates() -> None:
    """Long strings, huge integers, deep nesting and long lists come out small; no surrogate comes out."""
    assert bounded("m" * 50, 10) == "m" * 10 + "... (40 characters more)"
    assert bounded("s" * 5000).startswith("<5000 characters, str:")
    assert bounded(10**100) == "<an integer of 101 digits>"
    deep: list[object] = []
    for _ in range(50):
        deep = [deep]
    assert "nested too deeply" in json.dumps(bounded(deep))
    assert len(bounded(list(range(10_000)))) == 21
    assert bounded("a\ud800b") == "a\\ud800b"
    assert bounded({"k\udfff": 1}) == {"k\\udfff": 1}


def test_scrubbing_is_linear_in_the_length_of_the_secret() -> None:
    """A 5 MB secret cut short in a message is found (quadratic, it took hours; see benchmarks)."""
    secret = "eyJ" + "q" * 5_000_000
    out = Scrubber({secret})(f"the token was '{secret[:3_000_000]}...")
    assert out == f"the token was '{fingerprint(secret, 'secret')}..."


def _har_entry(i: int, extra: Any = None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "startedDateTime": "2026-06-09T12:00:00Z",
        "request": {"method": "GET", "url": f"http://x/api/v1/vouchers/query-vouchers?offset={i}"},
        "response": {"status": 200, "content": {"mimeType": "application/json", "text": "[]"}},
    }
    if extra is not None:
        entry["_extra"] = extra
    return entry


@pytest.mark.parametrize("read_first", [200, 10_000])
def test_a_har_that_shrinks_while_it_is_read_says_where_reading_stopped(
    tmp_path: Path, read_first: int
) -> None:
    """Cut to a third after 200 entries (before the cut) or 10,000 (past it): the loss is reported (D21)."""
    har = tmp_path / "live.har"
    har.write_text(json.dumps({"log": {"entries": [_har_entry(i) for i in range(20_000)]}}))
    _, items = open_input(str(har))
    seen = [next(items) for _ in range(read_first)]
    os.truncate(har, har.stat().st_size // 3)
    seen.extend(items)
    index, record, error = seen[-1]
    assert record is None and error is not None and "later entries cannot be read" in error
    assert isinstance(index, int) and read_first <= index < 20_000
    assert [i for i, _, _ in seen[:-1]] == list(range(index))  # nothing before it lost, nothing twice
    if read_first == 10_000:  # (the file is now shorter than what was read: the streaming read's end)
        assert "changed while it was read" in error


@pytest.mark.parametrize("number", ["1" + "0" * 5000, "1e400", "-" + "9" * 400])
def test_a_number_out_of_range_takes_no_later_entry_or_line_with_it(tmp_path: Path, number: str) -> None:
    """A 5000-digit integer in a field the reader skips: every entry and line is still read."""
    entries = [_har_entry(0), _har_entry(1, "NUMBER"), _har_entry(2), _har_entry(3)]
    har = tmp_path / "big.har"
    har.write_text(json.dumps({"log": {"entries": entries}}).replace('"NUMBER"', number))
    _, items = open_input(str(har))
    assert [(i, error) for i, _, error in items] == [(0, None), (1, None), (2, None), (3, None)]
    jsonl = tmp_path / "big.jsonl"
    record = {
        "request": {"method": "GET", "path": "/api/v1/vouchers/query-vouchers"},
        "response": {"status": 200},
    }
    lines = [json.dumps(record), json.dumps({**record, "x": "NUMBER"}).replace('"NUMBER"', number)]
    jsonl.write_text("\n".join(lines + lines) + "\n")
    _, items = open_input(str(jsonl))
    assert [(i, error) for i, _, error in items] == [(1, None), (2, None), (3, None), (4, None)]


def test_an_attached_file_is_named_in_reports_only_by_the_name_playwright_gives_it(tmp_path: Path) -> None:
    """Playwright names attached bodies by their SHA-1: any other name may be a secret (D20)."""
    secret, digest = "Pl4ntedAttachedName9X31c", "0" * 39 + "a"
    entries = [
        {
            "request": {"method": "POST", "url": "http://x/api/v1/vouchers/vch_1/redeem-voucher"},
            "response": {"status": 200, "content": {"_file": name}},
        }
        for name in (f"{secret}.json", f"{digest}.json")
    ]
    (tmp_path / "attached.har").write_text(json.dumps({"log": {"entries": entries}}))
    report = validate_log(tmp_path / "attached.har")
    said = [v.message for v in report.violations if v.rule_id == "input.unreadable"]
    assert len(said) == 2 and f"'{digest}.json'" in said[1]
    for render in RENDERERS:
        assert secret[:8] not in render(report) and secret[-10:] not in render(report)


def test_a_trace_draws_error_codes_and_statuses_from_traffic_as_reports_show_them(tmp_path: Path) -> None:
    """`voucher-fsm trace`: a refusal code and a status of no safe shape are fingerprinted (D20)."""
    example = Path(__file__).parents[1] / "examples" / "session-two-payments.jsonl"
    records = [json.loads(line) for line in example.read_text().splitlines()]
    join = next(r for r in records if r["request"]["path"].endswith("/session-join"))
    code, status = "bad_Pl4ntedCode9X0a1b2c3d", "Pl4ntedStatus9X4e5f6a7b"
    refused = {**join, "response": {"status": 409, "body": {"code": code, "message": "no"}}}
    observed = {
        **join,
        "response": {**join["response"], "body": {**join["response"]["body"], "status": status}},
    }
    log = tmp_path / "trace.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in [*records, refused, observed]) + "\n")
    exit_code, out, err = voucher_fsm("trace", str(log))
    assert exit_code == 0 and "sequenceDiagram" in out, err
    assert leaked(out + err, [code, status]) == []


@pytest.mark.parametrize(
    ("text", "secret"),
    [  # a value continued past a line break; markup no key=value pattern knows; JavaScript, not JSON
        ("password=Pl4nted\\\n9X0a1b2c3d4e5f6a", "Pl4nted9X0a1b2c3d4e5f6a"),
        ("<login><pwd>Pl4ntedXml9X0a1b2c3d4e</pwd></login>", "Pl4ntedXml9X0a1b2c3d4e"),
        ("{creds: Pl4ntedLoose9X0a1b2c3d4e}", "Pl4ntedLoose9X0a1b2c3d4e"),
    ],
)
def test_a_body_that_is_not_json_is_quoted_word_by_word_by_the_allow_list(text: str, secret: str) -> None:
    """input.body-not-json quotes the start of the text: no 8 characters of a secret no pattern knows."""
    validator = Validator()
    path = "/api/v1/vouchers/vch_7299754400/redeem-voucher"
    validator.feed(
        {"request": {"method": "POST", "path": path, "bodyText": text}, "response": {"status": 409}}
    )
    [v] = [v for v in validator.finish().violations if v.rule_id == "input.body-not-json"]
    assert isinstance(v.actual, str) and "str:" in v.actual
    assert not any(secret[i : i + 8] in v.actual for i in range(len(secret) - 7)), v.actual


@pytest.mark.parametrize("recorder", ["middleware", "sandbox"])
def test_a_recording_keeps_no_value_of_a_header_query_or_field_named_like_a_secret(recorder: str) -> None:
    """D29 for every name redaction.json calls secret, not only Authorization and the protocol's fields."""
    from fsm.sandbox.recorder import without_secrets
    from fsm.sinks import recorded

    secret = plant.Planter("recording")
    headers = (
        "X-Auth-Token",
        "x-amz-security-token",
        "X-CSRF-Token",
        "api-key",
        "x-hub-signature-256",
        "Cookie",
    )
    record = {
        "request": {
            "method": "POST",
            "path": f"/api/v1/vouchers/vch_1/redeem-voucher?access_token={secret()}&limit=5",
            "query": {"api_key": secret(), "limit": "5"},
            "headers": {name: secret() for name in headers},
            "body": {
                "refresh_token": secret(),
                "apiKeys": [secret(), secret()],
                "nested": {"clientSecret": secret()},
            },
        },
        "response": {
            "status": 200,
            "headers": {"set-cookie": f"sid={secret()}; HttpOnly", "x-session-token": secret()},
            "bodyText": f"access_token={secret()}&scope=all",
        },
    }
    kept = (recorded if recorder == "middleware" else without_secrets)(copy.deepcopy(record))
    assert leaked(json.dumps(kept), secret.secrets) == []
    assert kept["request"]["query"]["limit"] == "5" and kept["request"]["path"].endswith("&limit=5")


def test_an_entity_named_by_a_secret_in_its_path_is_keyed_by_its_fingerprint() -> None:
    """/vouchers/<secret>/redeem-voucher routes: its key, messages and outcome agree, none shows it."""
    secret = "Pl4ntedEntityId9X0a1b2c3d4e"
    validator = Validator()
    path = f"/api/v1/vouchers/{secret}/redeem-voucher"
    validator.feed({"request": {"method": "POST", "path": path, "body": {}}, "response": {"status": 200}})
    report = validator.finish()
    keys = {v.entity for v in report.violations if v.entity} | {e.key for e in report.entities}
    assert keys == {f"voucher:{fingerprint(secret, 'secret')}"}
    assert any(v.rule_id == "entity.incomplete" for v in report.violations)
    for render in RENDERERS:
        assert leaked(render(report), [secret]) == []


def test_a_har_entry_longer_than_longest_record_stops_the_read_there_and_says_so(tmp_path: Path) -> None:
    """ijson holds a string whole: a 1.5 GB one (6.5 MB gzipped) took gigabytes. Bounded like a JSONL line."""
    data = b'{"log": {"entries": [' + ENTRY + b', {"_x": "' + b"a" * (8 << 20) + b'"}, ' + ENTRY + b"]}}"
    stream = io.BytesIO(data)
    with pytest.raises(EntryTooLong):
        for _ in stream_entries(stream, longest=1 << 20):
            pass
    assert stream.tell() < len(data) // 4
    (tmp_path / "long.har").write_bytes(data)
    validator = Validator(config=Config(longest_record=1 << 20))
    validator.feed_file(str(tmp_path / "long.har"))
    report = validator.finish()
    assert report.totals == Totals(read=2, judged=1, unreadable=1)
    [bad] = [v for v in report.violations if v.rule_id == "input.unreadable"]
    assert str(bad.location).endswith("entries[1]") and "longest-record" in bad.message


@pytest.mark.parametrize(
    ("head", "tail"),
    [
        (b'{"log": {"entries": [' + ENTRY + b", ", b""),  # an entry nested past any bound
        (b'{"pre": ', b""),  # before log.entries
        (b'{"log": {"entries": [' + ENTRY + b']}, "post": ', b""),  # after them
    ],
    ids=["in-an-entry", "before-the-entries", "after-the-entries"],
)
def test_a_har_nested_without_end_stops_the_streaming_read_early(head: bytes, tail: bytes) -> None:
    """The parser keeps a byte a level: 1.5 GB of '[' in a gzip took 620 MB; now the read stops early."""
    data = head + b"[" * (8 << 20) + tail
    stream = io.BytesIO(data)
    with pytest.raises((RecursionError, AfterEntries)):
        for _ in stream_entries(stream):
            pass
    assert stream.tell() < len(data) // 4  # (ijson reads in 64 kB chunks: stopped near the bound)


@pytest.mark.parametrize("case", ["time-no-offset", "time-accepted-after-expiry"])
def test_a_report_is_the_same_in_every_time_zone(tmp_path: Path, case: str) -> None:
    """Times without an offset are UTC: the host's TZ changes no verdict (here 14 hours apart)."""
    traffic = (CORPUS / case / "traffic.jsonl").read_text()
    log = tmp_path / "local.jsonl"
    log.write_text(traffic.replace('Z"', '"'))  # every time loses its offset (expiresAt too)
    reports = {
        zone: voucher_fsm("validate", "--format", "json", str(log), env={"TZ": zone})
        for zone in ("UTC", "America/Los_Angeles", "Asia/Kolkata", "Pacific/Kiritimati")
    }
    assert len({(code, out) for code, out, _ in reports.values()}) == 1
    code, out, _ = reports["UTC"]
    rules = {v["rule"] for v in json.loads(out)["violations"]}
    assert "time.no-offset" in rules and (case != "time-accepted-after-expiry" or code == 1)


def test_a_closed_standard_output_is_a_usage_error_not_a_crash() -> None:
    """``voucher-fsm validate LOG >&-``: exit 2 and what to do; with --output the run is fine."""
    example = str(Path(__file__).parents[1] / "examples" / "session-two-payments.jsonl")
    command = f'exec "{sys.executable}" -m fsm validate "{example}" "$@" >&-'
    closed = subprocess.run(
        ["sh", "-c", command, "sh"], capture_output=True, text=True, timeout=60, check=False
    )
    assert closed.returncode == 2 and "no standard output (it is closed): give --output FILE" in closed.stderr
    to_file = subprocess.run(
        ["sh", "-c", command, "sh", "--output", os.devnull],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert to_file.returncode == 0 and "Traceback" not in to_file.stderr


@pytest.mark.parametrize("line", [10**100, 0, -3, 2**53 + 1, 1.5, True, "7"])
def test_a_line_number_no_report_can_carry_is_refused(line: Any) -> None:
    """feed(line=10**100) broke the JSON and SARIF reports: a line is a whole number from 1 to 2**53."""
    validator = Validator()
    with pytest.raises(UsageError, match="from 1 to 2\\*\\*53"):
        validator.feed({"request": {"method": "GET", "path": "/"}, "response": {"status": 200}}, line=line)
    validator.feed({"request": {"method": "GET", "path": "/"}, "response": {"status": 200}}, line=2**53)
    assert validator.finish().totals.read == 1


def test_threads_sharing_a_validator_get_the_report_of_feeding_in_turn(tmp_path: Path) -> None:
    """Four threads feed their own contexts into one Validator (records, files): as if fed in turn."""
    logs = []
    for seed in range(4):
        log = tmp_path / f"thread-{seed}.jsonl"
        lines = []
        for r in generate(40, seed=seed + 100):
            r.pop("time", None)  # (interleaved clocks would go backwards: a verdict on the interleaving)
            lines.append(json.dumps(r))
        log.write_text("\n".join(lines) + "\n")
        logs.append(log)

    def verdicts(report: Report) -> list[tuple[str, str | None, str]]:
        return sorted((v.rule_id, v.entity, str(v.location)) for v in report.violations)

    def feed(validator: Validator, seed: int) -> None:
        if seed % 2:
            validator.feed_file(str(logs[seed]))
            return
        for n, line in enumerate(logs[seed].read_text().splitlines(), 1):
            validator.feed(json.loads(line), source=logs[seed].name, line=n)

    in_turn = Validator()
    for seed in range(4):
        feed(in_turn, seed)
    expected = in_turn.finish()
    shared = Validator()
    threads = [threading.Thread(target=feed, args=(shared, seed)) for seed in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    report = shared.finish()
    assert report.totals == expected.totals and report.totals.adds_up
    assert sorted(report.inputs, key=str) == sorted(expected.inputs, key=str)  # each file's own count
    assert verdicts(report) == verdicts(expected)
    related = [r for v in report.violations for r in v.related]  # one index for each exchange
    assert len({r.index for r in related}) == len({(r.index, str(r.location)) for r in related})


UNKNOWN = {"request": {"method": "GET", "path": "/api/v1/nowhere/x"}, "response": {"status": 200}}


def test_a_rule_keeps_the_details_of_its_first_violations_and_counts_the_rest() -> None:
    """kept-per-rule bounds memory: 30 violations, 10 kept, 30 counted in every total and format."""
    validator = Validator(config=Config(kept_per_rule=10))
    for n in range(30):
        validator.feed(UNKNOWN, line=n + 1)
    report = validator.finish()
    assert report.errors == 30 and report.by_rule()["route.unknown-path"] == 30
    assert [v.rule_id for v in report.violations].count("route.unknown-path") == 10
    assert report.untold == (("route.unknown-path", Severity.ERROR, 20),)
    assert "counted, details not kept (kept-per-rule): 20 route.unknown-path" in render_text(report)
    assert json.loads(render_json(report))["untold"] == [
        {"rule": "route.unknown-path", "severity": "error", "count": 20}
    ]
    assert "20 route.unknown-path" in render_sarif(report) and 'value="20"' in render_junit(report)


@pytest.mark.parametrize(
    ("setting", "line"),
    [("longest_record", b"[" + b"0," * 600 + b"0]"), ("most_values", b"[" + b"{}," * 400_000 + b"{}]")],
)
def test_a_record_beyond_a_bound_is_reported_and_the_next_line_is_read(
    tmp_path: Path, setting: str, line: bytes
) -> None:
    """A line longer than longest-record, or of more values than most-values: one finding, reading goes on."""
    log = tmp_path / "bounded.jsonl"
    good = json.dumps(UNKNOWN).encode()
    log.write_bytes(good + b"\n" + line + b"\n" + good + b"\n")
    validator = Validator(config=Config(**{setting: 1_000 if setting == "longest_record" else 100_000}))
    validator.feed_file(str(log))
    report = validator.finish()
    assert report.totals == Totals(read=3, judged=2, unreadable=1)
    [bad] = [v for v in report.violations if v.rule_id == "input.unreadable"]
    assert str(bad.location).endswith(":2") and setting.replace("_", "-") in bad.message


def test_bounds_are_settings_of_the_config_file(tmp_path: Path) -> None:
    """kept-per-rule, longest-record and most-values are read from the config; a bad one is refused."""
    cfg = tmp_path / "voucher-fsm.toml"
    cfg.write_text("kept-per-rule = 5\nlongest-record = 4096\nmost-values = 900\n")
    config = load_config(cfg)
    assert (config.kept_per_rule, config.longest_record, config.most_values) == (5, 4096, 900)
    cfg.write_text('kept-per-rule = "many"\n')
    with pytest.raises(UsageError, match="kept-per-rule must be a whole number"):
        load_config(cfg)


# lone surrogates, terminal escapes, NUL, a bidi override, URL and path syntax, and any other character
tricky_text = st.lists(  # (st.text would leave the surrogates out)
    st.sampled_from(["\ud800", "\udfff", "\x1b", "\x00", "\n", "\u202e", "%", "/", "?", "é"])
    | st.characters(),
    max_size=12,
).map("".join)
hostile_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | tricky_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=20,
)
RENDERERS = (render_text, render_json, render_junit, render_sarif)


def _renders_everywhere(report: Report) -> None:
    for render in RENDERERS:
        out = render(report)
        out.encode("utf-8")  # (what a terminal or a file is given: no lone surrogate)
        assert "Traceback" not in out


@given(st.lists(hostile_values, max_size=5), st.data())
def test_any_records_fed_are_judged_and_render_in_every_format(junk: list[Any], data: st.DataObject) -> None:
    """Fuzz: junk records and real exchanges with parts replaced by junk; every format renders."""
    mutated = []
    for r in generate(1, seed=data.draw(st.integers(0, 50)), vouchers_per_session=2):
        if data.draw(st.booleans()):
            side = data.draw(st.sampled_from(["request", "response"]))
            key = data.draw(
                st.sampled_from(["body", "path", "status", "headers", "method", "query", "bodyText"])
            )
            r[side][key] = data.draw(hostile_values)
        if data.draw(st.booleans()):
            r["time"] = data.draw(hostile_values)
        mutated.append(r)
    validator = Validator()
    for record in [*junk, *mutated]:
        validator.feed(record, source=data.draw(tricky_text) or "<api>")
    report = validator.finish()
    assert report.totals.adds_up and report.totals.read == len(junk) + len(mutated)
    _renders_everywhere(report)


@given(st.binary(max_size=300), st.sampled_from([".jsonl", ".har", ".jsonl.gz"]), st.data())
def test_any_bytes_in_a_file_are_read_judged_and_rendered(
    raw: bytes, suffix: str, data: st.DataObject
) -> None:
    """Fuzz the readers: arbitrary bytes, and a real log cut or spliced with them, in every format."""
    base = to_har(list(generate(1, seed=3, vouchers_per_session=1))) if suffix == ".har" else None
    text = (
        json.dumps(base).encode()
        if base is not None
        else json.dumps(next(generate(1, seed=3))).encode() + b"\n"
    )
    cut = data.draw(st.integers(0, len(text)))
    body = data.draw(st.sampled_from([raw, text[:cut] + raw, text[:cut] + raw + text[cut:]]))
    if suffix.endswith(".gz"):
        body = gzip.compress(body)[: data.draw(st.integers(1, len(body) + 40))]
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / f"fuzz{suffix}"
        log.write_bytes(body)
        validator = Validator()
        validator.feed_file(str(log))
        report = validator.finish()
    assert report.totals.adds_up
    _renders_everywhere(report)


CASES = Path(__file__).parent / "hostile" / "cases"
EXPECTED = json.loads((CASES / "expected.json").read_text())["cases"]


def test_every_hostile_case_has_an_expectation() -> None:
    """tests/hostile/cases/expected.json names every file there, and only those."""
    assert sorted(EXPECTED) == sorted(p.name for p in CASES.iterdir() if p.name != "expected.json")


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_a_hostile_case_gives_its_exit_code_and_accounts_for_every_record(case: str) -> None:
    """The command in its own process (no traceback, the exit code), then every format from the report."""
    want = EXPECTED[case]
    code, out, err = voucher_fsm("validate", "--format", "json", str(CASES / case))
    assert "Traceback" not in out + err and code == want["exit"], err
    totals = json.loads(out)["totals"]
    assert (totals["read"], totals["unreadable"]) == (want["read"], want["unreadable"])
    assert totals["read"] == totals["judged"] + totals["transport"] + totals["unreadable"]
    _renders_everywhere(validate_log(CASES / case))


@pytest.mark.slow
def test_coverage_guided_fuzzing_finds_no_crash_in_twenty_seconds(tmp_path: Path) -> None:
    """atheris over the readers and the pipeline, seeded with the hostile cases (slow: 20 s)."""
    pytest.importorskip("atheris", reason="atheris is not installed here (pip install atheris)")
    seeds = tmp_path / "corpus"  # (libFuzzer writes what it finds into its first folder: a copy)
    seeds.mkdir()
    for n, case in enumerate(sorted(EXPECTED)):
        (seeds / f"{n}").write_bytes(bytes([n]) + (CASES / case).read_bytes())
    proc = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).parent / "fuzz" / "fuzz_pipeline.py"),
            "-max_total_time=20",
            f"-artifact_prefix={tmp_path}/",  # (a crash's input lands here, not in the working folder)
            str(seeds),
        ],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def _peak_of(args: list[str]) -> tuple[int, str, float]:
    """Exit code, stdout and peak RSS (MB) of the command in a child process of its own."""
    with tempfile.TemporaryFile() as out:
        child = subprocess.Popen(args, stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        return child.returncode, out.read().decode(), usage.ru_maxrss / 1024


@pytest.mark.slow
def test_the_largest_hostile_inputs_are_read_in_bounded_memory(tmp_path: Path) -> None:
    """A 70 MB line and a 60 MB line of 20 million values (orjson alone: 1.9 GB): skipped, under 400 MB."""
    good = json.dumps(UNKNOWN).encode()
    long_line, many = tmp_path / "long-line.jsonl", tmp_path / "many-values.jsonl"
    long_line.write_bytes(good + b"\n" + b'{"x": "' + b"a" * 70 * 2**20 + b'"}\n' + good + b"\n")
    many.write_bytes(good + b"\n[" + b"{}," * (20 * 2**20) + b"{}]\n" + good + b"\n")
    for log in (long_line, many):
        code, out, peak = _peak_of([sys.executable, "-m", "fsm", "validate", "--format", "json", str(log)])
        totals = json.loads(out)["totals"]
        # the two good records route nowhere in the protocol: nothing judged against it exits 2 (D25)
        assert code == 2 and (totals["read"], totals["judged"], totals["unreadable"]) == (3, 2, 1)
        assert peak < 400, f"{log.name}: {peak:.0f} MB"


@pytest.mark.slow
def test_a_zip_bomb_and_a_huge_attached_body_are_read_in_bounded_memory(tmp_path: Path) -> None:
    """A Playwright-style .zip: 300 MB of blanks then junk in its HAR, a 300 MB attached body: under 400 MB.

    The HAR streams (then is read again for salvage only up to longest-record); the attached body
    is bigger than longest-record, so it is reported, not read.
    """
    import zipfile

    entries = to_har(list(generate(1, seed=3, vouchers_per_session=1)))["log"]["entries"]
    entries[1]["response"]["content"] = {
        "size": 300 << 20,
        "mimeType": "application/json",
        "_file": "big.json",
    }
    head = (
        '{"log": {"version": "1.2", "entries": [' + ",".join(json.dumps(e) for e in entries) + ","
    ).encode()
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("har.har", "w", force_zip64=True) as fh:
            fh.write(head)
            for _ in range(300):
                fh.write(b" " * (1 << 20))
            fh.write(b"junk")
        with z.open("big.json", "w", force_zip64=True) as fh:
            for _ in range(300):
                fh.write(b"[" * (1 << 20))
    code, out, peak = _peak_of([sys.executable, "-m", "fsm", "validate", "--format", "json", str(bomb)])
    totals = json.loads(out)["totals"]
    said = [v["message"] for v in json.loads(out)["violations"] if v["rule"] == "input.unreadable"]
    assert code == 1 and totals["judged"] == len(entries) - 1, said
    assert any("longest-record" in m for m in said)
    assert peak < 400, f"{peak:.0f} MB"


@pytest.mark.slow
def test_a_gzip_bomb_of_nesting_in_a_har_is_read_in_bounded_memory(tmp_path: Path) -> None:
    """600 MB of '[' after a HAR's first entry, gzipped to 2.6 MB: 620 MB and 78 s before; under 400 MB."""
    bomb = tmp_path / "deep.har"
    with gzip.open(bomb, "wb", compresslevel=1) as fh:
        fh.write(b'{"log": {"entries": [' + ENTRY + b", ")
        for _ in range(600):
            fh.write(b"[" * (1 << 20))
    code, out, peak = _peak_of([sys.executable, "-m", "fsm", "validate", "--format", "json", str(bomb)])
    totals = json.loads(out)["totals"]
    assert code == 1 and (totals["read"], totals["judged"], totals["unreadable"]) == (2, 1, 1)
    assert peak < 400, f"{peak:.0f} MB"
