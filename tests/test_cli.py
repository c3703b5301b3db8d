"""The voucher-fsm command: exit codes, formats, messages, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fsm.cli import cli, main

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
REFERENCE = REPO / "tests" / "reference"


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    """Run the real entry point (main) and capture exit code, stdout and stderr."""
    runner = CliRunner()
    with runner.isolation(input=stdin) as streams:
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = streams[0].getvalue().decode(), streams[1].getvalue().decode()
    return code, out, err


def test_clean_log_exits_zero_with_a_passing_summary() -> None:
    """A clean log: exit 0 and a summary line that says PASSED."""
    code, out, _ = run("validate", str(EXAMPLES / "session-two-payments.jsonl"))
    assert code == 0
    assert out.rstrip().endswith("PASSED")


def test_broken_log_exits_one_and_names_rules_and_locations() -> None:
    """Errors: exit 1; each violation shows its rule id and FILE:LINE."""
    code, out, _ = run("validate", str(EXAMPLES / "broken.jsonl"))
    assert code == 1
    assert "machine.illegal-transition" in out and "broken.jsonl:10" in out
    assert out.rstrip().endswith("FAILED")


def test_strict_turns_warnings_into_failure(tmp_path: Path) -> None:
    """With --strict a log with only warnings fails."""
    log = tmp_path / "w.jsonl"
    src = (REPO / "tests" / "corpus" / "session-reserve-before-join" / "traffic.jsonl").read_text()
    log.write_text(src)
    assert run("validate", str(log))[0] == 0
    assert run("validate", "--strict", str(log))[0] == 1


def test_severity_flag_can_silence_or_raise_a_rule(tmp_path: Path) -> None:
    """--severity RULE=off removes a rule; RULE=error makes it fail the run."""
    log = REPO / "tests" / "corpus" / "session-reserve-before-join" / "traffic.jsonl"
    code, out, _ = run("validate", "--severity", "session.reserve-before-join=off", str(log))
    assert code == 0 and "  warning" not in out
    assert run("validate", "--severity", "session.reserve-before-join=error", str(log))[0] == 1


@pytest.mark.parametrize(
    "args",
    [
        ("validate", "nope.jsonl"),
        ("validate", "--severity", "x", "f"),
        ("validate", "--severity", "no.such-rule=off", "examples/broken.jsonl"),
        ("validate",),
        ("frobnicate",),
    ],
)
def test_usage_problems_exit_two_with_a_message(
    args: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bad arguments, unknown rules, missing files: exit 2, a one-line message, no traceback."""
    monkeypatch.chdir(REPO)
    code, out, err = run(*args)
    assert code == 2
    assert "Traceback" not in out + err
    assert err.strip()


@pytest.mark.parametrize("fmt", ["json", "junit", "sarif"])
def test_machine_formats_go_to_output_files(fmt: str, tmp_path: Path) -> None:
    """--format json|junit|sarif -o FILE writes the file and a summary on stderr."""
    out_file = tmp_path / f"report.{fmt}"
    code, _, err = run("validate", "-f", fmt, "-o", str(out_file), str(EXAMPLES / "broken.jsonl"))
    assert code == 1
    assert "FAILED" in err
    text = out_file.read_text()
    if fmt == "junit":
        assert text.startswith("<?xml") and "<testcase" in text and "<failure" in text
    else:
        doc = json.loads(text)
        assert (doc["totals"]["errors"] > 0) if fmt == "json" else doc["version"] == "2.1.0"


def test_standard_input_is_read_with_a_dash() -> None:
    """validate - reads the log from stdin."""
    code, out, _ = run("validate", "-", stdin=(EXAMPLES / "session-two-payments.jsonl").read_text())
    assert code == 0 and "<stdin>" in out


