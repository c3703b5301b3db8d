"""What real capture tools write is read and judged right (issue 14; D22, D25).

HTTP mechanics (CORS preflights, HEAD, redirects, 304s, upgrades, non-HTTP entries) are transport;
containers are told from their content (zip, zlib, gzip, bzip2, xz); Playwright's attached bodies
are read beside the HAR or from its archive; a sanitized HAR is said once; where the API lives is a
setting, and a run that judges nothing against the protocol is no pass.
"""

from __future__ import annotations

import bz2
import io
import json
import lzma
import shutil
import zipfile
import zlib
from copy import deepcopy
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fsm.cli import main
from fsm.config import Config, load_config
from fsm.errors import UsageError
from fsm.generate import generate, to_har
from fsm.pipeline import Validator, validate_log
from fsm.readers.har import in_time_order
from fsm.render import render
from fsm.report import Report

SAMPLES = Path(__file__).parent / "har-samples"
CAPTURES = Path(__file__).parent / "captures"
EXPECTED = json.loads((SAMPLES / "expected.json").read_text())["samples"]


def run(*args: str) -> tuple[int, str, str]:
    """The real entry point: exit code, stdout, stderr."""
    runner = CliRunner()
    with runner.isolation() as streams:
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        return code, streams[0].getvalue().decode(), streams[1].getvalue().decode()


def _session() -> list[dict[str, Any]]:
    return list(generate(1, seed=7, vouchers_per_session=2, partial=False, tour=False))  # one session


def _har(records: list[dict[str, Any]]) -> dict[str, Any]:
    return to_har(deepcopy(records))


def _write_har(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc))
    return path


def _report(path: Path, **config: Any) -> Report:
    v = Validator(config=Config(**config))
    v.feed_file(str(path))
    return v.finish()


def _rules(report: Report) -> set[str]:
    return {v.rule_id for v in report.violations}


# ----------------------------------------------------------------------------- real samples
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_capture_a_real_tool_wrote_gets_its_expected_verdict(name: str) -> None:
    """Playwright (embed, attach, .zip) and mitmproxy (.har, .zhar): only the broken server errs."""
    want = EXPECTED[name]
    code, out, err = run("validate", "--format", "json", *want["args"], str(SAMPLES / want.get("file", name)))
    doc = json.loads(out)
    assert "Traceback" not in err
    assert code == want["exit"], err
    assert sorted({v["rule"] for v in doc["violations"]}) == want["rules"]
    totals = doc["totals"]
    assert (totals["errors"], totals["warnings"]) == (want.get("errors", 0), 0)
    assert totals["transport"] == want["transport"]
    assert totals["read"] == totals["judged"] + totals["transport"] + totals["unreadable"]
    assert totals["unreadable"] == 0


def test_the_same_capture_in_every_container_gives_the_same_verdict() -> None:
    """Plain, attached, zipped: one session, one set of findings (locations aside)."""
    reports = [validate_log(SAMPLES / n) for n in ("chromium-attach/capture.har", "chromium.zip")]
    assert [(v.rule_id, v.message) for v in reports[0].violations] == [
        (v.rule_id, v.message.replace("chromium.zip", "chromium-attach/capture.har"))
        for v in reports[1].violations
    ]
    mitm = [validate_log(SAMPLES / n) for n in ("chromium-mitmproxy.har", "chromium-mitmproxy.zhar")]
    assert mitm[0].totals == mitm[1].totals


def test_a_worker_process_gives_the_same_report_on_real_captures() -> None:
    """Transport, lost bodies and the sanitized check hold when a second process reads (parallel)."""
    for name in ("chromium-mitmproxy.zhar", "chromium.har"):
        one = Validator()
        one.feed_file(str(SAMPLES / name))
        two = Validator()
        two.feed_file(str(SAMPLES / name), parallel=True)
        assert render(one.finish(), "json") == render(two.finish(), "json")


