"""One exchange being stepped: what every check of its operation reads, and the entities it touched."""

from __future__ import annotations

from collections.abc import Mapping

from fsm.exchange import Exchange
from fsm.spec.model import OperationSpec
from fsm.stepper.entities import Entity, Seen, seen

__all__ = ["Call"]


class Call:
    """One exchange being stepped: what every check of its operation reads, and what it touched.

    ``seen`` is what the entities it touches remember of it; ``token`` its bearer token (or None).
    """

    __slots__ = ("accepted", "ex", "op", "params", "seen", "token", "touched")

    def __init__(self, ex: Exchange, op: OperationSpec, params: Mapping[str, str]) -> None:
        self.ex = ex
        self.op = op
        self.params = params
        self.accepted = ex.accepted
        self.seen: Seen = seen(ex)
        self.token: str | None = ex.token
        self.touched: list[Entity] = []