def test_config_file_settings_apply(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """[tool.voucher-fsm] in a pyproject.toml found from the working directory is used."""
    (tmp_path / "pyproject.toml").write_text("[tool.voucher-fsm]\nstrict = true\n")
    log = REPO / "tests" / "corpus" / "session-reserve-before-join" / "traffic.jsonl"
    monkeypatch.chdir(tmp_path)
    assert run("validate", str(log))[0] == 1
    (tmp_path / "pyproject.toml").write_text('[tool.voucher-fsm]\nstrict = "maybe"\n')
    code, _, err = run("validate", str(log))
    assert code == 2 and "strict must be true or false" in err


def test_rules_lists_every_rule_with_severity_and_source() -> None:
    """voucher-fsm rules prints one line per rule."""
    code, out, _ = run("rules")
    assert code == 0
    assert "machine.illegal-transition" in out and "D16" in out
    code, out, _ = run("rules", "--format", "json")
    assert {r["id"] for r in json.loads(out)} >= {"schema.request", "actor.wrong-role"}


def test_check_payload_valid_invalid_and_unknown(tmp_path: Path) -> None:
    """check-payload: 0 valid, 1 invalid with pointers, 2 unknown operation or unreadable file."""
    good = tmp_path / "good.json"
    good.write_text(
        json.dumps(
            {
                "expectedPayment": {
                    "network": "polygon",
                    "currency": "EURC",
                    "currencyAddress": "0x73b3db5a96a4b9d9bcfc22b8f1b3d85a5e5b5e5b",
                    "amount": "100",
                    "wallet": {"address": "0xYourWalletAddress"},
                }
            }
        )
    )
    code, out, err = run(
        "check-payload", "POST", "/api/v1/vouchers/vch_1/redeem-voucher", "request", str(good)
    )
    assert code == 0 and "style.hex-address" in out and "valid request of redeem-voucher" in err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"expectedPayment": {"network": "polygon", "currency": "eurc", "amount": "0"}}))
    code, out, _ = run("check-payload", "POST", "/vouchers/vch_1/redeem-voucher", "request", str(bad))
    assert code == 1 and "/expectedPayment/amount" in out and "/expectedPayment/currency" in out
    assert run("check-payload", "POST", "/vouchers/vch_1/nope", "request", str(good))[0] == 2
    assert (
        run("check-payload", "POST", "/vouchers/vch_1/redeem-voucher", "request", str(tmp_path / "x"))[0] == 2
    )


def test_check_payload_error_responses_use_the_envelope(tmp_path: Path) -> None:
    """A 400 answer is checked against the error envelope and the documented codes (D15)."""
    body = tmp_path / "e.json"
    body.write_text(json.dumps({"code": "already_redeemed"}))
    code, _, _ = run(
        "check-payload", "POST", "/vouchers/v/redeem-voucher", "response", str(body), "--status", "400"
    )
    assert code == 0
    body.write_text(json.dumps({"error": "nope"}))
    code, out, _ = run(
        "check-payload", "POST", "/vouchers/v/redeem-voucher", "response", str(body), "--status", "400"
    )
    assert code == 0 and "schema.error-envelope" in out  # a warning does not fail


def test_check_payload_accepts_a_documented_example() -> None:
    """The docs' redeem response example is a valid response."""
    code, _, _ = run(
        "check-payload",
        "POST",
        "/api/v1/vouchers/vch_482916/redeem-voucher",
        "response",
        str(REFERENCE / "023-redeem-voucher-response.json"),
    )
    assert code == 0


def test_spec_lint_is_clean_and_counts_its_checks() -> None:
    """voucher-fsm spec lint exits 0 on the shipped spec."""
    code, _, err = run("spec", "lint")
    assert code == 0 and "clean" in err


def test_openapi_document_is_valid_openapi_3_1(tmp_path: Path) -> None:
    """The generated OpenAPI 3.1 document passes openapi-spec-validator."""
    from openapi_spec_validator import validate

    out = tmp_path / "openapi.json"
    assert run("openapi", "-o", str(out))[0] == 0
    doc = json.loads(out.read_text())
    validate(doc)
    assert len(doc["paths"]) >= 20


def test_generate_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    """Same seed, same bytes; the output validates clean of errors."""
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    assert run("generate", "--sessions", "3", "--seed", "5", "-o", str(a))[0] == 0
    assert run("generate", "--sessions", "3", "--seed", "5", "-o", str(b))[0] == 0
    assert a.read_bytes() == b.read_bytes()
    assert run("validate", str(a))[0] == 0


def test_python_dash_m_fsm_runs_the_same_command() -> None:
    """python -m fsm --version works like voucher-fsm --version."""
    out = subprocess.run(
        [sys.executable, "-m", "fsm", "--version"], capture_output=True, text=True, check=True
    )
    assert "voucher-fsm" in out.stdout


