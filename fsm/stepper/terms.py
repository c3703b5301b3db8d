"""Terms: the values a call fixes on an entity, and that later calls must repeat.

``record`` keeps them; ``expect`` compares (a difference is ``machine.terms-changed``). Both are
compiled once at load (:meth:`Terms.compile`) into :class:`Term` tuples whose references are readers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from fsm._text import clip
from fsm.exchange import Exchange
from fsm.secrets import redact_value
from fsm.spec.model import Ref
from fsm.stepper.clock import Timers
from fsm.stepper.entities import Entity, EntityStore
from fsm.stepper.refs import MISSING, Reader, has_body, reader
from fsm.violation import Finding

__all__ = ["Term", "Terms", "brief"]

Recorded = Mapping[str, Ref | tuple[Ref, str, str]]


@dataclass(frozen=True, slots=True)
class Term:
    """One ``record`` or ``expect`` entry, compiled: its name, its reference and the reader of it.

    ``choice``: for a ``present``/``then``/``else`` entry, the two values it keeps; ``timed``: the
    name is a timed transition's attribute (its due time is kept too).
    """

    name: str
    ref: Ref
    read: Reader
    choice: tuple[str, str] | None = None
    timed: bool = False


def brief(value: Any) -> str:
    """A value as a message quotes it: JSON (strings as repr), at most 80 characters."""
    text = orjson.dumps(value).decode() if not isinstance(value, str) else repr(value)
    return clip(text, 80)


class Terms:
    """Records and compares an entity's attributes; timed attributes get their due time too."""

    def __init__(self, timers: Timers) -> None:
        self.timers = timers

    def compile(self, entries: Recorded) -> tuple[Term, ...]:
        """Compile a ``record`` (or ``expect``) mapping, in its order (once, at load)."""
        out: list[Term] = []
        for name, how in entries.items():
            timed = name in self.timers.attributes
            if isinstance(how, tuple):
                ref, then, other = how
                out.append(Term(name, ref, reader(ref), (then, other), timed))
            else:
                out.append(Term(name, how, reader(how), None, timed))
        return tuple(out)

    def record(
        self, rec: tuple[Term, ...], e: Entity, ex: Exchange, params: Mapping[str, str], item: Any = MISSING
    ) -> None:
        """Keep the values ``rec`` names (a ``present``/``then``/``else`` entry keeps a choice)."""
        for term in rec:
            value: Any  # (declared: the compiled build would type it str from the first branch)
            if term.choice is not None:
                if not has_body(term.ref, ex):
                    continue  # no JSON body on that side: the shape is unknown
                then, other = term.choice
                value = then if term.read(ex, params, item) is not MISSING else other
            else:
                value = term.read(ex, params, item)
                if value is MISSING or value is None:
                    continue
            e.attrs[term.name] = value
            if term.timed:
                self.timers.record(e, term.name, value)

    @staticmethod
    def expect(
        exp: tuple[Term, ...],
        e: Entity,
        ex: Exchange,
        params: Mapping[str, str],
        item: Any = MISSING,
        base: str = "/response/body",
    ) -> list[Finding]:
        """A ``machine.terms-changed`` finding for each recorded value the exchange contradicts."""
        acc: list[Finding] = []
        for term in exp:
            name, ref = term.name, term.ref
            if name not in e.attrs:
                continue
            actual = term.read(ex, params, item)
            if actual is MISSING or actual is None or actual == e.attrs[name]:
                continue
            acc.append(
                Finding(
                    "machine.terms-changed",
                    f"{e.key}: {name} is {brief(redact_value(actual, name))} here but was fixed as "
                    f"{brief(redact_value(e.attrs[name], name))}",  # (fixed by an earlier exchange)
                    instance_path=base + ref.key,
                    entity=e.key,
                    expected=e.attrs[name],
                    actual=actual,
                    related=EntityStore.related(e),
                )
            )
        return acc