# ----------------------------------------------------------------------------- transport (D22)
def _browser_session(tmp_path: Path) -> tuple[list[dict[str, Any]], Path]:
    """A clean session with a CORS preflight before every call, as a browser sends them."""
    records = []
    for r in _session():
        pre = deepcopy(r)
        pre["request"] = {
            "method": "OPTIONS",
            "path": r["request"]["path"],
            "headers": {"access-control-request-method": "POST", "origin": "https://app.example"},
        }
        pre["response"] = {"status": 204, "headers": {"access-control-allow-origin": "*"}}
        records += [pre, r]
    path = tmp_path / "browser.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return records, path


def test_cors_preflights_are_transport_counted_apart_and_said_once_a_file(tmp_path: Path) -> None:
    """12 preflights: no error, one info, 12 transport; read = judged + transport + unreadable."""
    _records, path = _browser_session(tmp_path)
    report = validate_log(path)
    assert report.errors == report.warnings == 0
    assert report.by_rule() == {"transport.preflight": 1}
    t = report.totals
    assert (t.read, t.judged, t.transport, t.unreadable) == (24, 12, 12, 0) and t.adds_up
    assert report.inputs[0].transport == 12 and report.exit_code == 0


def test_an_options_request_without_preflight_headers_is_still_an_unknown_method(tmp_path: Path) -> None:
    """Only Access-Control-Request-Method makes an OPTIONS a preflight (D22)."""
    records, _ = _browser_session(tmp_path)
    del records[2]["request"]["headers"]["access-control-request-method"]
    path = tmp_path / "plain-options.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    report = validate_log(path)
    assert report.by_rule()["route.unknown-method"] == 1
    assert report.totals.transport == 11


def test_transport_never_steps_a_machine(tmp_path: Path) -> None:
    """A 307 and a 304 on a voucher's routes leave it where its calls put it."""
    records = _session()
    redeem = next(i for i, r in enumerate(records) if r["request"]["path"].endswith("/redeem-voucher"))
    voucher = records[redeem]["request"]["path"].split("/")[-2]
    moved = deepcopy(records[redeem])
    moved["response"] = {"status": 307, "headers": {"location": moved["request"]["path"]}}
    again = deepcopy(records[redeem])
    again["request"] = {"method": "GET", "path": f"/api/v1/vouchers/{voucher}", "headers": {}}
    again["response"] = {"status": 304, "headers": {}}
    v = Validator()
    for r in records[:redeem]:
        v.feed(r)
    before = v.state_of(f"voucher:{voucher}")
    assert [x.rule_id for x in v.feed(moved)] == ["transport.redirect"]
    assert [x.rule_id for x in v.feed(again)] == ["transport.not-modified"]
    assert v.state_of(f"voucher:{voucher}") == before
    assert v.feed(deepcopy(moved)) == []  # (said once a file)
    for r in records[redeem:]:
        v.feed(r)
    report = v.finish()
    assert report.errors == report.warnings == 0 and report.totals.transport == 3


def test_a_post_without_body_that_followed_no_redirect_still_breaks_its_schema(tmp_path: Path) -> None:
    """The lost-body allowance needs a 307/308 that carried a body, to the same method and path."""
    records = _session()
    redeem = next(i for i, r in enumerate(records) if r["request"]["path"].endswith("/redeem-voucher"))
    moved = deepcopy(records[redeem])
    moved["response"] = {"status": 303, "headers": {"location": moved["request"]["path"]}}  # (a GET follows)
    bare = deepcopy(records[redeem])
    del bare["request"]["body"]
    v = Validator()
    for r in [*records[:redeem], moved]:
        v.feed(r)
    assert "schema.request" in {x.rule_id for x in v.feed(bare)}
    moved307 = deepcopy(moved)
    moved307["response"]["status"] = 307
    v = Validator()
    for r in [*records[:redeem], moved307]:
        v.feed(r)
    assert [x.rule_id for x in v.feed(deepcopy(bare))] == ["transport.body-lost"]