def test_help_lists_the_commands() -> None:
    """--help shows every command."""
    result = CliRunner().invoke(cli, ["--help"])
    for command in ("validate", "rules", "check-payload", "spec", "openapi", "generate"):
        assert command in result.output


def test_top_level_help_shows_examples_one_per_line() -> None:
    """--help keeps the example lines as written (click's \\b marker is not printed)."""
    result = CliRunner().invoke(cli, ["--help"])
    assert "\\b" not in result.output
    assert "\n    voucher-fsm validate traffic.har " in result.output
    assert "\n    voucher-fsm spec lint " in result.output


def test_check_payload_counts_every_error_and_prints_each_pointer_once(tmp_path: Path) -> None:
    """The summary counts the listed errors, each line names its pointer once, {} names both shapes."""
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"expectedPayment": {"network": "polygon", "currency": "eurc", "amount": "0"}}))
    code, out, err = run("check-payload", "POST", "/vouchers/vch_1/redeem-voucher", "request", str(bad))
    lines = out.splitlines()
    assert code == 1 and len(lines) == 4, out
    assert f"({len(lines)} error(s))" in err
    assert all(line.count("/expectedPayment") == 1 for line in lines), out
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    code, out, _ = run("check-payload", "POST", "/vouchers/vch_1/redeem-voucher", "request", str(empty))
    assert code == 1
    assert "SimpleRedeem (with expectedPayment)" in out and "CustomRedeem (with networks, payments)" in out


def test_trace_without_an_id_draws_the_only_session_and_lists_them_when_there_are_several(
    tmp_path: Path,
) -> None:
    """trace LOG picks the log's one session; with several it exits 2 naming them."""
    out_file = tmp_path / "t.mmd"
    code, _, err = run("trace", str(EXAMPLES / "broken.jsonl"), "--out", str(out_file))
    assert code == 0, err
    assert "sequenceDiagram" in out_file.read_text()
    code, _, err = run("trace", str(EXAMPLES / "broken.jsonl"), str(EXAMPLES / "session-two-payments.jsonl"))
    assert code == 2 and "holds 2 sessions" in err and "--session ID" in err


def test_coverage_says_what_it_could_not_read(tmp_path: Path) -> None:
    """coverage: unreadable records are announced; a log with nothing readable exits 2."""
    junk = tmp_path / "junk.jsonl"
    junk.write_text("not json\n{}\n")
    code, _, err = run("coverage", str(junk))
    assert code == 2 and "no exchange could be read" in err
    code, out, err = run("coverage", str(EXAMPLES / "broken.jsonl"), str(junk))
    assert code == 0 and "warning: 2 of" in err and "could not be read" in err
    assert "voucher:" in out


