"""Test the artifact, not the checkout: build the wheel, install it into a fresh venv, use it."""

from __future__ import annotations

import json
import shutil
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests import compiled_build
from tests.compiled_build import build_wheel
from tests.conftest import COMPILED_BUILD

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout."""
    return build_wheel(REPO, tmp_path_factory.mktemp("dist"))


def _fresh_venv(env_dir: Path, wheel: Path) -> Path:
    """A new virtual environment with ``wheel`` installed (returns its python).

    It sees this environment's packages, not its voucher-fsm: a .pth file lists this
    environment's site-packages directories (.pth files inside them, such as an editable
    install's, are not processed), so nothing is downloaded and the wheel's fsm is the only one.
    """
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    own = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    theirs = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (Path(own) / "zz_test_dependencies.pth").write_text("".join(p + "\n" for p in theirs))
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)],
        check=True,
        capture_output=True,
    )
    return py


@pytest.mark.slow
def test_the_wheel_carries_every_schema_and_protocol_file(wheel: Path) -> None:
    """schemas/ is packaged as fsm/schemas, with fsm/protocol and py.typed."""
    names = set(zipfile.ZipFile(wheel).namelist())
    root = REPO / "schemas"
    schemas = {f"fsm/schemas/{p.relative_to(root).as_posix()}" for p in root.rglob("*.json")}
    protocol = {f"fsm/protocol/{p.name}" for p in (REPO / "fsm" / "protocol").glob("*.json")}
    assert schemas and schemas <= names
    assert protocol and protocol <= names
    assert "fsm/py.typed" in names
    assert not any(n.startswith(("tests/", "diagrams/", "examples/")) for n in names)


@pytest.mark.slow
def test_the_installed_wheel_loads_the_spec_and_checks_a_payload(wheel: Path, tmp_path: Path) -> None:
    """In a fresh virtual environment, away from the checkout, the spec loads and check-payload runs."""
    env_dir = tmp_path / "venv"
    py = _fresh_venv(env_dir, wheel)
    where = subprocess.run(
        [
            str(py),
            "-c",
            "import fsm, fsm._resources as r; print(fsm.__file__); print(r.schemas_dir()); fsm.load_spec()",
        ],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert str(env_dir) in where[0] and where[1].startswith(str(env_dir)), where
    body = tmp_path / "redeem.json"
    body.write_text(
        json.dumps(
            {
                "expectedPayment": {
                    "network": "polygon",
                    "currency": "EURC",
                    "currencyAddress": "0x" + "ab" * 20,
                    "amount": "0",
                    "wallet": {"address": "0x" + "cd" * 20},
                }
            }
        )
    )
    cli = env_dir / "bin" / "voucher-fsm"
    result = subprocess.run(
        [str(cli), "check-payload", "POST", "/api/v1/vouchers/vch_1/redeem-voucher", "request", str(body)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1, result.stderr
    assert "/expectedPayment/amount" in result.stdout
    lint = subprocess.run([str(cli), "spec", "lint"], cwd=tmp_path, capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


# Run by both builds on the same inputs: one JSON report per input file.
_REPORTS = """
import copy, json, pickle, sys
import fsm.diagrams, fsm.stepper  # (every subpackage made it into the wheel)
from fsm.stepper.lifecycle import GENERATED
from fsm.pipeline import validate_log
from fsm.render.json import report_to_dict
from fsm.shards import validate_sharded
from fsm.spec import load_spec
spec, report = load_spec(), validate_log(sys.argv[1])
for value in (spec, report):  # the records pickle and copy (the compiled ones through their constructor)
    assert pickle.loads(pickle.dumps(value)) == value and copy.deepcopy(value) == value, type(value)
print(json.dumps({"stepper": fsm.stepper.__file__, "generated": GENERATED,
                  "reports": [report_to_dict(validate_log(p)) for p in sys.argv[1:]],
                  "two_processes": [report_to_dict(validate_log(p, parallel=True)) for p in sys.argv[1:]],
                  "all": report_to_dict(validate_log(sys.argv[1:])),
                  "shards": report_to_dict(validate_sharded(sys.argv[1:], jobs=2))},
                 default=str))
"""


_SANDBOX = """
import json, sys
import fsm.sandbox.core
from fsm.sandbox import FAULTS, Sandbox
P = "/api/v1"
PAY = {"network": "polygon", "currency": "EURC", "amount": "100", "wallet": {"address": "0x" + "2" * 40},
       "currencyAddress": "0x73b3db5a96a4b9d9bcfc22b8f1b3d85a5e5b5e5b"}
answers = []
def call(sb, method, path, body=None, token=None, raw=None):
    headers = {"authorization": "Bearer " + token} if token else {}
    data = raw if raw is not None else json.dumps(body).encode() if body is not None else b""
    answer = sb.handle(method, P + path, {}, headers, data)
    answers.append(answer)
    return answer[1] if isinstance(answer[1], dict) else {}