def test_websocket_and_non_http_entries_of_a_har_are_transport(tmp_path: Path) -> None:
    """Chrome's websocket entry (status 101, _webSocketMessages) and a chrome-extension: URL."""
    doc = _har(_session())
    socket = deepcopy(doc["log"]["entries"][0])
    socket["request"].update(method="GET", url="wss://api.bleepay.example/api/v1/stream", headers=[])
    socket["response"].update(status=101, headers=[], content={"size": 0, "mimeType": "x-unknown"})
    socket["_resourceType"] = "websocket"
    socket["_webSocketMessages"] = [{"type": "send", "time": 1.5, "opcode": 1, "data": "hi"}]
    extension = deepcopy(socket)
    del extension["_resourceType"], extension["_webSocketMessages"]
    extension["request"]["url"] = "chrome-extension://abcdef/background.js"
    extension["response"]["status"] = 200
    doc["log"]["entries"][1:1] = [socket, extension]
    report = validate_log(_write_har(tmp_path / "ws.har", doc))
    assert _rules(report) == {"transport.websocket", "transport.non-http"}
    assert report.totals.transport == 2 and report.errors == 0


def test_transport_is_counted_in_every_report_format(tmp_path: Path) -> None:
    """Text, JSON, SARIF and JUnit all carry the transport count."""
    _, path = _browser_session(tmp_path)
    report = validate_log(path)
    assert ", 12 transport, " in render(report, "text")
    assert json.loads(render(report, "json"))["totals"]["transport"] == 12
    assert json.loads(render(report, "sarif"))["runs"][0]["properties"]["totals"]["transport"] == 12
    assert '<property name="records.transport" value="12" />' in render(report, "junit")


# ----------------------------------------------------------------------------- every HAR real tools write
@pytest.mark.parametrize(
    ("name", "pack"),
    [
        ("capture.bin", lambda b: zlib.compress(b, 9)),
        ("capture.har", lambda b: bz2.compress(b)),
        ("capture.jsonl", lambda b: lzma.compress(b)),
    ],
)
def test_a_compressed_har_is_told_from_its_content_not_its_name(tmp_path: Path, name: str, pack: Any) -> None:
    """zlib (mitmproxy's .zhar), bzip2 and xz, whatever the file is called."""
    raw = json.dumps(_har(_session())).encode()
    path = tmp_path / name
    path.write_bytes(pack(raw))
    report = validate_log(path)
    assert report.inputs[0].format == "har" and report.totals.judged == 12 and report.exit_code == 0


def test_a_zip_archive_is_told_from_its_content_and_its_har_read(tmp_path: Path) -> None:
    """Playwright's .zip, renamed .har: its HAR member is found and its attached bodies read."""
    path = tmp_path / "renamed.har"
    shutil.copy(SAMPLES / "chromium.zip", path)
    report = validate_log(path)
    assert report.errors == 0 and report.totals.judged == 16


@pytest.mark.parametrize(
    ("magic", "said"),
    [(b"\x28\xb5\x2f\xfd", "zstd"), (b"7z\xbc\xaf\x27\x1c", "7-Zip"), (b"Rar!\x1a\x07\x00", "RAR")],
)
def test_a_container_the_kit_cannot_read_says_what_it_is(tmp_path: Path, magic: bytes, said: str) -> None:
    """One unreadable record naming the container and how to unpack it; exit 2."""
    path = tmp_path / "capture.har"
    path.write_bytes(magic + b"\x00" * 64)
    report = validate_log(path)
    assert report.totals.unreadable == 1 and report.exit_code == 2
    assert said in report.violations[0].message and "unpack it first" in report.violations[0].message


def test_a_zip_without_a_har_or_damaged_says_so(tmp_path: Path) -> None:
    """A zip of other files, and a zip cut short: one unreadable record each, in the kit's words."""
    other = tmp_path / "photos.zip"
    with zipfile.ZipFile(other, "w") as z:
        z.writestr("a.png", b"x")
        z.writestr("b.png", b"y")
    cut = tmp_path / "cut.zip"
    cut.write_bytes((SAMPLES / "chromium.zip").read_bytes()[:3000])
    assert "no .har file among its 2 files" in validate_log(other).violations[0].message
    report = validate_log(cut)
    assert report.exit_code == 2 and "zip archive" in report.violations[0].message


