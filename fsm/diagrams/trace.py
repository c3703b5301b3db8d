"""Recorded traffic as pictures: a session's exchanges as a sequence diagram, and coverage.

Both run the validator over the logs (with an observer on each exchange), then
draw through the same IR and renderers as the spec diagrams.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fsm.diagrams.extract import state_diagram
from fsm.diagrams.ir import Message, SequenceDiagram, StateDiagram
from fsm.errors import UsageError
from fsm.exchange import Exchange
from fsm.matcher import Match
from fsm.pipeline import Validator
from fsm.report import Report
from fsm.secrets import shown, shown_key, shown_path
from fsm.spec.model import Spec
from fsm.stepper import Coverage
from fsm.violation import Severity, Violation

__all__ = ["CoverageTable", "coverage_of", "trace_of"]


def trace_of(
    paths: Iterable[str], *, session: str | None = None, voucher: str | None = None, spec: Spec | None = None
) -> tuple[SequenceDiagram, Report]:
    """The exchanges of one session (with its vouchers) or one voucher, as a sequence diagram."""
    if session is not None and voucher is not None:
        raise UsageError("name one of --session ID or --voucher ID, not both")
    auto = session is None and voucher is None  # the log's only session, found in the same pass
    sessions: dict[str, None] = {}
    members: set[str] = set() if auto else {f"session:{session}" if session else f"voucher:{voucher}"}
    picked: list[tuple[Exchange, Match | None, list[Violation], str]] = []
    validator: Validator

    def observe(ex: Exchange, match: Match | None, found: list[Violation], touched: tuple[str, ...]) -> None:
        if auto:
            sessions.update((k, None) for k in touched if k.startswith("session:"))
            if len(sessions) > 1:
                return  # not one session: from here on the run only counts them
            if sessions and not members:
                members.update(sessions)
        if members.intersection(touched):
            if session is not None or auto:  # a session's vouchers belong to its trace
                members.update(k for k in touched if k.startswith("voucher:"))
            picked.append((ex, match, found, _role(validator, ex, match)))

    validator = Validator(spec, on_exchange=observe)
    for p in paths:
        validator.feed_file(p)
    report = validator.finish()
    if auto:
        session = _only_session(list(sessions))
    target = f"session:{session}" if session else f"voucher:{voucher}"
    if not picked:
        raise UsageError(f"no exchange in the log names {target}")
    messages = []
    for ex, match, found, role in picked:
        bad = [v for v in found if v.severity is not Severity.INFO]
        highlight = ", ".join(dict.fromkeys(v.rule_id for v in bad)) or None
        op = match.operation.id if match else "?"
        # (what traffic says is drawn as reports show it: a value of no safe shape by fingerprint, D20)
        call = f"{shown(ex.method)} {shown_path(ex.path)}  [{op}]"
        messages.append(Message(role, "server", call, highlight=highlight))
        answer = str(ex.status) + (f" {shown(ex.error_code)}" if ex.error_code and not ex.accepted else "")
        status = ex.resp_body.get("status") if isinstance(ex.resp_body, dict) else None
        if isinstance(status, str):
            answer += f": {shown(status)}"
        messages.append(Message("server", role, answer, reply=True))
    title = f"Recorded traffic of {shown_key(target)}"
    participants = (("payer", "Payer wallet"), ("payee", "Payee"), ("server", "Bleepay"))
    name = "trace-" + shown_key(target).partition(":")[2]
    return SequenceDiagram(name, title, participants, tuple(messages)), report


def _only_session(keys: list[str]) -> str:
    """The id of the one session met; a usage error naming them when there are several (or none)."""
    ids = [k.partition(":")[2] for k in keys]
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise UsageError("no session in the log; name a voucher with --voucher ID")
    listed = ", ".join(shown_key(k).partition(":")[2] for k in keys[:10])
    listed += f" and {len(ids) - 10} more" if len(ids) > 10 else ""
    raise UsageError(f"the log holds {len(ids)} sessions ({listed}); name one with --session ID")


def _role(validator: Validator, ex: Exchange, match: Match | None) -> str:
    """Who called: a resource token is the payee's; otherwise the operation's declared caller."""
    if validator.caller_role(ex.token) == "payee":
        return "payee"
    if match is not None and match.operation.actors == ("payee",):
        return "payee"
    return "payer"


@dataclass
class CoverageTable:
    """Declared states, transitions and refusals of each machine, with how often the logs hit them."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    coverage: Coverage = field(default_factory=Coverage)
    read: int = 0  # records read from the logs
    unreadable: int = 0  # of which could not be read or were not exchange records

    def summary(self) -> dict[str, dict[str, tuple[int, int]]]:
        """Per machine and kind (state, transition, refusal): (seen, declared).

        A transition the spec warns against (``advised``: its rule) is listed but not counted: clean
        traffic never takes it.
        """
        out: dict[str, dict[str, tuple[int, int]]] = {}
        for row in self.rows:
            if row.get("advised"):
                continue
            seen, total = out.setdefault(row["machine"], {}).get(row["kind"], (0, 0))
            out[row["machine"]][row["kind"]] = (seen + (row["count"] > 0), total + 1)
        return out

    def text(self) -> str:
        """A plain table, then a per-machine summary."""
        lines = [f"{'machine':<8} {'kind':<10} {'item':<62} count"]
        for r in self.rows:
            lines.append(f"{r['machine']:<8} {r['kind']:<10} {r['item']:<62} {r['count']}")
        lines.append("")
        for machine, kinds in self.summary().items():
            parts = [f"{kind}s {seen}/{total}" for kind, (seen, total) in kinds.items()]
            advised = sum(1 for r in self.rows if r["machine"] == machine and r.get("advised"))
            tail = f" (+{advised} advised against, not counted)" if advised else ""
            lines.append(f"{machine}: " + ", ".join(parts) + tail)
        return "\n".join(lines) + "\n"


