"""Every JSON body on the docs' API reference pages, against its operation's schema and model.

The examples must pass, except those whose INDEX notes say they break a documented
constraint of their own operation: those must fail on exactly that field.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from fsm._validators import validator
from fsm.models import SCHEMA_MODELS
from fsm.spec import load_spec

# Copied from the Bleepay API reference pages (INDEX.md says which page each came from): in the
# repository, so no test skips on a clean clone.
REFERENCE = Path(__file__).resolve().parent / "reference"

# file -> the JSON pointers where it breaks its own operation's documented constraints
EXPECTED_FAILURES = {
    "001-sign-in-request.json": ["/data/installationId", "/data/password"],  # 15 and 23 chars, 32 needed
    "009-sign-up-request.json": ["/data/challenge"],  # 46 chars, exactly 48 needed
    # 012-get-challenge-response.json conflicts with sign-up's 48, but get-challenge documents no
    # length of its own, so it passes its own schema.
}


def _rows() -> list[tuple[str, str, str, str]]:
    rows = []
    for line in (REFERENCE / "INDEX.md").read_text().splitlines():
        if line.startswith("| `0"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            method, path = cells[2].strip("`").split(" ", 1)
            rows.append((cells[0].strip("`"), method, path, cells[3]))
    return rows


def _schema_for(method: str, path: str, kind: str) -> str:
    template = re.sub(r":(\w+)", r"{\1}", path.removeprefix("/api/v1")).rstrip("/")
    op = next(o for o in load_spec().operations if o.method == method and o.path.rstrip("/") == template)
    rel = op.request if kind == "request" else op.responses[200]
    assert rel is not None
    return rel


ROWS = _rows()


def test_the_index_lists_every_example_file() -> None:
    """All 46 documented bodies are covered."""
    assert len(ROWS) == len(list(REFERENCE.glob("0*.json"))) == 46


@pytest.mark.parametrize(("name", "method", "path", "kind"), ROWS, ids=[r[0] for r in ROWS])
def test_documented_example_against_its_schema_and_model(
    name: str, method: str, path: str, kind: str
) -> None:
    """Valid under schema and model, or failing on exactly the listed pointers."""
    rel = _schema_for(method, path, kind)
    body = json.loads((REFERENCE / name).read_text())
    issues = validator(rel, fast=False).issues(body)
    try:
        SCHEMA_MODELS[rel].model_validate(body)
        model_ok = True
    except ValidationError:
        model_ok = False
    expected = EXPECTED_FAILURES.get(name, [])
    assert sorted({i.pointer for i in issues}) == sorted(expected), [i.message for i in issues]
    assert model_ok == (not expected)
    assert validator(rel).is_valid(body) == (not expected)
