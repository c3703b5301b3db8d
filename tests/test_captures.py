"""HAR files written by real tools get the verdicts the protocol gives them (issue 14).

tests/captures/ holds captures that mitmproxy 11 and Chromium (through Playwright) wrote from a
replay server on 127.0.0.1 (tests/realtools/), with the verdict each must get in index.json. The
first test judges the committed files; the second re-takes every capture with the tools installed
here and judges the fresh files the same way, so the corpus cannot drift from what the tools write.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.realtools.capture import CAPTURES, CHROMIUM, capture, index, mitmdump_path, tools_of
from tests.test_cli import run

ROWS = index()
NEEDS = "needs D22/D25 from issue 14 validator half"


def verdict(path: Path, args: list[str]) -> tuple[int, list[str]]:
    """Exit code, and the sorted rule ids reported at error or warning level."""
    code, out, _ = run("validate", str(path), *args, "--format", "json")
    if not out.strip():  # an option or input the kit refused before writing a report
        return code, []
    report = json.loads(out)
    rules = {v["rule"] for v in report["violations"] if v["severity"] in ("error", "warning")}
    return code, sorted(rules)


def _cases() -> list[Any]:
    cases = []
    for row in ROWS:
        for n, want in enumerate(row["verdicts"]):
            marks = (
                [pytest.mark.xfail(strict=True, reason=f"{NEEDS}: {want['needs']}")] if want["needs"] else []
            )
            cases.append(pytest.param(row, want, marks=marks, id=f"{row['file']}-{n}"))
    return cases


def _tools_missing(row: dict[str, Any]) -> str | None:
    if row["capture"] == "hand-made":
        return (
            f"hand-made after {row['tool']}'s output ({row['source']}); {row['tool']} is not installed here"
        )
    tools = tools_of(row["capture"])
    if "chromium" in tools and not CHROMIUM.is_file():
        return f"{CHROMIUM} is absent (.ci/run installs Debian's chromium)"
    if "mitmproxy" in tools and mitmdump_path() is None:
        return "mitmdump is absent (.ci/run installs mitmproxy into .venv-mitm; or set VOUCHER_FSM_MITMDUMP)"
    return None


def test_the_corpus_holds_every_kind_of_capture_the_issue_names() -> None:
    """Both tools, clean and broken flows, embed, attach, omit, minimal, no API traffic, a gateway prefix."""
    kinds = {row["capture"] for row in ROWS}
    assert kinds == {
        "mitm-client",
        "mitm-client-redirect",
        "chromium-embed",
        "chromium-attach-zip",
        "chromium-omit",
        "chromium-minimal",
        "chromium-minimal-omit",
        "chromium-mitm",
        "chromium-mitm-h2",
        "chromium-h2",
        "chromium-no-api",
        "hand-made",
    }
    assert {row["tool"] for row in ROWS if row["capture"] != "hand-made"} == {"mitmproxy", "chromium"}
    assert {v["exit"] for row in ROWS for v in row["verdicts"]} == {0, 1, 2}
    assert any(row.get("prefix", "/api/v1") != "/api/v1" for row in ROWS)
    for row in ROWS:
        assert (CAPTURES / row["file"]).is_file(), row["file"]
        assert row["version"] and row["client"], row["file"]


def test_hand_made_captures_name_their_tool_source_and_quirks_and_are_what_the_script_writes() -> None:
    """Tools not installed here: each file labelled as made by hand, from what source, with which quirks."""
    from tests.realtools.handmade import TOOLS, text

    made = {row["file"]: row for row in ROWS if row["capture"] == "hand-made"}
    assert set(made) == set(TOOLS)
    assert {row["tool"] for row in made.values()} >= {
        "Firefox DevTools",
        "Safari Web Inspector",
        "Chrome DevTools",
        "Charles Proxy",
        "Fiddler Classic",
        "Fiddler Everywhere",
        "HTTP Toolkit",
        "Insomnia",
        "OWASP ZAP",
    }
    for name, row in made.items():
        assert row["made"].startswith("by hand") and row["source"] and row["quirks"], name
        assert (CAPTURES / name).read_text(encoding="utf-8") == text(name), (
            f"run python -m tests.realtools.handmade ({name})"
        )


@pytest.mark.parametrize(("row", "want"), _cases())
def test_a_committed_capture_gets_its_expected_verdict(row: dict[str, Any], want: dict[str, Any]) -> None:
    """The exit code and the error/warning rule ids are exactly the index's."""
    assert verdict(CAPTURES / row["file"], want["args"]) == (want["exit"], want["rules"])


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Takes a row's capture once per run, into a temporary folder; returns its path."""
    folder = tmp_path_factory.mktemp("captures")
    taken: dict[str, Path] = {}

    def take(row: dict[str, Any]) -> Path:
        if row["file"] not in taken:
            out = folder / row["file"]
            assert capture(row, out)["tool"] == row["tool"]
            taken[row["file"]] = out
        return taken[row["file"]]

    return take


@pytest.mark.parametrize(("row", "want"), _cases())
def test_a_fresh_capture_gets_the_same_verdict(row: dict[str, Any], want: dict[str, Any], fresh: Any) -> None:
    """Re-taken now with the installed mitmproxy and Chromium, the capture is judged the same way."""
    missing = _tools_missing(row)
    if missing:
        pytest.skip(missing)
    assert verdict(fresh(row), want["args"]) == (want["exit"], want["rules"])
