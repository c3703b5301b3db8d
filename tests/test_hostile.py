"""Hostile input (D20, D21): no secret out, no run lost, no input unbounded.

Each case runs the real command in its own process, in every report format, and asserts what a
user relies on: no traceback, the documented exit code, totals that add up, and that no secret
planted by ``tests/hostile/plant.py`` appears in stdout, stderr or the report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fsm.secrets import Scrubber, bounded, fingerprint, shown, shown_path
from tests.hostile import plant

FORMATS = ("text", "json", "sarif", "junit")


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
