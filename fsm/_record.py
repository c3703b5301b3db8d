"""The base of the kit's frozen dataclasses: pickled and copied through their constructor.

A frozen dataclass compiled by mypyc cannot be pickled or copied the default way (that sets
its fields after making it, which frozen forbids); rebuilding it through the constructor
works in both builds and recomputes derived fields (``field(init=False)``) in ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["Record"]


class Record:
    """Mixed into a frozen dataclass: ``pickle``, ``copy`` and ``deepcopy`` go through ``__init__``."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, ...]:
        fields = dataclasses.fields(self)  # type: ignore[arg-type]  # (only dataclasses derive from it)
        return (type(self), tuple(getattr(self, f.name) for f in fields if f.init))