def session(sb, n):
    device = {"type": "mobile-device", "data": {"installationId": f"{n:040x}", "password": "p" * 40}}
    payer = call(sb, "POST", "/auth/sign-in", device).get("authorization", {}).get("token")
    opened = {"format": "alphanum", "payers": [{"address": "0x" + "1" * 40}]}
    code = call(sb, "POST", "/vouchers/contexts/context-open", opened, payer).get("code")
    resource = {"type": "resource", "data": {"resource": f"voucher::context::code::{code}"}}
    payee = call(sb, "POST", "/auth/sign-in", resource).get("authorization", {}).get("token")
    opens = {"code": code, "type": "SESSION_DEFAULT"}
    sid = call(sb, "POST", "/vouchers/sessions/session-open", opens, payee).get("id")
    call(sb, "POST", f"/vouchers/sessions/{sid}/session-join", {}, payer)
    for _ in range(2):
        vid = call(sb, "POST", f"/vouchers/sessions/{sid}/reserve-voucher", {}, payee).get("id")
        for _ in range(2):
            call(sb, "POST", f"/vouchers/{vid}/redeem-voucher", {"expectedPayment": PAY}, payee)
        call(sb, "GET", f"/vouchers/{vid}", None, payer)
        supplied = {"suppliedPayment": {**PAY, "currency": "USDC"}}
        call(sb, "POST", f"/vouchers/{vid}/negotiate-voucher", supplied, payer)
        call(sb, "POST", f"/vouchers/{vid}/resolve-voucher", {"receipts": [{"paymentId": "pay_1"}]}, payee)
    call(sb, "POST", f"/vouchers/sessions/{sid}/session-close", {}, payee)
    call(sb, "POST", f"/vouchers/sessions/{sid}/reserve-voucher", {}, payee)
    call(sb, "GET", f"/vouchers/sessions/{sid}", None, payer)
    call(sb, "POST", "/vouchers/contexts/context-open", {"format": 7}, payer)
    call(sb, "POST", "/vouchers/contexts/context-open", raw=b"{not json")
    call(sb, "GET", "/vouchers/vch_none", None, payer)
    call(sb, "GET", "/nowhere")
    convert = {"amount": "10", "sourceCurrency": "EURC", "targetCurrency": "USDC"}
    call(sb, "POST", "/finance/convert-amount", convert)
    call(sb, "GET", "/finance/currencies", None, payer)
for faults in ((), tuple(FAULTS)):
    sb = Sandbox(seed=3, faults=faults)
    for n in range(3):
        session(sb, n)
    answers.append((sb.exchanges, sb.self_findings, sb.faults_state()))
print(json.dumps({"core": fsm.sandbox.core.__file__, "answers": answers}))
"""


def _inputs(tmp_path: Path) -> list[str]:
    """The examples, every corpus trace, and a generated log with one of every mutation."""
    from fsm.generate import generate

    log = tmp_path / "generated.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in generate(60, seed=7)))
    junk = tmp_path / "junk.jsonl"  # lines that are JSON but no record, and lines that are not JSON
    junk.write_text(
        '["a"]\n"text"\n42\nnull\ntrue\n{"request": 1}\n{not json\n' + json.dumps(next(generate(1))) + "\n"
    )
    files = [
        log,
        junk,
        *sorted((REPO / "examples").glob("*.jsonl")),
        *sorted((REPO / "examples").glob("*.har")),
    ]
    files += sorted(p for p in (REPO / "tests" / "corpus").glob("*/traffic.*"))
    files += sorted((REPO / "tests" / "captures").glob("*.har"))  # (real and hand-made tools' quirks)
    return [str(f) for f in files]


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("cc") is None and shutil.which("gcc") is None,
    reason="no C compiler here: the optional compiled (mypyc) build cannot be made",
)
def test_the_compiled_build_gives_the_same_reports_as_pure_python(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """HATCH_BUILD_HOOK_ENABLE_MYPYC=1 builds the hot path with mypyc; its verdicts equal the reference's."""
    pytest.importorskip("hatch_mypyc", reason="hatch-mypyc (in the test extra) builds the compiled wheel")
    # started in the background at collection (tests/conftest.py), or here when this test runs alone
    started = request.config.stash.get(COMPILED_BUILD, None)
    if started is None:
        started = compiled_build.start(tmp_path / "build"), tmp_path / "build"
    whl = compiled_build.wait(*started)
    assert "-cp3" in whl.name and "none-any" not in whl.name, whl.name  # a platform wheel
    env_dir = tmp_path / "venv"
    py = _fresh_venv(env_dir, whl)
    inputs = _inputs(tmp_path)
    runs = {}
    for name, exe in (("compiled", str(py)), ("pure", sys.executable)):
        done = subprocess.run(
            [exe, "-c", _REPORTS, *inputs], cwd=tmp_path, check=True, capture_output=True, text=True
        )
        runs[name] = json.loads(done.stdout)
    assert runs["compiled"]["stepper"].endswith(".so"), runs["compiled"]["stepper"]
    assert runs["pure"]["stepper"].endswith(".py"), runs["pure"]["stepper"]
    # pure Python writes each operation's step as its own function; the compiled build keeps its own
    assert (runs["pure"]["generated"], runs["compiled"]["generated"]) == (True, False)
    assert len(runs["pure"]["reports"]) == len(inputs) > 40
    assert sum(len(r["violations"]) for r in runs["pure"]["reports"]) > 40  # the inputs do break rules
    sandbox = {}  # the sandbox's answering (fsm/sandbox/core.py) is compiled too: the same answers
    for name, exe in (("compiled", str(py)), ("pure", sys.executable)):
        done = subprocess.run([exe, "-c", _SANDBOX], cwd=tmp_path, check=True, capture_output=True, text=True)
        sandbox[name] = json.loads(done.stdout)
    assert sandbox["compiled"]["core"].endswith(".so") and sandbox["pure"]["core"].endswith(".py")
    assert len(sandbox["pure"]["answers"]) > 150
    assert sandbox["compiled"]["answers"] == sandbox["pure"]["answers"]
    for path, compiled, pure, two in zip(
        inputs,
        runs["compiled"]["reports"],
        runs["pure"]["reports"],
        runs["compiled"]["two_processes"],
        strict=True,
    ):
        assert compiled == pure, path
        assert two == pure, f"{path} (compiled, two processes)"
    # every input in one run, on one process and (--jobs 2) on two shards: fsm.shards is compiled too
    assert runs["compiled"]["shards"] == runs["pure"]["all"] == runs["pure"]["shards"]