def _attached(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """The attach-mode sample copied, and its HAR as data."""
    folder = tmp_path / "attach"
    shutil.copytree(SAMPLES / "chromium-attach", folder)
    return folder / "capture.har", json.loads((folder / "capture.har").read_text())


def test_attached_bodies_are_read_beside_the_har(tmp_path: Path) -> None:
    """record_har_content="attach": bodies in sibling files, resolved relative to the HAR."""
    har, _ = _attached(tmp_path)
    report = validate_log(har)
    assert report.errors == report.warnings == 0 and report.totals.judged == 16


def test_a_missing_or_escaping_attached_file_makes_its_entry_unreadable_saying_which(tmp_path: Path) -> None:
    """A missing sibling; a name going up or absolute is never read (D20: no file outside the HAR's)."""
    har, doc = _attached(tmp_path)
    secret = tmp_path / "secret.json"
    secret.write_text('{"password": "TOPSECRET123"}')
    entries = doc["log"]["entries"]
    with_body = [i for i, e in enumerate(entries) if "_file" in e["response"]["content"]]
    (har.parent / entries[with_body[0]]["response"]["content"]["_file"]).unlink()
    entries[with_body[1]]["response"]["content"]["_file"] = "../secret.json"
    entries[with_body[2]]["response"]["content"]["_file"] = str(secret)
    har.write_text(json.dumps(doc))
    _code, out, err = run("validate", "--format", "json", str(har))
    found = {
        v["entry"]: v["message"] for v in json.loads(out)["violations"] if v["rule"] == "input.unreadable"
    }
    assert sorted(found) == with_body[:3]
    assert "cannot be read beside the HAR" in found[with_body[0]]
    assert all("not read" in found[i] for i in with_body[1:3])
    assert "TOPSECRET123" not in out + err


def test_an_attached_body_beyond_longest_record_is_not_read(tmp_path: Path) -> None:
    """The bound on one record bounds an attached file too, beside the HAR and in a zip."""
    har, _ = _attached(tmp_path)
    report = _report(har, longest_record=200)
    too_big = [v for v in report.violations if "longest-record" in v.message]
    assert too_big and all(v.rule_id == "input.unreadable" for v in too_big)
    archive = _report(SAMPLES / "chromium.zip", longest_record=200)
    assert [v.message for v in archive.violations if "longest-record" in v.message] == [
        v.message for v in too_big
    ]


def test_attached_bodies_cannot_be_read_from_standard_input(tmp_path: Path) -> None:
    """Standard input has no folder: the entries with attached bodies say so."""
    v = Validator()
    v.feed_file("-", stdin=io.BytesIO((SAMPLES / "chromium-attach" / "capture.har").read_bytes()))
    report = v.finish()
    assert any("standard input" in x.message for x in report.violations)
    assert report.totals.adds_up


def test_offsets_forms_base64_and_compression_in_a_har_are_read(tmp_path: Path) -> None:
    """Firefox's +01:00 times, a form's params, a base64 body and content.compression."""
    records = _session()
    doc = _har(records)
    for e in doc["log"]["entries"]:
        e["startedDateTime"] = e["startedDateTime"].replace("T12:", "T13:").replace("Z", "+01:00")
        content = e["response"]["content"]
        if "text" in content:
            content["text"] = __import__("base64").b64encode(content["text"].encode()).decode()
            content["encoding"] = "base64"
            content["compression"] = 12
    report = validate_log(_write_har(tmp_path / "firefox.har", doc))
    assert report.violations == () and report.totals.judged == 12
    form = deepcopy(doc)
    post = form["log"]["entries"][0]["request"]["postData"]
    form["log"]["entries"][0]["request"]["postData"] = {
        "mimeType": "application/x-www-form-urlencoded",
        "params": [{"name": "type", "value": "mobile-device"}, {"name": "password", "value": "FORMPASS99"}],
    }
    assert post["text"]
    _code, out, err = run("validate", "--format", "json", str(_write_har(tmp_path / "form.har", form)))
    assert "input.body-not-json" in {v["rule"] for v in json.loads(out)["violations"]}
    assert "FORMPASS99" not in out + err and "Traceback" not in err


def test_a_har_body_left_out_is_said_and_not_checked_but_an_empty_one_is_still_judged(tmp_path: Path) -> None:
    """No text with a size (Firefox, Playwright's omit) or a content type and no size (minimal): not kept.

    A size of 0 says the body was empty: a call answered with no body still breaks its schema.
    """
    doc = _har(_session())
    entries = doc["log"]["entries"]
    posts = [e for e in entries if e["request"].get("postData", {}).get("text")]
    for e in entries:
        e["response"]["content"] = {"size": 160, "mimeType": "application/json", "comment": "not included"}
    posts[0]["request"]["postData"]["text"] = ""
    posts[0]["request"]["bodySize"] = 153
    posts[1]["request"]["postData"] = {"mimeType": "application/json"}
    posts[1]["request"]["bodySize"] = -1
    entries[2]["response"]["content"] = {"size": -1, "mimeType": "application/json; charset=utf-8"}
    report = validate_log(_write_har(tmp_path / "omitted.har", doc))
    assert report.errors == report.warnings == 0, report.by_rule()
    assert report.by_rule()["input.body-not-checked"] == len(entries) + 2
    assert {v.instance_path for v in report.violations if v.rule_id == "input.body-not-checked"} == {
        "/request/body",
        "/response/body",
    }
    for e in entries:
        e["response"]["content"] = {"size": 0, "mimeType": "x-unknown", "text": ""}
    posts[0]["request"]["bodySize"] = 0
    report = validate_log(_write_har(tmp_path / "empty.har", doc))
    assert "input.body-not-checked" in report.by_rule()  # (posts[1]: postData alone, no size)
    assert report.by_rule()["schema.response"] >= len(entries) - 2
    assert "schema.request" in report.by_rule()  # (posts[0]: bodySize 0, an empty body)


def test_a_blocked_request_off_the_api_is_an_outside_path_and_an_aborted_call_has_no_response(
    tmp_path: Path,
) -> None:
    """Status 0 (Chrome's _error net::ERR_BLOCKED_BY_CLIENT): an ad blocker's victim is no warning.

    Before, every status-0 entry was input.no-response (a warning: --strict failed on a blocked
    analytics beacon). A call to the API left unanswered still is, and steps nothing (D25).
    """
    doc = json.loads((CAPTURES / "chromium-embed.har").read_text())
    entries = doc["log"]["entries"]
    blocked = deepcopy(entries[1])
    blocked["request"]["url"] = "https://analytics.example.com/collect?v=1"
    blocked["response"] = {"status": 0, "statusText": "", "httpVersion": "", "headers": [], "cookies": []}
    blocked["response"].update(
        content={"size": 0, "mimeType": "x-unknown"}, _error="net::ERR_BLOCKED_BY_CLIENT"
    )
    entries.insert(2, blocked)
    report = validate_log(_write_har(tmp_path / "blocked.har", doc))
    assert report.warnings == report.errors == 0 and report.by_rule()["route.outside-api"] == 3
    aborted = deepcopy(entries[-1])  # (context-close sent again, never answered)
    aborted["response"] = deepcopy(blocked["response"])
    aborted["startedDateTime"] = entries[-1]["startedDateTime"].replace("Z", "9Z")
    entries.append(aborted)
    report = validate_log(_write_har(tmp_path / "aborted.har", doc))
    assert report.by_rule()["input.no-response"] == 1 and report.errors == 0
    only = {"log": {"entries": [blocked, aborted]}}
    _write_har(tmp_path / "only.har", only)
    code, _out, err = run("validate", str(tmp_path / "only.har"))
    assert code == 2 and "no exchange was judged against the protocol" in err


def test_an_answer_the_browser_cache_gave_is_transport_not_a_stale_observation(tmp_path: Path) -> None:
    """Chrome's _fromCache (memory, disk) and Safari's _fetchType (Memory/Disk Cache) after the close.

    The cached GET of the session still says OPEN: before, observe.status-mismatch (error).
    """
    doc = json.loads((CAPTURES / "chromium-embed.har").read_text())
    entries = doc["log"]["entries"]
    look = next(e for e in entries if e["request"]["method"] == "GET" and "/sessions/" in e["request"]["url"])
    for n, (field, value) in enumerate([("_fromCache", "disk"), ("_fetchType", "Memory Cache")]):
        stale = deepcopy(look)
        stale["startedDateTime"] = entries[-1]["startedDateTime"].replace("Z", f"{n}Z")
        stale[field] = value
        entries.append(stale)
    report = validate_log(_write_har(tmp_path / "cached.har", doc))
    assert report.errors == report.warnings == 0, report.by_rule()
    assert report.by_rule()["transport.cache"] == 1 and report.totals.transport == 2
    entries[-1]["_fetchType"] = "Network Load"  # (the server's answer: judged, and it breaks D17)
    assert "observe.status-mismatch" in validate_log(_write_har(tmp_path / "net.har", doc)).by_rule()


def test_http_toolkit_bodies_kept_apart_or_discarded_are_read_or_said(tmp_path: Path) -> None:
    """HTTP Toolkit: a body postData cannot hold sits in _content (base64); one too large is discarded.

    Without postData, a discarded body is not a missing one (before: schema.request errors).
    """
    doc = _har(_session())
    posts = [e["request"] for e in doc["log"]["entries"] if e["request"].get("postData", {}).get("text")]
    kept, dropped = posts[0], posts[1]
    text = kept.pop("postData")["text"]
    kept["_requestBodyStatus"] = "discarded:not-representable"
    kept["_content"] = {"text": __import__("base64").b64encode(text.encode()).decode(), "size": len(text)}
    kept["_content"]["encoding"] = "base64"
    del dropped["postData"]
    dropped["_requestBodyStatus"] = "discarded:too-large"
    dropped["comment"] = "Body discarded during HAR generation: longer than limit of 1 bytes"
    report = validate_log(_write_har(tmp_path / "httptoolkit.har", doc))
    assert report.errors == report.warnings == 0, report.by_rule()
    assert report.by_rule()["input.body-not-checked"] == 1
    del dropped["_requestBodyStatus"]  # (no status: a request sent without a body)
    assert "schema.request" in validate_log(_write_har(tmp_path / "bare.har", doc)).by_rule()


def test_har_entries_are_judged_in_the_order_of_their_start_times(tmp_path: Path) -> None:
    """Fiddler or Charles export the session list as sorted on screen: HAR 1.2 says the reader sorts.

    Reversed, the clean session is still clean (before: 17 time.backwards and 5 illegal
    transitions); the broken one still breaks the same rules; locations stay the file's.
    """
    for capture in ("chromium-embed.har", "chromium-broken.har"):
        doc = json.loads((CAPTURES / capture).read_text())
        sorted_report = validate_log(CAPTURES / capture)
        doc["log"]["entries"].reverse()
        shuffled = validate_log(_write_har(tmp_path / capture, doc))
        assert shuffled.by_rule() == sorted_report.by_rule()
        n = len(doc["log"]["entries"])
        assert [
            (v.rule_id, n - 1 - v.location.entry) for v in shuffled.violations if v.location.entry is not None
        ] == [(v.rule_id, v.location.entry) for v in sorted_report.violations if v.location.entry is not None]


def test_time_order_holds_a_bounded_window_and_keeps_entries_without_time_in_place() -> None:
    """Beyond the window an entry comes where it is (its step back is said); ties and untimed keep order."""

    def item(n: int, time: str | None) -> tuple[int, Any, None]:
        return n, ({"time": time} if time is not None else {"no": "time"}), None

    times = ["2026-01-01T00:00:05Z", "2026-01-01T00:00:02Z", None, "2026-01-01T00:00:02+00:00", "bad"]
    got = [n for n, _, _ in in_time_order(iter([item(n, t) for n, t in enumerate(times)]))]
    assert got == [1, 2, 3, 4, 0]
    late = [item(n, f"2026-01-01T00:00:{59 - n:02d}Z") for n in range(10)]
    assert [n for n, _, _ in in_time_order(iter(late), window=3)] == [3, 4, 5, 6, 7, 8, 9, 2, 1, 0]
    assert [n for n, _, _ in in_time_order(iter([(None, None, "broken"), item(1, None)]))] == [None, 1]


def test_a_sanitized_har_says_once_that_actors_cannot_be_judged(tmp_path: Path) -> None:
    """No Authorization, no cookie anywhere: one info, none of the per-call warnings; the count kept."""
    doc = _har(_session())
    for e in doc["log"]["entries"]:
        e["request"]["headers"] = [h for h in e["request"]["headers"] if h["name"] != "authorization"]
    path = _write_har(tmp_path / "sanitized.har", doc)
    report = validate_log(path)
    assert report.by_rule() == {"input.sanitized": 1}
    assert "10 calls that need a token" in report.violations[0].message
    parallel = Validator(config=Config(kept_per_rule=1))  # (counted beyond the kept ones too)
    parallel.feed_file(str(path), parallel=True)
    assert parallel.finish().by_rule() == {"input.sanitized": 1}


def test_a_har_with_some_authorization_or_cookie_keeps_its_per_call_warnings(tmp_path: Path) -> None:
    """One token, or cookies, and the capture is not sanitized: each unauthenticated call is said."""
    doc = _har(_session())
    for e in doc["log"]["entries"][2:]:
        e["request"]["headers"] = [h for h in e["request"]["headers"] if h["name"] != "authorization"]
    assert "actor.unauthenticated" in _rules(validate_log(_write_har(tmp_path / "some.har", doc)))
    for e in doc["log"]["entries"]:
        e["request"]["headers"] = [h for h in e["request"]["headers"] if h["name"] != "authorization"]
    doc["log"]["entries"][0]["request"]["headers"].append({"name": "Cookie", "value": "sid=1"})
    assert "actor.unauthenticated" in _rules(validate_log(_write_har(tmp_path / "cookie.har", doc)))


# ----------------------------------------------------------------------------- where the API is (D25)
def test_nothing_judged_against_the_protocol_exits_2_naming_path_templates_and_the_option() -> None:
    """The gateway capture: exit 2, /gateway/api/v1 paths as templates (no raw id), --api-prefix."""
    code, out, err = run("validate", str(SAMPLES / "gateway.har"))
    assert code == 2
    assert "no exchange was judged against the protocol" in err
    assert "/gateway/api/v1/vouchers/sessions/{id}/reserve-voucher (2)" in err
    assert "--api-prefix /gateway/api/v1" in err and "NOT CHECKED" in out
    assert "ses_a8f506b4093" not in err  # (a template, never a value: D20)


def test_nothing_judged_is_no_pass_in_every_report_format() -> None:
    """JSON (passed false, not_judged), SARIF (execution failed) and JUnit (an error case)."""
    report = validate_log(SAMPLES / "gateway.har")
    doc = json.loads(render(report, "json"))
    assert doc["passed"] is False and doc["not_judged"]["advice"].startswith("the API seems to sit")
    sarif = json.loads(render(report, "sarif"))["runs"][0]["invocations"][0]
    assert sarif["executionSuccessful"] is False and sarif["exitCode"] == 2
    assert 'type="not-judged"' in render(report, "junit")


def test_the_api_prefix_is_an_option_a_config_key_and_a_validator_argument(tmp_path: Path) -> None:
    """--api-prefix, api-prefix in voucher-fsm.toml, Validator(api_prefix=...): the gateway is judged."""
    gateway = str(SAMPLES / "gateway.har")
    assert run("validate", "--api-prefix", "/gateway/api/v1/", gateway)[0] == 0
    toml = tmp_path / "voucher-fsm.toml"
    toml.write_text('api-prefix = "/gateway/api/v1"\n')
    assert run("validate", "--config", str(toml), gateway)[0] == 0
    assert load_config(toml).api_prefix == "/gateway/api/v1"
    v = Validator(api_prefix="/gateway/api/v1")
    v.feed_file(gateway)
    assert v.finish().exit_code == 0
    assert run("validate", "--api-prefix", "gateway", gateway)[0] == 2
    with pytest.raises(UsageError, match="api-prefix"):
        Config(api_prefix="gateway")


def test_hosts_leave_out_other_hosts_and_say_which(tmp_path: Path) -> None:
    """--host: exchanges on other hosts are not judged (once a host); no host given: any host."""
    doc = _har(_session())
    other = deepcopy(doc["log"]["entries"][0])
    other["request"]["url"] = other["request"]["url"].replace("api.bleepay.example", "cdn.example.org")
    doc["log"]["entries"].insert(1, other)
    path = _write_har(tmp_path / "two-hosts.har", doc)
    assert validate_log(path).totals.judged == 13
    report = _report(path, hosts=("api.bleepay.example",))
    assert report.exit_code == 0 and report.by_rule() == {"route.outside-api": 1}
    assert "cdn.example.org" in report.violations[0].message
    code, _, err = run("validate", "--host", "api.example.com", str(path))
    assert code == 2 and "left out by --host" in err
    toml = tmp_path / "voucher-fsm.toml"
    toml.write_text('hosts = ["API.bleepay.example:443"]\n')
    assert load_config(toml).hosts == ("api.bleepay.example:443",)
    with pytest.raises(UsageError, match="hosts"):
        Config(hosts="api.bleepay.example")  # type: ignore[arg-type]


def test_a_record_without_a_host_is_judged_whatever_the_hosts(tmp_path: Path) -> None:
    """JSONL records of paths alone: the host is unknown, so --host leaves nothing out."""
    path = tmp_path / "paths.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in _session()) + "\n")
    report = _report(path, hosts=("api.example.com",))
    assert report.exit_code == 0 and report.totals.judged == 12


def test_check_traffic_fails_a_test_whose_capture_judged_nothing() -> None:
    """The pytest helper holds D25 too: the gateway capture fails, and passes with its prefix."""
    from fsm.pytest_plugin import check_traffic

    with pytest.raises(pytest.fail.Exception, match="judged nothing"):
        check_traffic(SAMPLES / "gateway.har", config=Config())
    assert check_traffic(SAMPLES / "gateway.har", config=Config(api_prefix="/gateway/api/v1")).routed == 14


def test_time_order_holds_entries_spanning_at_most_its_byte_budget() -> None:
    """Entries of big bodies: the window is bounded by the bytes they came from, not only by count."""
    read = 0

    def items() -> Any:
        nonlocal read
        for n in range(20):
            read += 10  # each entry 10 bytes of HAR text, written newest first
            yield n, {"time": f"2026-01-01T00:00:{59 - n:02d}Z"}, None

    def order(budget: int) -> tuple[list[Any], int]:
        out: list[Any] = []
        most = 0
        for position, _, _ in in_time_order(items(), spent=lambda: read, budget=budget):
            out.append(position)
            most = max(most, read // 10 - (len(out) - 1))  # read so far, less those handed on
        return out, most

    read = 0
    assert order(10_000) == (list(range(19, -1, -1)), 20)  # all held: fully sorted
    read = 0
    out, most = order(25)
    assert most <= 3 and sorted(out) == list(range(20))  # at most 25 bytes held (+ the one read)