@pytest.mark.parametrize("command", [["diagrams", "--format", "dot"], ["docs"], ["coverage", "EXAMPLE"]])
def test_an_output_folder_that_cannot_be_made_is_a_usage_error(command: list[str], tmp_path: Path) -> None:
    """An --out folder under a file: exit 2 with the path, not an internal error."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    args = [str(EXAMPLES / "broken.jsonl") if a == "EXAMPLE" else a for a in command]
    code, _, err = run(*args, "--out", str(blocker / "sub"))
    assert code == 2, err
    assert "cannot use" in err and str(blocker) in err and "internal error" not in err


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("noise.bin", bytes(range(256)) * 8),
        ("no-entries.har", b'{"log": {"version": "1.2"}}'),
        ("truncated.har", b'{"log":'),
        ("empty.jsonl", b""),
    ],
)
def test_input_that_cannot_be_read_at_all_exits_two(name: str, content: bytes, tmp_path: Path) -> None:
    """A file with no readable record is not a verdict on traffic: exit 2, even beside a good file."""
    bad = tmp_path / name
    bad.write_bytes(content)
    for args in ([str(bad)], [str(EXAMPLES / "session-two-payments.jsonl"), str(bad)]):
        code, out, err = run("validate", *args, "--severity", "input.unreadable=off")
        assert code == 2, err
        assert f"{bad}: " in err and "nothing in it was checked" in err
        assert out.rstrip().endswith(f"NOT CHECKED: nothing readable in {bad}"), out  # never PASSED
        code, out, _ = run("validate", *args, "--severity", "input.unreadable=off", "--format", "json")
        assert code == 2 and json.loads(out)["passed"] is False


@pytest.mark.parametrize("fmt", ["text", "json", "junit", "sarif"])
def test_a_file_name_that_is_not_utf8_is_shown_escaped(fmt: str, tmp_path: Path) -> None:
    """Linux file names are bytes: one that is not UTF-8 is read, and shown escaped in every format."""
    import os

    name = os.fsdecode(bytes(tmp_path) + b"/caf\xe9.jsonl")
    Path(name).write_bytes((EXAMPLES / "session-two-payments.jsonl").read_bytes())
    code, out, err = run("validate", "--format", fmt, name)
    assert code == 0, err
    if fmt == "junit":  # a clean log: no location to show, but well-formed XML
        from xml.etree import ElementTree as ET

        assert ET.fromstring(out.split("\n", 1)[1]).tag == "testsuites"
    elif fmt == "sarif":  # a URI: the name's own bytes, percent-encoded
        assert "/caf%E9.jsonl" in out and "xe9" not in out
    else:  # (JSON escapes the backslash once more)
        shown = "caf\\xe9.jsonl"
        assert (shown if fmt == "text" else json.dumps(shown)[1:-1]) in out


def test_a_report_is_never_written_over_an_input(tmp_path: Path) -> None:
    """-o naming one of the logs is a usage error (exit 2), and the log is left as it was."""
    log = tmp_path / "traffic.jsonl"
    log.write_bytes((EXAMPLES / "session-two-payments.jsonl").read_bytes())
    before = log.read_bytes()
    code, _, err = run("validate", str(log), "--format", "json", "-o", str(tmp_path / "." / "traffic.jsonl"))
    assert code == 2 and "is one of the inputs" in err
    assert log.read_bytes() == before


def test_standard_input_given_twice_is_a_usage_error() -> None:
    """`validate - -`: stdin can be read once; exit 2 with a message, not an internal error."""
    code, _, err = run("validate", "-", "-", stdin=(EXAMPLES / "session-two-payments.jsonl").read_text())
    assert code == 2 and "give it once" in err


@pytest.mark.parametrize(
    ("where", "says"),
    [
        (0.005, "cannot decompress"),  # zlib fails on the first read (the format check)
        (0.025, "stream ended unexpectedly"),  # zlib fails after 13 lines
        (0.5, "stream ended unexpectedly"),  # gzip's CRC check fails at the end
    ],
)
def test_a_corrupt_gzip_log_is_unreadable_input_not_an_internal_error(
    where: float, says: str, tmp_path: Path
) -> None:
    """Two bytes flipped in a gzip stream: what decompressed is judged, the break is reported (D21)."""
    import gzip

    import orjson

    from fsm.generate import generate

    data = bytearray(gzip.compress(b"".join(orjson.dumps(r) + b"\n" for r in generate(40, seed=3))))
    data[int(len(data) * where)] ^= 0xFF
    data[int(len(data) * where) + 1] ^= 0xFF
    bad = tmp_path / "bad.jsonl.gz"
    bad.write_bytes(bytes(data))
    code, out, err = run("validate", "--format", "json", str(bad))
    assert code in (1, 2) and "internal error" not in err
    report = json.loads(out)
    unreadable = [v["message"] for v in report["violations"] if v["rule"] == "input.unreadable"]
    assert any(says in m for m in unreadable), unreadable
    totals = report["totals"]
    assert totals["read"] == totals["judged"] + totals["transport"] + totals["unreadable"]


def test_flags_switch_off_what_a_config_file_switches_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--no-strict and --no-require-complete win over a config file's true (flags win)."""
    (tmp_path / "voucher-fsm.toml").write_text("strict = true\nrequire-complete = true\n")
    monkeypatch.chdir(tmp_path)
    log = str(EXAMPLES / "session-two-payments.jsonl")
    from fsm.generate import generate

    partial = tmp_path / "partial.jsonl"
    partial.write_text("\n".join(json.dumps(r) for r in list(generate(1, seed=2))[:6]) + "\n")
    code, _, _ = run("validate", "--format", "json", str(partial))
    assert code == 1  # the config: incomplete entities warn, warnings fail
    code, out, _ = run("validate", "--format", "json", "--no-strict", "--no-require-complete", str(partial))
    assert code == 0 and not json.loads(out)["strict"]
    assert run("validate", log)[0] == 0


