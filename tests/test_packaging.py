"""Test the artifact, not the checkout: build the wheel, install it into a fresh venv, use it."""

from __future__ import annotations

import json
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    [whl] = out.glob("voucher_fsm-*.whl")
    return whl


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
    venv.create(env_dir, with_pip=True, system_site_packages=True)  # dependencies come from the system
    py = env_dir / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)],
        check=True,
        capture_output=True,
    )
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
