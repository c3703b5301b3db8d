"""One exchange being stepped: what every check of its operation reads, and the entities it touched."""

from __future__ import annotations

from collections.abc import Mapping

from fsm.exchange import Exchange
from fsm.spec.model import OperationSpec
from fsm.stepper.entities import Entity, Seen, seen

__all__ = ["Call"]


class Call:
    """One exchange being stepped: what every check of its operation reads, and what it touched.

    ``seen`` is what the entities it touches remember of it; ``token`` its bearer token (or None);
    ``broken``: the request breaks its schema, so the model predicts a refusal (D26).
    """

    __slots__ = ("accepted", "broken", "ex", "op", "params", "seen", "token", "touched")

    def __init__(
        self, ex: Exchange, op: OperationSpec, params: Mapping[str, str], broken: bool = False
    ) -> None:
        self.fill(ex, op, params, broken)

    def fill(self, ex: Exchange, op: OperationSpec, params: Mapping[str, str], broken: bool = False) -> None:
        """Make this object the call ``ex`` makes of ``op``.

        The stepper fills one for every exchange (a third of the cost of making one).
        """
        self.ex = ex
        self.broken = broken
        self.op = op
        self.params = params
        self.accepted = ex.accepted
        self.seen: Seen = seen(ex)
        self.token: str | None = ex.token
        self.touched: list[Entity] = []

    def as_accepted(self) -> Call:
        """The call as if it had been accepted (what accepting it would draw), touching the same entities."""
        call = Call(self.ex, self.op, self.params, self.broken)
        call.accepted = True
        call.touched = self.touched
        return call
