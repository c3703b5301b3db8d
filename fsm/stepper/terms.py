"""Terms: the values a call fixes on an entity, and that later calls must repeat.

``record`` keeps them; ``expect`` compares (a difference is ``machine.terms-changed``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from fsm._text import clip
from fsm.exchange import Exchange
from fsm.secrets import redact_value
from fsm.spec.model import Ref
from fsm.stepper.clock import Timers
from fsm.stepper.entities import Entity, EntityStore
from fsm.stepper.refs import MISSING, has_body, resolve
from fsm.violation import Finding

__all__ = ["Terms", "brief"]

Recorded = Mapping[str, Ref | tuple[Ref, str, str]]


def brief(value: Any) -> str:
    """A value as a message quotes it: JSON (strings as repr), at most 80 characters."""
    text = orjson.dumps(value).decode() if not isinstance(value, str) else repr(value)
    return clip(text, 80)


class Terms:
    """Records and compares an entity's attributes; timed attributes get their due time too."""

    def __init__(self, timers: Timers) -> None:
        self.timers = timers

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

    @staticmethod
    def expect(
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
