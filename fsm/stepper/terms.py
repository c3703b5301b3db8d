"""Terms: the values a call fixes on an entity, and that later calls must repeat.

``record`` keeps them; ``expect`` compares (a difference is ``machine.terms-changed``). Both are
compiled once at load (:meth:`Terms.compile`) into :class:`Term` tuples whose references are readers.
Values compare by value where the operation table says so (``terms_by_value``, D23): amounts as
decimals, hex addresses case-insensitively; everything else exactly. An object's members compare one
by one: a member only one side has (one the docs do not name, that a newer server adds or a client
sends and the server does not echo) is no change of terms, unless the two have no member in common; a
required one missing is the schema's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from fsm._text import clip
from fsm.exchange import Exchange
from fsm.secrets import redact_value
from fsm.spec.model import Ref, TermsByValue
from fsm.stepper.clock import Timers
from fsm.stepper.entities import Entity, EntityStore
from fsm.stepper.refs import MISSING, Reader, has_body, reader
from fsm.violation import Finding

__all__ = ["Term", "Terms", "brief", "same"]

_HEX = re.compile(r"0[xX][0-9a-fA-F]+")

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


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def same(a: Any, b: Any, how: TermsByValue, key: str | None = None) -> bool:
    """Whether two recorded values are the same terms (D23); ``key``: the member that holds them."""
    if a == b:
        return True
    if type(a) is dict and type(b) is dict:  # members only one side has are no terms (forward-compatible)
        shared = 0
        for k, v in a.items():
            if k in b:
                if not same(v, b[k], how, k):
                    return False
                shared += 1
        return shared > 0 or not a or not b  # (two objects with no member in common are two terms)
    if type(a) is list and type(b) is list:
        return len(a) == len(b) and all(same(x, y, how, key) for x, y in zip(a, b, strict=True))
    if not (isinstance(a, str) and isinstance(b, str)) or key is None:
        return False
    if key in how.decimal:
        x, y = _decimal(a), _decimal(b)
        return x is not None and x == y
    if key in how.caseless:
        return bool(_HEX.fullmatch(a) and _HEX.fullmatch(b)) and a.lower() == b.lower()
    return False


class Terms:
    """Records and compares an entity's attributes; timed attributes get their due time too."""

    def __init__(self, timers: Timers, by_value: TermsByValue | None = None) -> None:
        self.timers = timers
        self.by_value = by_value if by_value is not None else TermsByValue()

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
            read = term.read  # (read into a local first: a call through a field is slower)
            if term.choice is not None:
                if not has_body(term.ref, ex):
                    continue  # no JSON body on that side: the shape is unknown
                then, other = term.choice
                value = then if read(ex, params, item) is not MISSING else other
            else:
                value = read(ex, params, item)
                if value is MISSING or value is None:
                    continue
            e.attrs[term.name] = value
            if term.timed:
                self.timers.record(e, term.name, value)

    def learn(
        self, exp: tuple[Term, ...], e: Entity, ex: Exchange, params: Mapping[str, str], item: Any = MISSING
    ) -> None:
        """Keep the values an answer shows that the model did not know yet: later answers repeat them."""
        missing = tuple(term for term in exp if term.name not in e.attrs)
        if missing:
            self.record(missing, e, ex, params, item)

    def expect(
        self,
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
            read = term.read
            actual = read(ex, params, item)
            fixed = e.attrs[name]
            if actual is MISSING or actual is None or actual == fixed:
                continue  # (the common case, without a call)
            if same(fixed, actual, self.by_value, name):
                continue
            state = e.state_text()
            acc.append(
                Finding(
                    "machine.terms-changed",
                    f"{e.key} ({state}): {name} is {brief(redact_value(actual, name))} here but was fixed as "
                    f"{brief(redact_value(e.attrs[name], name))}",  # (fixed by an earlier exchange)
                    instance_path=base + ref.key,
                    entity=e.key,
                    expected=e.attrs[name],
                    actual=actual,
                    related=EntityStore.related(e),
                    state=state,
                )
            )
        return acc
