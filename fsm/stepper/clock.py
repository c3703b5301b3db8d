"""The clock: each input's time (D19), and the timed transitions that fire as it passes (expiry, D2).

A timed transition names the attribute that holds its due time (``timed.attribute`` in the machine
file); the stepper records that attribute's value, and its time as ``<attribute>#t``.

Clocks differ (D24): within ``skew`` seconds around the due time both the state before and the state
after the timed transition are candidates, so a call there is judged only where both agree. Around,
not only after: a server whose clock runs behind the recorder's expires late, one whose clock runs
ahead expires early (an answer EXPIRED, or a refusal, a second before ``expiresAt`` by the log's time).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fsm._shared import per_spec
from fsm.exchange import Exchange, parse_timestamp
from fsm.machines import Engine
from fsm.spec.model import MachineSpec, TransitionSpec
from fsm.stepper.coverage import Coverage
from fsm.stepper.entities import Entity
from fsm.violation import Finding

__all__ = ["CLOCK_SKEW", "Clock", "Timers", "due_key", "time_of"]

CLOCK_SKEW = 5.0
"""Seconds around a due time within which a timed transition may or may not have fired (D24)."""


def due_key(attribute: str) -> str:
    """Where an entity keeps the parsed time of a timed attribute."""
    return attribute + "#t"


def time_of(value: Any) -> float | None:
    """A recorded attribute's value as POSIX seconds, or None when it is no timestamp."""
    return parse_timestamp(value) if isinstance(value, str) else None


class Clock:
    """The time of each input's last exchange: captures from several places interleave."""

    def __init__(self) -> None:
        self._clocks: dict[str, float] = {}

    @property
    def latest(self) -> float | None:
        """The latest time any input reached (None: no timed exchange yet)."""
        return max(self._clocks.values(), default=None)

    def last(self, file: str) -> float | None:
        """The time of the last timed exchange of ``file`` judged so far, or None."""
        return self._clocks.get(file)

    def resume(self, file: str, time: float | None) -> None:
        """Set ``file``'s clock as if the exchanges before (judged elsewhere, a shard's) had been."""
        if time is None:
            self._clocks.pop(file, None)
        else:
            self._clocks[file] = time

    def check(self, ex: Exchange) -> Finding | None:
        """An exchange earlier than the one before it in the same input is a finding (D19)."""
        if ex.time is None:
            return None
        previous = self._clocks.get(ex.file)
        self._clocks[ex.file] = ex.time
        if previous is not None and ex.time < previous:
            return Finding(
                "time.backwards",
                f"timestamp {ex.time_text} is earlier than the previous exchange's in {ex.file}",
                instance_path="/time",
                actual=ex.time_text,
            )
        return None


class Timers:
    """The timed transitions of every machine, and what they need of an entity."""

    def __init__(
        self,
        machines: Mapping[str, MachineSpec],
        engines: Mapping[str, Engine],
        skew: float = CLOCK_SKEW,
        coverage: Coverage | None = None,
    ) -> None:
        self.engines = engines
        self.skew = skew
        self.coverage = coverage
        self.timed: dict[str, tuple[TransitionSpec, ...]]
        self.triggers: dict[str, frozenset[str]]
        self.attributes: frozenset[str]
        self._due: dict[str, tuple[tuple[TransitionSpec, str], ...]]
        self.before: dict[str, frozenset[str]]
        """Per machine: the statuses a timed transition leaves (a server may report them late, D17)."""
        self.after: dict[str, frozenset[str]]
        """Per machine: the states a timed transition leads to (for 'expired at' in messages)."""
        tables = per_spec("timers", machines, lambda: _tables(machines))  # (the machines' alone: shared)
        self.timed, self.triggers, self.attributes, self._due, self.before, self.after = tables

    def record(self, e: Entity, name: str, value: Any) -> None:
        """Keep the due time of a timed attribute beside its value."""
        if name in self.attributes:
            t = time_of(value)
            if t is not None:
                e.attrs[due_key(name)] = t

    def ticked(self, e: Entity, kind: str, now: float | None) -> tuple[tuple[str, ...], bool]:
        """The states ``e`` is in at ``now`` once due timed transitions fire, and whether any fired.

        Within the skew around a due time (D24) a transition both fires and does not: the states
        before and after are candidates.
        """
        states = e.states
        fired = False
        if now is None or not e.attrs:
            return states, fired
        engine = self.engines[kind]
        for t, key in self._due[kind]:
            due = e.attrs.get(key)
            if due is None or now <= due - self.skew:
                continue
            keep = now <= due + self.skew  # (inside the tolerance: not yet, and already)
            moved = []
            for s in states:
                dest = engine.dest(e, s, t.trigger, {})
                if keep or dest is None:
                    moved.append(s)
                if dest is not None:
                    moved.append(dest)
                    fired = fired or dest != s
            states = tuple(dict.fromkeys(moved))
        return states, fired

    def tick(self, e: Entity, kind: str, now: float | None) -> None:
        """Fire the timed transitions (expiry, D2) whose time, less the skew, lies before ``now``."""
        if now is None or not e.attrs:
            return
        for _, key in self._due[kind]:
            due = e.attrs.get(key)
            if due is not None and now > due - self.skew:  # (one may be due: fire them all, in order)
                break
        else:
            return
        states, fired = self.ticked(e, kind, now)
        if fired:
            before = tuple(s for s in e.states if s not in self.after[kind])
            if before:
                e.expired_by_clock = before  # (the states before: a server may expire lazily, D24)
            if self.coverage is not None and len(e.states) == 1 and len(states) == 1:
                self.coverage.took(kind, e.states[0], self.timed[kind][0].trigger, states[0])
        e.states = states

    def expired_at(self, e: Entity) -> str | None:
        """The value of the timed attribute that moved ``e`` (for messages), or None."""
        if not e.expired_by_clock or not any(s in self.after[e.kind] for s in e.states):
            return None
        for t in self.timed[e.kind]:
            if t.timed_attribute:
                return str(e.attrs.get(t.timed_attribute))
        return None


def _tables(machines: Mapping[str, MachineSpec]) -> tuple[Any, ...]:
    """:class:`Timers`' tables of ``machines``: timed transitions, triggers, attributes, due keys."""
    timed = {name: tuple(t for t in m.transitions if t.timed_attribute) for name, m in machines.items()}
    triggers = {name: frozenset(t.trigger for t in ts) for name, ts in timed.items()}
    attributes = frozenset(t.timed_attribute for ts in timed.values() for t in ts if t.timed_attribute)
    due = {
        name: tuple((t, due_key(t.timed_attribute)) for t in ts if t.timed_attribute)
        for name, ts in timed.items()
    }
    before = {
        name: frozenset(m.status_of(s) for t in timed[name] for s in t.source) for name, m in machines.items()
    }
    after = {name: frozenset(t.dest for t in timed[name]) for name in machines}
    return timed, triggers, attributes, due, before, after
