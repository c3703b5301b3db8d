"""The validator's JSON report (``voucher-fsm validate --format json``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ReportDocument"]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class ToolInfo(_Strict):
    """Which program wrote the report."""

    name: Literal["voucher-fsm"]
    version: str


class InputInfo(_Strict):
    """One input file."""

    file: str
    format: Literal["jsonl", "har", "unreadable"] = Field(
        description="unreadable: the input could not be opened as a log (a damaged archive, UTF-16 text)."
    )
    records: int = Field(ge=0)
    judged: int = Field(
        ge=0,
        description="Records of this input that were judged; 0 with transport 0: nothing in it was read.",
    )
    transport: int = Field(
        ge=0, description="Records of this input that were HTTP mechanics (D22), not judged."
    )


class TotalsInfo(_Strict):
    """Record accounting (D21, D22: read == judged + transport + unreadable) and violation counts."""

    read: int = Field(ge=0)
    judged: int = Field(ge=0)
    transport: int = Field(
        ge=0,
        description="HTTP mechanics (CORS preflights, HEAD, redirects, 304s, upgrades, non-HTTP entries): "
        "counted, never judged (D22).",
    )
    unreadable: int = Field(ge=0)
    errors: int = Field(ge=0)
    warnings: int = Field(ge=0)
    info: int = Field(ge=0)


class RelatedInfo(_Strict):
    """An earlier exchange that put the entity where it is."""

    exchange: int
    location: str
    summary: str


class ViolationInfo(_Strict):
    """One broken rule."""

    rule: str = Field(description="Stable rule id, see `voucher-fsm rules`.")
    severity: Literal["error", "warning", "info"]
    message: str
    location: str = Field(description="FILE:LINE (JSONL) or FILE:entries[N] (HAR).")
    file: str
    exchange: int = Field(description="0-based exchange index in the run; -1 for records and end of log.")
    line: int | None = None
    entry: int | None = None
    operation: str | None = None
    entity: str | None = Field(default=None, description="kind:id, e.g. voucher:vch_1.")
    state: str | None = Field(
        default=None,
        description="The state the model holds for the entity at that point, as the message states it.",
    )
    pointer: str | None = Field(default=None, description="JSON pointer, prefixed /request or /response.")
    spec: str | None = Field(
        default=None, description="Schema $id with keyword path, or machine file pointer."
    )
    expected: Any = None
    actual: Any = None
    related: list[RelatedInfo] | None = None
    context: list[ViolationInfo] | None = None


class UntoldInfo(_Strict):
    """Violations of one rule counted in the totals but not kept with their details (kept-per-rule)."""

    rule: str
    severity: Literal["error", "warning", "info"]
    count: int = Field(ge=1)


class PathSeen(_Strict):
    """A path of exchanges not judged against the protocol, as a template (values replaced by shapes, D20)."""

    path: str
    count: int = Field(ge=1)


class NotJudgedInfo(_Strict):
    """Why a run in which no exchange was judged against the protocol is no pass (D25)."""

    message: str
    paths: list[PathSeen] = Field(description="The most frequent paths seen, as templates.")
    advice: str = Field(description="The setting to change (--api-prefix, --host).")


class EntityInfo(_Strict):
    """Where an entity ended up."""

    entity: str
    kind: str
    state: str
    final: bool


class ReportDocument(_Strict):
    """The whole JSON report."""

    tool: ToolInfo
    inputs: list[InputInfo]
    totals: TotalsInfo
    passed: bool = Field(
        description="True when the run exits 0: no error (with strict, no warning either), "
        "every input had at least one readable record, and some exchange was judged against the protocol."
    )
    strict: bool
    violations: list[ViolationInfo]
    entities: list[EntityInfo]
    not_judged: NotJudgedInfo | None = Field(
        default=None,
        description="Present when records were read but no exchange was judged against the protocol "
        "(exit 2, D25).",
    )
    untold: list[UntoldInfo] | None = Field(
        default=None, description="Present when some rule had more violations than kept-per-rule keeps."
    )
