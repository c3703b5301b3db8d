"""Run settings: rule severities, ``strict``, ``require_complete``, output format.

Read from ``[tool.voucher-fsm]`` in a ``pyproject.toml`` or from a
``voucher-fsm.toml`` (top-level keys), found by walking up from the working
directory, or from a file named with ``--config``. Command-line flags win.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fsm._formats import REPORT_FORMATS
from fsm.errors import UsageError
from fsm.readers.jsonl import LONGEST_RECORD, MOST_VALUES
from fsm.violation import Rule, Severity

__all__ = ["Config", "find_config", "load_config", "parse_severity_overrides"]

_KEYS = {
    "strict",
    "require-complete",
    "severity",
    "format",
    "kept-per-rule",
    "longest-record",
    "most-values",
    "clock-skew",
    "api-prefix",
    "hosts",
    "max-live",
    "view",
}
CLOCK_SKEW = 5.0
VIEWS = ("all", "payee", "payer")
"""Whose traffic a run sees (D28): every party's, or one party's calls only."""
KEPT_PER_RULE = 1000
MAX_LIVE = 200_000
"""Live entities kept by default: under 1 KB each, at most about 200 MB of them (D27)."""
_BOUNDS = ("kept-per-rule", "longest-record", "most-values", "max-live")
_HOST = re.compile(r"^(?:[A-Za-z0-9._~%!$&'()*+,;=-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
_OUR_TABLE = re.compile(r"""^\s*\[\s*(["']?)tool\1\s*\.\s*(["']?)voucher-fsm\2\s*[\].]""", re.MULTILINE)
"""A ``[tool.voucher-fsm]`` (or ``.severity``) table header, found in a file TOML cannot read."""


@dataclass(frozen=True)
class Config:
    """Settings of one run. ``severity`` maps rule ids to a severity or None (off).

    Levels may also be given as words, as in a config file (``"warning"``, ``"off"``); they are
    read when the config is made, and a bad one is a :class:`UsageError` then.
    """

    severity: Mapping[str, Severity | None] = field(default_factory=dict)
    strict: bool = False
    require_complete: bool = False
    format: str = "text"
    source: str | None = None
    kept_per_rule: int = KEPT_PER_RULE
    """Violations of one rule kept with their details (0: all); the report counts every one."""
    longest_record: int = LONGEST_RECORD
    """Longest JSONL line read as a record, in bytes; a longer one is reported and skipped."""
    most_values: int = MOST_VALUES
    """Most JSON values one record (or HAR entry) may hold; a bigger one is reported and skipped."""
    clock_skew: float = CLOCK_SKEW
    """Seconds within which a call after a voucher's ``expiresAt`` is judged as possibly before (D24)."""
    api_prefix: str | None = None
    """Where the API lives (D25): the path prefix of its operations (None: the spec's ``/api/v1``)."""
    hosts: tuple[str, ...] = ()
    """The API's hosts (D25), ``name`` or ``name:port``: exchanges on others are not judged (empty: any)."""
    max_live: int = MAX_LIVE
    """Live entities kept (0: no cap); past it the longest idle are forgotten (D27, ``entity.forgotten``)."""
    view: str = "all"
    """Whose calls the traffic holds (D28): ``all``, or one party's (``payee``, ``payer``); changes the
    other party's unseen calls explain are then adopted (``observe.unseen-call``), not reported."""

    def __post_init__(self) -> None:
        if self.view not in VIEWS:
            where = self.source or "Config(view=...)"
            raise UsageError(f"{where}: view must be one of {', '.join(VIEWS)}, not {self.view!r}")
        for name in ("kept_per_rule", "longest_record", "most_values", "max_live"):
            value = getattr(self, name)
            if type(value) is not int or value < (0 if name in ("kept_per_rule", "max_live") else 1):
                where = self.source or f"Config({name}=...)"
                raise UsageError(f"{where}: {name.replace('_', '-')} must be a whole number, not {value!r}")
        skew = self.clock_skew
        if type(skew) not in (int, float) or not 0 <= skew < float("inf"):
            where = self.source or "Config(clock_skew=...)"
            raise UsageError(f"{where}: clock-skew must be a number of seconds, 0 or more, not {skew!r}")
        where = self.source or "Config"
        prefix: Any = self.api_prefix
        if prefix is not None:
            if not isinstance(prefix, str) or not prefix.startswith("/") or "?" in prefix or "#" in prefix:
                raise UsageError(f"{where}: api-prefix must be a path starting with /, not {prefix!r}")
            object.__setattr__(self, "api_prefix", prefix.rstrip("/"))
        hosts: Any = self.hosts
        if not isinstance(hosts, (list, tuple)) or not all(
            isinstance(h, str) and _HOST.match(h) for h in hosts
        ):
            raise UsageError(f"{where}: hosts must be a list of names (name or name:port), not {hosts!r}")
        object.__setattr__(self, "hosts", tuple(h.lower() for h in hosts))
        # levels may be written as in a config file ("warning", "off"): read them now, not mid-run
        given: Mapping[str, Any] = self.severity  # (typed as it should be, given as it may be)
        if any(v is not None and not isinstance(v, Severity) for v in given.values()):
            where = self.source or "Config(severity=...)"
            levels: dict[str, Severity | None] = {}
            for rule, level in given.items():
                if level is None or isinstance(level, Severity):
                    levels[rule] = level
                else:
                    levels.update(parse_severity_overrides({rule: level}, where))
            object.__setattr__(self, "severity", levels)

    def effective(self, rules: Mapping[str, Rule]) -> dict[str, Severity | None]:
        """Every rule's severity after overrides (unknown rule ids raise UsageError)."""
        unknown = sorted(set(self.severity) - set(rules))
        if unknown:
            raise UsageError(
                f"unknown rule id(s) {', '.join(unknown)}"
                + (f" in {self.source}" if self.source else "")
                + "; `voucher-fsm rules` lists them"
            )
        out: dict[str, Severity | None] = {rid: r.severity for rid, r in rules.items()}
        out.update(self.severity)
        if self.require_complete and out.get("entity.incomplete") is Severity.INFO:
            out["entity.incomplete"] = Severity.WARNING
        return out

    def merged(self, **changes: Any) -> Config:
        """A copy with ``changes`` applied (None values are ignored)."""
        given = {k: v for k, v in changes.items() if v is not None}
        return replace(self, **given) if given else self  # (frozen: nothing changed, the same one)


def parse_severity_overrides(items: Mapping[str, Any] | list[str], where: str) -> dict[str, Severity | None]:
    """Read ``RULE=LEVEL`` strings or a table of rule -> level; ``off`` disables a rule."""
    pairs: list[tuple[str, Any]]
    if isinstance(items, Mapping):
        pairs = list(items.items())
    else:
        pairs = []
        for item in items:
            rule, sep, level = item.partition("=")
            if not sep or not rule.strip():
                raise UsageError(f"{where}: expected RULE=LEVEL, got {item!r}")
            pairs.append((rule.strip(), level))
    out: dict[str, Severity | None] = {}
    for rule, level in pairs:
        if not isinstance(level, str):
            raise UsageError(f"{where}: severity of {rule} must be a string, got {level!r}")
        if level.strip().lower() == "off":
            out[rule] = None
            continue
        try:
            out[rule] = Severity.parse(level)
        except ValueError as exc:
            raise UsageError(f"{where}: {rule}: {exc} or off") from None
    return out


def find_config(start: Path | None = None) -> Path | None:
    """The nearest ``voucher-fsm.toml``, or ``pyproject.toml`` with a ``[tool.voucher-fsm]`` table."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        own = folder / "voucher-fsm.toml"
        if own.is_file():
            return own
        py = folder / "pyproject.toml"
        if py.is_file():
            try:
                text = py.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                continue
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError:
                if _OUR_TABLE.search(text):  # ours, broken: load_config says where
                    return py
                continue
            if "voucher-fsm" in data.get("tool", {}):
                return py
    return None


def load_config(path: Path) -> Config:
    """Read settings from ``path`` (a voucher-fsm.toml, or a pyproject.toml's tool table)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot read config: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not a TOML text file (not UTF-8 at byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    table: Any = data.get("tool", {}).get("voucher-fsm", {}) if path.name == "pyproject.toml" else data
    where = f"{path}" + (" [tool.voucher-fsm]" if path.name == "pyproject.toml" else "")
    if not isinstance(table, dict):
        raise UsageError(f"{where}: expected a table")
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise UsageError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}")
    for key in ("strict", "require-complete"):
        if key in table and not isinstance(table[key], bool):
            raise UsageError(f"{where}: {key} must be true or false")
    severity = table.get("severity", {})
    if not isinstance(severity, dict):
        raise UsageError(f"{where}: severity must be a table of rule = level")
    view = table.get("view", "all")
    if view not in VIEWS:
        raise UsageError(f"{where}: view must be one of {', '.join(VIEWS)}")
    fmt = table.get("format", "text")
    if fmt not in REPORT_FORMATS:
        raise UsageError(f"{where}: format must be one of {', '.join(REPORT_FORMATS)}")
    return Config(
        severity=parse_severity_overrides(severity, where),
        strict=table.get("strict", False),
        require_complete=table.get("require-complete", False),
        format=fmt,
        view=view,
        source=str(path),
        api_prefix=table.get("api-prefix"),
        hosts=tuple(hosts) if isinstance(hosts := table.get("hosts", ()), list) else hosts,
        **{key.replace("-", "_"): table[key] for key in (*_BOUNDS, "clock-skew") if key in table},
    )
