"""Report stage: violations collected into a :class:`Report`, with totals that add up (D21).

No formatting happens here; :mod:`fsm.render` turns a report into text, JSON,
JUnit or SARIF.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import NamedTuple

from fsm.violation import Rule, Severity, Violation

__all__ = ["EntityOutcome", "EntityOutcomes", "InputSummary", "Report", "Totals"]


@dataclass(frozen=True, slots=True)
class Totals:
    """How many records were read, judged, transport and unreadable: they add up (D21, D22).

    ``transport``: HTTP mechanics (CORS preflights, HEAD, redirects, 304s, ...), counted apart
    and never judged.
    """

    read: int = 0
    judged: int = 0
    unreadable: int = 0
    transport: int = 0

    @property
    def adds_up(self) -> bool:
        """True when every record read is accounted for: ``read == judged + transport + unreadable``."""
        return self.read == self.judged + self.transport + self.unreadable


@dataclass(frozen=True, slots=True)
class InputSummary:
    """One input file: its label, format, records read and, of those, judged.

    ``uri``: the file as a URI reference (:func:`fsm.readers.input_uri`), None for standard input.
    """

    label: str
    format: str
    records: int
    judged: int = 0
    uri: str | None = None
    transport: int = 0


class EntityOutcome(NamedTuple):
    """Where one entity ended up, for per-entity reports (JUnit test cases, grouping).

    A named tuple: a run makes one per entity met (295,332 at a million exchanges), and a
    frozen dataclass took three times as long to make.
    """

    key: str
    kind: str
    state: str
    final: bool
    exchanges: int


class EntityOutcomes:
    """Every entity's outcome, made again each time it is read: never all held at once.

    A run may meet millions of entities; the finished ones may be on disk (D27). ``make`` yields
    the outcomes in report order, ``count`` says how many it yields. Compares equal to another
    collection of the same outcomes in the same order (a tuple, a list).
    """

    __slots__ = ("_count", "_make")

    def __init__(self, make: Callable[[], Iterator[EntityOutcome]], count: int) -> None:
        self._make = make
        self._count = count

    def __iter__(self) -> Iterator[EntityOutcome]:
        return self._make()

    def __len__(self) -> int:
        return self._count

    def __contains__(self, item: object) -> bool:
        return any(e == item for e in self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, (EntityOutcomes, tuple, list)):
            return NotImplemented
        mark = object()
        return len(self) == len(other) and all(a == b for a, b in zip_longest(self, other, fillvalue=mark))

    __hash__ = None  # type: ignore[assignment]  # (what it reads may change while a run goes on)

    def __reduce__(self) -> tuple[type[tuple[EntityOutcome, ...]], tuple[tuple[EntityOutcome, ...]]]:
        return tuple, (tuple(self),)  # (pickled and copied as the tuple it reads)

    def __repr__(self) -> str:
        return f"<EntityOutcomes: {self._count:,} entities>"


@dataclass(frozen=True)
class Report:
    """The verdict of one run."""

    inputs: tuple[InputSummary, ...]
    totals: Totals
    violations: tuple[Violation, ...]
    entities: Collection[EntityOutcome] = ()
    """Every entity met, where it ended (streamed: :class:`EntityOutcomes` from a run)."""
    rules: Mapping[str, Rule] = field(default_factory=dict)
    strict: bool = False
    untold: tuple[tuple[str, Severity, int], ...] = ()
    """``(rule id, severity, count)`` of violations counted but not kept (``Config.kept_per_rule``)."""
    routed: int | None = None
    """Exchanges judged against the protocol (routed to one of its operations); None: not counted.

    0 is no pass (D25): the run exits 2, whatever else it found.
    """
    paths_seen: tuple[tuple[str, int], ...] = ()
    """The most frequent paths of the exchanges not judged against the protocol, as templates (D20)."""
    advice: str = ""
    """What to change when nothing was judged against the protocol (``--api-prefix /gw/api/v1``)."""

    def count(self, severity: Severity) -> int:
        """How many violations have ``severity`` (those counted but not kept too)."""
        kept = sum(1 for v in self.violations if v.severity is severity)
        return kept + sum(n for _, level, n in self.untold if level is severity)

    @property
    def errors(self) -> int:
        """Violations at error level."""
        return self.count(Severity.ERROR)

    @property
    def warnings(self) -> int:
        """Violations at warning level."""
        return self.count(Severity.WARNING)

    @property
    def infos(self) -> int:
        """Violations at info level."""
        return self.count(Severity.INFO)

    @property
    def failed(self) -> bool:
        """True when the run fails: any error (or, with ``strict``, any warning)."""
        return self.errors > 0 or (self.strict and self.warnings > 0)

    @property
    def unreadable_inputs(self) -> tuple[str, ...]:
        """Inputs of which no record could be read (unreadable throughout, or empty)."""
        return tuple(i.label for i in self.inputs if not i.judged and not i.transport)

    @property
    def nothing_judged(self) -> bool:
        """True when records were read but no exchange was judged against the protocol (D25)."""
        return self.routed == 0 and not self.unreadable_inputs and self.totals.read > 0

    def nothing_judged_line(self) -> str:
        """What :attr:`nothing_judged` means for this run, the paths seen and what to change, in one line."""
        seen = ", ".join(f"{path} ({n:,})" for path, n in self.paths_seen) or "none"
        advice = self.advice or "check --api-prefix (default /api/v1) and --host"
        return f"no exchange was judged against the protocol; most frequent paths: {seen}; {advice}"

    @property
    def exit_code(self) -> int:
        """0 when the run passes, 1 when it fails, 2 when it is no verdict on traffic.

        An input with nothing readable in it, or a run in which no exchange was judged against
        the protocol (D25), is no verdict on traffic, whatever else was found.
        """
        if self.unreadable_inputs or self.nothing_judged:
            return 2
        return 1 if self.failed else 0

    def by_rule(self) -> Counter[str]:
        """Violation counts per rule id (those counted but not kept too)."""
        counts = Counter(v.rule_id for v in self.violations)
        for rule, _, n in self.untold:
            counts[rule] += n
        return counts

    def untold_line(self) -> str:
        """What the report counted but did not keep (``kept-per-rule``), in one line."""
        listed = ", ".join(f"{n:,} {rule}" for rule, _, n in self.untold)
        return f"counted, details not kept (kept-per-rule): {listed}"

    def by_entity(self) -> dict[str | None, list[Violation]]:
        """Violations grouped by entity key (None: not about one entity), in log order."""
        out: dict[str | None, list[Violation]] = {}
        for v in self.violations:
            out.setdefault(v.entity, []).append(v)
        return out

    def best_violation(self) -> Violation | None:
        """The headline: most severe first, then shallowest pointer, then earliest."""
        if not self.violations:
            return None
        return min(
            self.violations,
            key=lambda v: (-v.severity.rank, v.instance_path.count("/"), v.exchange_index),
        )


def sort_violations(violations: Iterable[Violation]) -> tuple[Violation, ...]:
    """Log order, then most severe first, then rule id."""
    return tuple(sorted(violations, key=Violation.sort_key))
