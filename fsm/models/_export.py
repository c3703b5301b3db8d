"""Write the JSON Schemas from the models: ``python -m fsm.models._export [--check] [DIR]``.

The models are the source of truth; each schema file gets ``$schema`` (2020-12),
an ``$id`` under https://voucher-fsm.dev/schemas/, and keys in a stable order.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic.json_schema import GenerateJsonSchema

from fsm._resources import schema_uri
from fsm.models import SCHEMA_MODELS

__all__ = ["build_schemas", "check_schemas", "write_schemas"]

DRAFT = "https://json-schema.org/draft/2020-12/schema"
_FIRST = ("$schema", "$id", "title", "description", "type")


class _Generator(GenerateJsonSchema):
    """Pydantic's generator, emitting draft 2020-12 with $defs (its default) and sorted keys."""


def _ordered(schema: dict[str, Any]) -> dict[str, Any]:
    head = {k: schema[k] for k in _FIRST if k in schema}
    return {**head, **{k: v for k, v in schema.items() if k not in head}}


def build_schemas() -> dict[str, dict[str, Any]]:
    """Every schema document, keyed by relative id."""
    out: dict[str, dict[str, Any]] = {}
    for rel, model in SCHEMA_MODELS.items():
        schema = model.model_json_schema(schema_generator=_Generator, mode="validation")
        schema = {"$schema": DRAFT, "$id": schema_uri(rel), **schema}
        if "description" not in schema and model.__doc__:
            schema["description"] = " ".join(model.__doc__.split())
        out[rel] = _ordered(schema)
    return out


def _text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def write_schemas(root: Path) -> list[Path]:
    """Write every schema under ``root``; return the files written."""
    written = []
    for rel, schema in build_schemas().items():
        path = root / f"{rel}.schema.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_text(schema), encoding="utf-8")
        written.append(path)
    return written


def check_schemas(root: Path) -> list[str]:
    """Problems between the committed schemas under ``root`` and the models (empty: in sync)."""
    problems = []
    expected = build_schemas()
    for rel, schema in expected.items():
        path = root / f"{rel}.schema.json"
        if not path.is_file():
            problems.append(f"missing: {path}")
        elif path.read_text(encoding="utf-8") != _text(schema):
            problems.append(f"drifted: {path}")
    for path in sorted(root.rglob("*.schema.json")):
        rel = path.relative_to(root).as_posix()[: -len(".schema.json")]
        if rel not in expected and not rel.startswith("meta/"):
            problems.append(f"extra: {path}")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Command line: write, or check with --check."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 when the files differ from the models")
    parser.add_argument("dir", nargs="?", type=Path, default=Path(__file__).resolve().parents[2] / "schemas")
    args = parser.parse_args(argv)
    if args.check:
        problems = check_schemas(args.dir)
        for p in problems:
            print(p)
        if problems:
            print("run: python -m fsm.models._export", file=sys.stderr)
        return 1 if problems else 0
    for path in write_schemas(args.dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
