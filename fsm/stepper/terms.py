"""Terms: the values a call fixes on an entity, and that later calls must repeat.

``record`` keeps them; ``expect`` compares (a difference is ``machine.terms-changed``). Values compare
by value where the operation table says so (``terms_by_value``, D23): amounts as decimals, hex
addresses case-insensitively; everything else exactly.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from fsm._text import clip
from fsm.exchange import Exchange
from fsm.secrets import redact_value
from fsm.spec.model import Ref, TermsByValue
from fsm.stepper.clock import Timers
from fsm.stepper.entities import Entity, EntityStore
from fsm.stepper.refs import MISSING, has_body, resolve
from fsm.violation import Finding

__all__ = ["Terms", "brief", "same"]

_HEX = re.compile(r"0[xX][0-9a-fA-F]+")

Recorded = Mapping[str, Ref | tuple[Ref, str, str]]


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
    if type(a) is dict and type(b) is dict:
        return a.keys() == b.keys() and all(same(v, b[k], how, k) for k, v in a.items())
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

    def record(
        self, rec: Recorded, e: Entity, ex: Exchange, params: Mapping[str, str], item: Any = MISSING
    ) -> None:
        """Keep the values ``rec`` names (a ``present``/``then``/``else`` triple keeps a choice)."""
        for name, how in rec.items():
            value: Any  # (declared: the compiled build would type it str from the first branch)
            if isinstance(how, tuple):
                ref, then, other = how
                if not has_body(ref, ex):
                    continue  # no JSON body on that side: the shape is unknown
                value = then if resolve(ref, ex, params, item) is not MISSING else other
            else:
                value = resolve(how, ex, params, item)
                if value is MISSING or value is None:
                    continue
            e.attrs[name] = value
            self.timers.record(e, name, value)

    def learn(
        self, exp: Mapping[str, Ref], e: Entity, ex: Exchange, params: Mapping[str, str], item: Any = MISSING
    ) -> None:
        """Keep the values an answer shows that the model did not know yet: later answers repeat them."""
        missing = {name: ref for name, ref in exp.items() if name not in e.attrs}
        if missing:
            self.record(missing, e, ex, params, item)

    def expect(
        self,
        exp: Mapping[str, Ref],
        e: Entity,
        ex: Exchange,
        params: Mapping[str, str],
        item: Any = MISSING,
        base: str = "/response/body",
    ) -> list[Finding]:
        """A ``machine.terms-changed`` finding for each recorded value the exchange contradicts."""
        acc: list[Finding] = []
        for name, ref in exp.items():
            if name not in e.attrs:
                continue
            actual = resolve(ref, ex, params, item)
            if actual is MISSING or actual is None or same(e.attrs[name], actual, self.by_value, name):
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
