"""The entity store: every context, session and voucher the run has met, live or retired.

An entity's state is a set of *candidate* states (one normally, several for an entity adopted mid-flow,
D18). Final entities are retired to compact maps (key -> final state), so memory grows with the live
entities, not with the length of the log; a retired entity named again comes back in its final state.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from fsm.exchange import Exchange
from fsm.machines import Engine
from fsm.secrets import shown, shown_path
from fsm.spec.model import MachineSpec
from fsm.violation import RelatedExchange, SourceLocation

__all__ = ["HISTORY", "Entity", "EntityStore", "Seen", "history_location", "seen", "summary"]

HISTORY = 5
"""Exchanges remembered per entity, for 'related' and timelines."""


class Seen(NamedTuple):
    """A remembered exchange: where it was read and what it was, never its payloads."""

    exchange_index: int
    file: str
    position: int | None
    is_entry: bool
    method: str
    path: str
    status: int
    code: str | None  # the error code of a refusal (None when accepted)


def seen(ex: Exchange) -> Seen:
    """What an entity remembers of ``ex``."""
    return tuple.__new__(  # (Seen's own __new__ is a Python function: one call fewer per exchange)
        Seen,
        (
            ex.index,
            ex.file,
            ex.position,
            ex.is_entry,
            ex.method,
            ex.path,
            ex.status,
            ex.error_code if not ex.accepted else None,
        ),
    )


def summary(h: Seen) -> str:
    """``METHOD PATH -> STATUS`` (and the code of a refusal)."""
    tail = f" {shown(h.code)}" if h.code and not 200 <= h.status < 300 else ""
    return f"{shown(h.method)} {shown_path(h.path)} -> {h.status}{tail}"  # as reports may show them (D20)


def history_location(h: Seen) -> SourceLocation:
    """Where a remembered exchange was read: ``FILE:LINE`` or ``FILE:entries[N]``."""
    return SourceLocation(h.file, entry=h.position) if h.is_entry else SourceLocation(h.file, line=h.position)


class Entity:
    """One context, session or voucher as the validator knows it."""

    __slots__ = (
        "attrs",
        "callers",
        "children",
        "code",
        "expired_by_clock",
        "history",
        "id",
        "kind",
        "last_child",
        "last_event",
        "last_own",
        "model",
        "observed",
        "parent",
        "seen",
        "states",
    )

    def __init__(self, kind: str, id: str | None, code: str | None, states: tuple[str, ...]) -> None:
        self.kind = kind
        self.id = id
        self.code = code
        self.states = states
        self.attrs: dict[str, Any] = {}
        self.parent: Entity | None = None
        self.children: list[Entity] | None = None
        self.history: list[Seen] = []
        self.seen = 0  # exchanges that named it, all of them (history keeps the last few)
        self.model: Any = None
        self.observed: str | None = None
        self.last_own = -1
        self.last_event: Seen | None = None  # the last exchange that named it or one of its children
        self.last_child: str | None = None  # the id of the child that exchange named (None: itself)
        self.expired_by_clock = False
        self.callers: dict[str, int] | None = None  # role -> hash of its token: never the secret itself

    @property
    def key(self) -> str:
        """``kind:id`` (or ``kind:code=...`` when only the code is known)."""
        return f"{self.kind}:{self.id}" if self.id else f"{self.kind}:code={self.code}"

    def state_text(self) -> str:
        """The state, or ``one of A, B`` for an adopted entity."""
        return self.states[0] if len(self.states) == 1 else "one of " + ", ".join(self.states)


class EntityStore:
    """Live entities by id and by code, retired ones by their final state, and their family links.

    ``scope``: the machine whose entities scope a resource token (D10); :meth:`scope_of` walks up to it.
    """

    def __init__(
        self, machines: Mapping[str, MachineSpec], engines: Mapping[str, Engine], scope: str
    ) -> None:
        self.engines = engines
        self.scope = scope
        self.finals = {name: m.finals for name, m in machines.items()}
        self.entities: dict[tuple[str, str], Entity] = {}
        self.by_code: dict[tuple[str, str], Entity] = {}
        self.finished: dict[str, dict[str, str]] = {name: {} for name in machines}  # kind -> id -> state
        self.finished_codes: dict[str, dict[str, str]] = {name: {} for name in machines}
        self.finished_seen: dict[str, dict[str, int]] = {name: {} for name in machines}  # id -> count

    def find(self, kind: str, id: Any, code: Any) -> Entity | None:
        """The entity with this id (or, without an id, this code); a retired one comes back."""
        if isinstance(id, str):
            found = self.entities.get((kind, id))
            if found is not None:
                return found
            state = self.finished[kind].pop(id, None)
            if state is not None:  # a retired entity named again: bring it back in its final state
                back = self.adopt(kind, id, code, (state,))
                back.seen = self.finished_seen[kind].pop(id, 0)
                return back
        if isinstance(code, str) and not isinstance(id, str):
            found = self.by_code.get((kind, code))
            if found is not None:
                return found
            state = self.finished_codes[kind].pop(code, None)
            if state is not None:
                return self.adopt(kind, None, code, (state,))
        return None

    def peek(self, kind: str, id: Any, code: Any) -> Entity | None:
        """As :meth:`find`, changing nothing: a retired entity is a detached copy in its final state."""
        if isinstance(id, str):
            found = self.entities.get((kind, id))
            if found is not None:
                return found
            state = self.finished[kind].get(id)
            if state is not None:
                return Entity(kind, id, code if isinstance(code, str) else None, (state,))
        if isinstance(code, str) and not isinstance(id, str):
            found = self.by_code.get((kind, code))
            if found is not None:
                return found
            state = self.finished_codes[kind].get(code)
            if state is not None:
                return Entity(kind, None, code, (state,))
        return None

    def adopt(self, kind: str, id: Any, code: Any, states: tuple[str, ...]) -> Entity:
        """A new entity in ``states``, filed under its id and code (those that are strings)."""
        e = Entity(kind, id if isinstance(id, str) else None, code if isinstance(code, str) else None, states)
        if e.id:
            self.entities[(kind, e.id)] = e
        if e.code:
            self.by_code[(kind, e.code)] = e
        return e

    def is_filed(self, e: Entity) -> bool:
        """Whether ``e`` is the live entity filed under its id or its code (not a detached copy)."""
        return (e.id is not None and self.entities.get((e.kind, e.id)) is e) or (
            e.code is not None and self.by_code.get((e.kind, e.code)) is e
        )

    def file_code(self, e: Entity, code: Any) -> None:
        """Learn the code of an entity met by id only."""
        if e.code is None and isinstance(code, str):
            e.code = code
            self.by_code[(e.kind, code)] = e

    def settle(self, e: Entity) -> None:
        """Retire ``e`` once it is final: keep only its state, free everything else."""
        if len(e.states) != 1 or e.states[0] not in self.finals[e.kind]:
            return
        state = e.states[0]
        if e.id is not None and self.entities.get((e.kind, e.id)) is e:
            del self.entities[(e.kind, e.id)]
            self.finished[e.kind][e.id] = state
            self.finished_seen[e.kind][e.id] = e.seen
        if e.code is not None and self.by_code.get((e.kind, e.code)) is e:
            del self.by_code[(e.kind, e.code)]
            self.finished_codes[e.kind][e.code] = state
        parent = e.parent
        if parent is not None and parent.children is not None and e in parent.children:
            parent.children.remove(e)
        self.engines[e.kind].release(e)
        e.history = []
        e.attrs = {}

    def is_final(self, e: Entity) -> bool:
        """Every candidate state of ``e`` is final."""
        finals = self.finals[e.kind]
        return all(s in finals for s in e.states)

    @staticmethod
    def link(child: Entity, parent: Entity | None) -> None:
        """Make ``child`` one of ``parent``'s children (no parent: nothing)."""
        if parent is None or child.parent is parent:
            return
        child.parent = parent
        if parent.children is None:
            parent.children = []
        parent.children.append(child)

    @staticmethod
    def unlink(e: Entity) -> None:
        """Take ``e`` out of its parent's children (its id was reused by a new entity)."""
        if e.parent is not None and e.parent.children is not None:
            e.parent.children.remove(e)

    @staticmethod
    def remember(e: Entity, h: Seen) -> None:
        """``h`` happened to ``e``: its history, its own last call and its parent's last event."""
        history = e.history
        history.append(h)
        if len(history) > HISTORY:
            del history[0]
        index = h.exchange_index
        if e.last_own != index:
            e.seen += 1
        e.last_own = index
        parent = e.parent
        if parent is not None:
            parent.last_event = h
            parent.last_child = e.id
        e.last_event = h
        e.last_child = None

    @staticmethod
    def related(e: Entity) -> tuple[RelatedExchange, ...]:
        """The entity's recent exchanges, oldest first."""
        return tuple(RelatedExchange(h.exchange_index, history_location(h), summary(h)) for h in e.history)

    def scope_of(self, entity: Entity | None) -> Entity | None:
        """``entity`` or its nearest ancestor of the scope machine (D10), if any."""
        while entity is not None and entity.kind != self.scope:
            entity = entity.parent
        return entity

    def state_of(self, kind: str, ident: str) -> tuple[str, ...] | None:
        """The candidate states of the entity ``kind:ident``, live or retired; None if never met."""
        live = self.entities.get((kind, ident))
        if live is not None:
            return live.states
        final = self.finished.get(kind, {}).get(ident)
        return (final,) if final is not None else None

    def outcomes(self) -> Iterator[tuple[str, str, str, bool, int]]:
        """(key, kind, state, final, exchanges that named it) for every entity met, live or retired."""
        for (kind, _), e in self.entities.items():
            yield e.key, kind, e.state_text(), self.is_final(e), e.seen
        for kind, done in self.finished.items():
            seen = self.finished_seen[kind]
            for id_, state in done.items():
                yield f"{kind}:{id_}", kind, state, True, seen.get(id_, 0)

    def unfinished(self) -> Iterator[Entity]:
        """Entities not in a final state, in the order they were first met."""
        for e in self.entities.values():
            if not self.is_final(e):
                yield e
        for e in self.by_code.values():
            if e.id is None and not self.is_final(e):
                yield e
