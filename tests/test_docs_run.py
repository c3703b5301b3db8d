"""Every shell command and code block a user reads in README.md and docs/ runs as written (issue 14).

Each block is run from a scratch folder that holds a copy of examples/ and the files the docs name
as the user's own (``capture.har``, ``traffic.jsonl``, ``logs/*.jsonl``, ``body.json``, mitmproxy's
``flows``, ...), made from the bundled examples or taken with the real tool:

- ``sh``: the block runs in bash, stopping at the first command that fails (``-e -o pipefail``);
  the few commands that install software, run the whole suite or a minutes-long benchmark are
  listed in SKIPPED with the reason and the test that covers them instead;
- ``console``: the ``$`` command runs; its exit code is the one the docs' summary line implies and
  every output line shown (``...`` elides) is in the real output;
- ``python``: a block of test functions (docs/testing.md) runs under pytest as a test file;
  README's, docs/library.md's and docs/embedding.md's run in tests/test_docs_examples.py;
- ``toml``: the settings file is accepted by ``voucher-fsm validate``; ``json``: the record parses
  and has the exchange record's shape; ``text`` (report excerpts) and ``mermaid`` are output, not
  code.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fsm.generate import generate
from tests.realtools.capture import REPO, capture_mitm_client, mitmdump_path

PAGES = ["README.md", *(f"docs/{p.name}" for p in sorted((REPO / "docs").glob("*.md")))]
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)

# command lines that do not run here, each with the reason and what covers it instead
SKIPPED = {
    "pip install": "installs into the running environment: .ci/run runs the README's install command on a "
    "clean clone, tests/test_packaging.py installs the wheel into a fresh virtual environment",
    "apt-get install": "installs a Debian package as root from the network: .ci/run does it",
    "python -m pytest": "runs the whole suite, this test included: .ci/run runs it",
    "voucher-fsm validate --dask": "needs a Dask cluster at that address: tests/test_distributed.py runs "
    "the same on a 2-worker LocalCluster",
    "python benchmarks/": "a benchmark of minutes: its figures are in docs/performance.md",
    "mkdir -p /tmp/voucher-fsm-src": "builds the compiled wheel (minutes): tests/test_packaging.py (slow)",
    "HATCH_BUILD_HOOK_ENABLE_MYPYC": "builds the compiled wheel (minutes): tests/test_packaging.py (slow)",
}
# run in order, in one namespace, by tests/test_docs_examples.py
PYTHON_ELSEWHERE = {"docs/library.md", "README.md", "docs/embedding.md", "docs/sandbox.md"}
OUTPUT_ONLY = {"text", "mermaid"}


def _blocks() -> list[tuple[str, int, str, str]]:
    found = []
    for page in PAGES:
        text = (REPO / page).read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            found.append((page, text[: m.start()].count("\n") + 1, m.group(1), m.group(2)))
    return found


BLOCKS = _blocks()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the files the docs' commands name, made from the bundled examples."""
    root = tmp_path_factory.mktemp("docs-world")
    shutil.copytree(REPO / "examples", root / "examples")
    har, jsonl = (
        REPO / "examples" / "session-two-payments.har",
        REPO / "examples" / "session-two-payments.jsonl",
    )
    (root / "captures").mkdir()
    for name in ("capture.har", "captures/checkout.har"):
        shutil.copy(har, root / name)
    for name in ("traffic.jsonl", "big.jsonl"):
        shutil.copy(jsonl, root / name)
    (root / "logs").mkdir()
    names = ("monday.jsonl.gz", "tuesday.jsonl.gz", "logs/a.jsonl", "logs/b.jsonl", "logs/c.jsonl.gz")
    for n, name in enumerate(names):
        lines = "".join(json.dumps(r) + "\n" for r in generate(2, seed=100 + n, partial=False)).encode()
        (root / name).write_bytes(gzip.compress(lines) if name.endswith(".gz") else lines)
    redeem = next(r for r in generate(1, seed=1) if r["request"]["path"].endswith("/redeem-voucher"))
    (root / "body.json").write_text(json.dumps(redeem["request"]["body"]))
    (root / "error.json").write_text(json.dumps({"code": "already_redeemed", "message": "redeemed before"}))
    if mitmdump_path() is not None:  # mitmproxy's own flow file, for `mitmdump -nr flows`
        capture_mitm_client(jsonl, root / "flows", flows=True)
    return root


def _env() -> dict[str, str]:
    path = [str(Path(sys.executable).parent)]
    mitmdump = mitmdump_path()
    if mitmdump is not None:
        path.append(str(mitmdump.parent))
    return {**os.environ, "PATH": os.pathsep.join([*path, os.environ.get("PATH", "")])}


