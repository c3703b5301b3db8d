"""Finds and loads the files the kit ships: protocol data and JSON Schemas.

In an installed wheel the schemas live in ``fsm/schemas``; in a source checkout
(including an editable install) they live in the repository's top-level
``schemas/`` folder, which is their source of truth.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource

from fsm.errors import SpecError

__all__ = [
    "SCHEMA_BASE",
    "load_json",
    "load_schema",
    "load_schemas",
    "protocol_dir",
    "registry",
    "schema_uri",
    "schemas_dir",
    "shipped_schema",
]

SCHEMA_BASE = "https://voucher-fsm.dev/schemas/"
_SUFFIX = ".schema.json"


def _package_dir() -> Path:
    return Path(__file__).resolve().parent


def protocol_dir() -> Path:
    """The folder holding the machine files, operation table, rules and tokens."""
    return _package_dir() / "protocol"


def schemas_dir() -> Path:
    """The folder holding the JSON Schemas (packaged copy first, then the checkout's)."""
    packaged = _package_dir() / "schemas"
    if packaged.is_dir():
        return packaged
    checkout = _package_dir().parent / "schemas"
    if checkout.is_dir():
        return checkout
    raise SpecError(
        f"no schemas folder found (looked in {packaged} and {checkout}); "
        "reinstall voucher-fsm or run from a full checkout"
    )


def schema_uri(relative_id: str) -> str:
    """The ``$id`` of a schema named by its relative id, e.g. ``vouchers/voucher``."""
    return SCHEMA_BASE + relative_id + _SUFFIX


def load_json(path: Path) -> Any:
    """Read one JSON data file, raising :class:`SpecError` with its name when it is broken."""
    return _parse(path, _text(path))


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"{path}: cannot read spec file: {exc}") from exc


def _parse(path: Path, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path}: cannot read spec file: {exc}") from exc


@functools.cache
def _schema_texts() -> Mapping[str, tuple[Path, str]]:
    """Every shipped schema file's text by relative id, read once (package data: it does not change)."""
    root = schemas_dir()
    out: dict[str, tuple[Path, str]] = {}
    for path in sorted(root.rglob("*" + _SUFFIX)):
        out[path.relative_to(root).as_posix()[: -len(_SUFFIX)]] = (path, _text(path))
    return out


@functools.cache
def load_schema(relative_id: str) -> Mapping[str, Any]:
    """One shipped schema by relative id (``exchange``), without loading the others."""
    return load_json(schemas_dir() / (relative_id + _SUFFIX))  # type: ignore[no-any-return]


def shipped_schema(relative_id: str) -> dict[str, Any] | None:
    """A new copy of one shipped schema by relative id; ``None`` if the kit ships none by that id."""
    found = _schema_texts().get(relative_id)
    return None if found is None else _parse(*found)


def load_schemas() -> Mapping[str, Mapping[str, Any]]:
    """Every shipped schema, keyed by relative id (``vouchers/voucher``).

    New copies each call, the callers' to change; the files themselves are read once.
    """
    return {rel: _parse(path, text) for rel, (path, text) in _schema_texts().items()}


def _refuse_remote(uri: str) -> Resource[Any]:
    raise NoSuchResource(uri)


@functools.cache
def registry() -> Registry[Any]:
    """A crawled, offline registry of every shipped schema; unknown URIs are never fetched."""
    resources = [(schema_uri(rel), Resource.from_contents(dict(doc))) for rel, doc in load_schemas().items()]
    return Registry(retrieve=_refuse_remote).with_resources(resources).crawl()  # type: ignore[call-arg]