def coverage_of(
    paths: Iterable[str], spec: Spec | None = None
) -> tuple[CoverageTable, dict[str, StateDiagram]]:
    """Run the logs and return the coverage table and an overlay diagram per machine."""
    validator = Validator(spec, coverage=True)
    for p in paths:
        validator.feed_file(p)
    report = validator.finish()
    cov = validator.coverage
    assert cov is not None
    table = CoverageTable(coverage=cov, read=report.totals.read, unreadable=report.totals.unreadable)
    overlays = {}
    for name, m in validator.spec.machines.items():
        for s in m.states:
            table.rows.append(
                {"machine": name, "kind": "state", "item": s.name, "count": cov.states[(name, s.name)]}
            )
        for c in m.creates:
            n = cov.transitions[(name, "[*]", c.trigger, c.dest)]
            table.rows.append(
                {"machine": name, "kind": "transition", "item": f"[*] -{c.operation}-> {c.dest}", "count": n}
            )
        counts = {}
        for t in m.transitions:
            for source in t.source:
                dest = t.dest_for(source)
                n = cov.transitions[(name, source, t.trigger, dest)]
                counts[(source, t.trigger, dest)] = n
                label = t.operation or f"after {t.timed_attribute}"
                row: dict[str, Any] = {
                    "machine": name,
                    "kind": "transition",
                    "item": f"{source} -{label}-> {dest}"
                    + (f" (advised against: {t.warn})" if t.warn else ""),
                    "count": n,
                }
                if t.warn:
                    row["advised"] = t.warn
                table.rows.append(row)
        for c in m.creates:
            counts[("[*]", c.trigger, c.dest)] = cov.transitions[(name, "[*]", c.trigger, c.dest)]
        for t in m.transitions:  # a failed guard's refusal (D8)
            for g in t.refusing_guards:
                assert g.refuse is not None
                for state in t.source:
                    n = cov.refusals[(name, state, t.trigger, g.refuse)]
                    op = t.operation or t.trigger
                    table.rows.append(
                        {
                            "machine": name,
                            "kind": "refusal",
                            "item": f"{state}: {op} -> {g.refuse}",
                            "count": n,
                        }
                    )
        for r in m.refusals:
            if r.code is None:
                continue
            for state in r.states:
                n = cov.refusals[(name, state, r.trigger, r.code)]
                table.rows.append(
                    {
                        "machine": name,
                        "kind": "refusal",
                        "item": f"{state}: {m.operation_of.get(r.trigger, r.trigger)} -> {r.code}",
                        "count": n,
                    }
                )
        entered = {s.name: cov.states[(name, s.name)] for s in m.states}
        overlays[name] = state_diagram(m, counts=counts, state_counts=entered)
    return table, overlays