def _sh(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return _run(["bash", "-e", "-o", "pipefail", "-c", script], cwd)


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd,
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _runnable(code: str) -> tuple[str, list[str]]:
    """The block without the skipped command lines, and the reasons they were skipped."""
    kept, reasons = [], []
    for line in code.splitlines():
        reason = next((why for start, why in SKIPPED.items() if line.strip().startswith(start)), None)
        if reason:
            reasons.append(f"{line.split('#')[0].strip()}: {reason}")
        else:
            kept.append(line)
    return "\n".join(kept), reasons


def _id(block: tuple[str, int, str, str]) -> str:
    return f"{block[0]}:{block[1]}:{block[2]}"


@pytest.mark.parametrize("block", [b for b in BLOCKS if b[2] == "sh"], ids=_id)
def test_shell_block_runs_as_written(block: tuple[str, int, str, str], world: Path) -> None:
    """Each command of the block exits 0 from a folder holding the files it names."""
    page, line, _, code = block
    script, reasons = _runnable(code)
    if not script.strip():
        pytest.skip("; ".join(reasons))
    if "mitmdump" in script and mitmdump_path() is None:
        pytest.skip("mitmdump is absent (.ci/run installs mitmproxy into .venv-mitm)")
    if re.search(r"diagrams --out|docs$|-o \S+\.svg", script, re.M) and shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is absent (apt-get install -y graphviz)")
    result = _sh(script, world)
    assert result.returncode == 0, (
        f"{page}:{line}\n{script}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    )


@pytest.mark.parametrize("block", [b for b in BLOCKS if b[2] == "console"], ids=_id)
def test_console_block_prints_what_it_shows(block: tuple[str, int, str, str], world: Path) -> None:
    """The command runs with the exit code its summary implies, and prints every line shown."""
    _, _, _, code = block
    command, *shown = code.splitlines()
    assert command.startswith("$ ")
    result = _sh(command[2:], world)
    summary = shown[-1]
    assert result.returncode == (1 if summary.endswith("FAILED") else 0), result.stderr
    printed = " ".join((result.stdout + result.stderr).split())
    for text in shown:  # "..." elides: the pieces around it are printed, in order
        at = 0
        for piece in (" ".join(p.split()) for p in text.split("...")):
            found = printed.find(piece, at) if piece else at
            assert found >= 0, f"{piece!r} (of {text.strip()!r}) is not in the output"
            at = found + len(piece)


@pytest.mark.parametrize(
    "block", [b for b in BLOCKS if b[2] == "python" and b[0] == "docs/testing.md"], ids=_id
)
def test_python_block_of_test_functions_passes_under_pytest(
    block: tuple[str, int, str, str], world: Path
) -> None:
    """docs/testing.md's blocks are test files: pytest collects them and they pass."""
    page, line, _, code = block
    test = world / f"test_docs_block_{line}.py"
    test.write_text(code)
    # fewer Hypothesis examples than its default 100, fixed: the block is run, not soak-tested
    (world / "conftest.py").write_text(
        "from hypothesis import settings\n"
        "settings.register_profile('docs', max_examples=10, derandomize=True, deadline=None)\n"
        "settings.load_profile('docs')\n"
    )
    result = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test.name], world)
    assert result.returncode == 0, f"{page}:{line}\n{result.stdout[-3000:]}"
    assert " passed" in result.stdout


@pytest.mark.parametrize("block", [b for b in BLOCKS if b[2] == "toml"], ids=_id)
def test_toml_block_is_a_settings_file_the_kit_accepts(
    block: tuple[str, int, str, str], tmp_path: Path
) -> None:
    """Written where the docs say (voucher-fsm.toml, or pyproject.toml's table), validate reads it."""
    _, _, _, code = block
    name = "pyproject.toml" if re.search(r"^\[tool\.voucher-fsm\]", code, re.M) else "voucher-fsm.toml"
    (tmp_path / name).write_text(code)
    result = _sh(f"voucher-fsm validate {REPO / 'examples' / 'session-two-payments.jsonl'}", tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"settings from {tmp_path / name}" in result.stderr


@pytest.mark.parametrize("block", [b for b in BLOCKS if b[2] == "json"], ids=_id)
def test_json_block_is_an_exchange_record(block: tuple[str, int, str, str]) -> None:
    """The log-format page's record parses and has the exchange record's shape."""
    from fsm import ExchangeRecord

    ExchangeRecord.model_validate(json.loads(block[3]))


def test_every_block_is_run_or_skipped_for_a_stated_reason() -> None:
    """No block language slips through: each is run above, output only, or run by another test."""
    for page, line, lang, _ in BLOCKS:
        handled = {"sh", "console", "toml", "json"} | OUTPUT_ONLY
        if lang == "python":
            assert page == "docs/testing.md" or page in PYTHON_ELSEWHERE, f"{page}:{line}"
        else:
            assert lang in handled, f"{page}:{line}: a ```{lang} block no test runs"