def test_secrets_in_odd_places_never_reach_any_report(tmp_path: Path) -> None:
    """D20: a token as a whole sign-in answer, a password in a time field: in no format, nor check-payload."""
    records = [
        {
            "time": "Bearer abc.def",
            "request": {
                "method": "POST",
                "path": "/api/v1/auth/sign-in",
                "body": {"type": "email-password", "data": {"email": "a@b.c", "password": "hunter2PASSWORD"}},
            },
            "response": {"status": 200, "body": ["SECRETTOKEN_R4"]},
        },
        {
            "time": "password=hunter2TIME",
            "request": {"method": "GET", "path": "/x"},
            "response": {"status": 200},
        },
    ]
    log = tmp_path / "s.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    for fmt in ("text", "json", "junit", "sarif"):
        code, out, err = run("validate", "--format", fmt, str(log))
        assert code == 1, err
        assert not [s for s in ("SECRETTOKEN", "hunter2", "abc.def") if s in out + err], fmt
    assert "schema.response" in out and "characters that are no timestamp" in out
    for side, body in (("request", ["hunter2PASSWORD"]), ("response", ["SECRETTOKEN_R4"])):
        payload = tmp_path / f"{side}.json"
        payload.write_text(json.dumps(body))
        code, out, err = run("check-payload", "POST", "/api/v1/auth/sign-in", side, str(payload))
        assert code == 1 and "secret:" in out
        assert "hunter2" not in out + err and "SECRETTOKEN" not in out + err


def test_a_payload_file_that_is_not_text_is_a_usage_error(tmp_path: Path) -> None:
    """check-payload on binary bytes says it is not UTF-8, not an encoder's complaint about surrogates."""
    payload = tmp_path / "body.json"
    payload.write_bytes(b"\xff\xfe\x00\x01")
    code, _, err = run("check-payload", "POST", "/api/v1/auth/sign-in", "request", str(payload))
    assert code == 2 and "not UTF-8 text (byte 0)" in err


def test_every_output_file_gets_its_folders_made(tmp_path: Path) -> None:
    """-o into folders that do not exist yet: validate and generate both make them."""
    report = tmp_path / "a" / "report.json"
    log = tmp_path / "b" / "c" / "traffic.jsonl"
    assert run("generate", "--sessions", "1", "-o", str(log))[0] == 0
    assert run("validate", str(log), "--format", "json", "-o", str(report))[0] == 0
    assert json.loads(report.read_text())["totals"]["read"] == len(log.read_text().splitlines())


def _sign_in(password: Any, status: int, answer: Any, *, text: str | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {"method": "POST", "path": "/api/v1/auth/sign-in"}
    if text is None:
        request["body"] = {"type": "email-password", "data": {"email": "a@b.c", "password": password}}
    else:
        request["bodyText"] = text
    return {"request": request, "response": {"status": status, "body": answer}}


def test_secrets_in_error_answers_and_unparsed_bodies_never_reach_any_report(tmp_path: Path) -> None:
    """D20: a token in a broken error answer, under a secret field in a list, escaped in JSON, in text."""
    long = "x" * 80
    records = [
        _sign_in("pw-one-1234", 401, {"authorization": {"jwt": "SECRET5-jwt"}}),
        _sign_in("pw-two-1234", 400, {"token": ["SECRET6-list"]}),
        _sign_in('Se"cretQQ12345', 400, {"echo": {"password": 'Se"cretQQ12345'}, "error": long}),
        _sign_in(None, 200, {}, text='{"data": {"password": SECRET1-text}}'),
    ]
    log = tmp_path / "s.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    leaks = ("SECRET", "cretQQ", "pw-one", "pw-two")
    for fmt in ("text", "json", "junit", "sarif"):
        code, out, err = run("validate", "--format", fmt, str(log))
        assert code == 1, err
        assert not [s for s in leaks if s in out + err], (fmt, [s for s in leaks if s in out + err])
    assert "schema.error-envelope" in out and "input.body-not-json" in out


def test_check_payload_reads_a_body_saved_with_a_byte_order_mark(tmp_path: Path) -> None:
    """A JSON file a Windows editor saved with a BOM is read like any other."""
    payload = tmp_path / "body.json"
    payload.write_bytes(b"\xef\xbb\xbf" + json.dumps({"code": "ABC123"}).encode())
    code, _, err = run("check-payload", "POST", "/api/v1/vouchers/reserve-voucher", "request", str(payload))
    assert code == 0 and "valid request" in err


def test_scrubbing_a_sign_in_answer_leaves_the_words_of_the_report_alone(tmp_path: Path) -> None:
    """A broken error answer to sign-in: the report's own words intact (nothing scrubbed out of them)."""
    log = tmp_path / "refused.jsonl"
    log.write_text(json.dumps(_sign_in("pw-three-1234", 401, {"error": "invalid_credentials"})) + "\n")
    code, out, _ = run("validate", str(log))
    assert code == 0 and "pw-three" not in out  # (a malformed error body is a warning)
    assert "the 401 body of sign-in is not an error envelope" in out and "secret:" not in out
    assert "not shown: this call carries a secret" in out  # its body may echo one (D20)


def test_a_non_json_answer_to_a_call_that_carries_a_secret_is_not_quoted(tmp_path: Path) -> None:
    """sign-voucher sends a signature: an answer that is not JSON may echo it, so it is never quoted."""
    record = {
        "request": {
            "method": "POST",
            "path": "/api/v1/vouchers/vch_1234567890/sign-voucher",
            "bodyText": '{"publicKey": "k", "signature": LEAKSIG1234}',
        },
        "response": {"status": 200, "bodyText": "<html>bad signature LEAKSIG1234</html>"},
    }
    log = tmp_path / "sig.jsonl"
    log.write_text(json.dumps(record) + "\n")
    for fmt in ("text", "json"):
        _, out, _ = run("validate", "--format", fmt, str(log))
        assert "input.body-not-json" in out and "LEAKSIG" not in out, fmt


def test_a_report_may_go_to_dev_null_whatever_stdin_reads() -> None:
    """-o /dev/null with stdin from /dev/null is no input being overwritten (only regular files count)."""
    import os

    if not os.path.exists("/dev/null"):
        pytest.skip("no /dev/null on this system")
    result = subprocess.run(
        [sys.executable, "-m", "fsm", "validate", "-", "--format", "json", "-o", "/dev/null"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "one of the inputs" not in result.stderr and result.returncode == 2  # (nothing to read)


def test_a_broken_error_answer_to_a_call_that_carries_a_secret_is_not_quoted(tmp_path: Path) -> None:
    """A sign-in refusal that echoes the password from a query or an earlier opaque token: not shown."""
    record = _sign_in("pw-four-1234", 400, {"code": 400, "message": "wrong password QUERYPASS123"})
    record["request"]["path"] += "?password=QUERYPASS123"
    log = tmp_path / "echo.jsonl"
    log.write_text(json.dumps(record) + "\n")
    for fmt in ("text", "json", "junit", "sarif"):
        _, out, _ = run("validate", "--format", fmt, str(log))
        assert "QUERYPASS" not in out and "pw-four" not in out, fmt
    assert "schema.error-envelope" in out


@pytest.mark.parametrize("width", [50, 80, 200])
def test_top_level_help_gives_every_command_its_whole_summary(width: int) -> None:
    """No command summary in --help is cut with "...", at the narrowest width click draws and wider."""
    result = CliRunner().invoke(cli, ["--help"], terminal_width=width)
    commands = result.output.split("Commands:\n", 1)[1]
    assert "..." not in commands
    for name, command in cli.commands.items():
        assert command.short_help, name
        assert " ".join(command.short_help.split()) in " ".join(commands.split()), name


def test_validate_help_lists_every_exit_code() -> None:
    """validate --help ends with the exit codes 0, 1, 2 and 3 and what each means."""
    result = CliRunner().invoke(cli, ["validate", "--help"])
    codes = result.output.split("Exit codes:\n", 1)[1]
    meanings = [("0", "no error-level"), ("1", "error level"), ("2", "could not be used"), ("3", "internal")]
    for code, meaning in meanings:
        assert f"\n    {code}  " in "\n" + codes and meaning in codes, code


def test_rules_piped_prints_a_header_and_columns_that_line_up() -> None:
    """Piped, `rules` prints a header, then a line per rule, each column starting where the header's does."""
    from fsm.spec import load_spec

    code, out, _ = run("rules")
    lines = out.splitlines()
    assert code == 0 and len(lines) == len(load_spec().rules) + 1
    header = lines[0]
    assert header.split()[:3] == ["rule", "severity", "source"] and header.rstrip().endswith("what it checks")
    starts = [header.index(word) for word in ("severity", "source", "what it checks")]
    for line in lines[1:]:
        for start in starts:
            assert line[start - 2 : start] == "  " and line[start] != " ", (line, start)


def test_rules_on_a_terminal_is_a_table_with_a_header(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal, `rules` is a rich table: the header row, then each rule id at the left edge."""
    import fsm.cli

    monkeypatch.setattr(fsm.cli, "_on_terminal", lambda: True)
    code, out, _ = run("rules")
    assert code == 0
    assert out.splitlines()[0].split()[:3] == ["rule", "severity", "source"]
    assert "\nmachine.illegal-transition " in out and "\n  machine" not in out
    code, out, _ = run("rules", "--format", "json")
    assert json.loads(out)[0].keys() == {"id", "severity", "source", "title", "hint"}


def test_text_report_numbers_exchanges_from_one_as_it_numbers_lines() -> None:
    """In a log of one exchange per line, each timeline's #N is its line number, and the report says so."""
    import re

    code, out, _ = run("validate", str(EXAMPLES / "broken.jsonl"))
    assert code == 1
    assert "numbering: #N counts exchanges from 1 in the order read; FILE:LINE counts lines from 1" in out
    pairs = re.findall(r"^    #(\d+)\s+\S+broken\.jsonl:(\d+) ", out, re.M)
    assert pairs and all(n == line for n, line in pairs), pairs


def test_validate_names_the_settings_file_it_found_in_a_parent_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A config file found above the working directory is named on stderr; none found, nothing is said."""
    (tmp_path / "pyproject.toml").write_text('[tool.voucher-fsm.severity]\n"style.hex-address" = "off"\n')
    (tmp_path / "deep" / "er").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "deep" / "er")
    code, _, err = run("validate", str(EXAMPLES / "session-two-payments.jsonl"))
    assert code == 0 and f"voucher-fsm: settings from {tmp_path / 'pyproject.toml'}" in err
    (tmp_path / "pyproject.toml").unlink()
    code, _, err = run("validate", str(EXAMPLES / "session-two-payments.jsonl"))
    assert code == 0 and "settings from" not in err


def test_trace_without_graphviz_suggests_file_names_trace_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without dot, `trace -o x.svg` fails naming the install command and -o x.mmd / x.dot, not --format."""
    import fsm.diagrams.render

    monkeypatch.setattr(fsm.diagrams.render.shutil, "which", lambda name: None)
    target = tmp_path / "t.svg"
    code, _, err = run("trace", str(EXAMPLES / "broken.jsonl"), "-o", str(target))
    assert code == 2 and "apt-get install -y graphviz" in err
    assert f"-o {tmp_path / 't'}.mmd or -o {tmp_path / 't'}.dot" in err and "--format" not in err
    assert not target.exists()
    code, _, err = run("trace", str(EXAMPLES / "broken.jsonl"), "-o", str(tmp_path / "t.mmd"))
    assert code == 0, err


def test_docs_check_tells_a_missing_page_from_a_stale_one(tmp_path: Path) -> None:
    """docs --check says `missing:` for a generated page that is not there, `stale:` for one that differs."""
    import shutil

    out = tmp_path / "docs"
    shutil.copytree(REPO / "docs", out)
    assert run("docs", "--check", "--out", str(out))[0] == 0
    (out / "rules.md").unlink()
    (out / "reference" / "voucher.md").write_text("old\n")
    code, stdout, _ = run("docs", "--check", "--out", str(out))
    assert code == 1
    assert f"missing: {out / 'rules.md'}" in stdout and f"stale: {out / 'reference' / 'voucher.md'}" in stdout
    assert "stale: " + str(out / "rules.md") not in stdout
