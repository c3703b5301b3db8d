"""The entity store: every context, session and voucher the run has met, live or retired.

An entity's state is a set of *candidate* states (one normally, several for an entity adopted mid-flow,
D18). Final entities are retired to compact maps (key -> final state), so memory grows with the live
entities, not with the length of the log; a retired entity named again comes back in its final state,
with what later answers are held to (its terms, and whether the clock expired it: D17, D23, D24).

Memory is bounded (D27): past a number in RAM, retired entities move to a temporary file on disk
(:mod:`fsm._spill`: the CLI's verdicts never depend on memory); past ``max_live`` live entities the
longest idle are forgotten; an embedded validator may forget retired ones after a retention time,
in RAM and on disk alike (a row on disk records when it was retired).
"""

from __future__ import annotations

import heapq
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import orjson

from fsm._spill import Spill
from fsm.exchange import Exchange
from fsm.machines import Engine
from fsm.secrets import shown, shown_path
from fsm.spec.model import MachineSpec
from fsm.violation import RelatedExchange, SourceLocation

__all__ = [
    "FINISHED_IN_RAM",
    "HISTORY",
    "STEPPED_NAMES",
    "Entity",
    "EntityStore",
    "Known",
    "Retired",
    "Seen",
    "history_location",
    "seen",
    "stepped_lines",
    "summary",
]

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
        "packed",
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
        self.expired_by_clock: tuple[str, ...] = ()  # the states before a timed transition fired (D24)
        self.callers: dict[str, int] | None = None  # role -> hash of its token: never the secret itself
        self.packed: bytes | None = None  # attrs and history as JSON while it rests (EntityStore.pack)

    @property
    def key(self) -> str:
        """``kind:id`` (or ``kind:code=...`` when only the code is known)."""
        return f"{self.kind}:{self.id}" if self.id else f"{self.kind}:code={self.code}"

    def state_text(self) -> str:
        """The state, or ``one of A, B`` for an adopted entity."""
        return self.states[0] if len(self.states) == 1 else "one of " + ", ".join(self.states)


class Retired:
    """Finished entities of one kind, by id or by code: key -> final state (and how often it was named).

    Each may carry an *extra*, a text (what a retired entity keeps, as JSON: :func:`_kept`; the id
    of one retired by its code), stored after its state on disk.

    In the order they were retired, as a dict keeps it. Past ``limit`` of them in RAM, all move to
    ``spill`` (on disk, :class:`fsm._spill.Spill`) as table ``table``, so the oldest are on disk and
    the newest in RAM; ``limit`` 0 keeps them all in RAM. With ``since`` (a retention time is set)
    each remembers when it was retired, by the log's clock, in RAM and on disk (the spill's
    cutoff then hides, and its sweep deletes, those on disk past the retention: :meth:`EntityStore.tick`).
    """

    __slots__ = ("extra", "limit", "on_disk", "ram", "seen", "since", "spill", "table")

    def __init__(self, spill: Spill | None, table: int, limit: int, timed: bool) -> None:
        self.ram: dict[str, str] = {}
        self.seen: dict[str, int] = {}
        self.extra: dict[str, str] = {}  # key -> its extra, for those that have one
        self.since: dict[str, float] | None = {} if timed else None
        self.spill = spill if limit else None
        self.table = table
        self.limit = limit
        self.on_disk = 0

    def __len__(self) -> int:
        return len(self.ram) + self.on_disk

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __eq__(self, other: object) -> bool:
        """Equal to a dict of key -> state with the same items (in any order), or to another one."""
        if isinstance(other, Retired):
            other = {k: s for k, s, _ in other.items()}
        return isinstance(other, dict) and {k: s for k, s, _ in self.items()} == other

    def get(self, key: str) -> str | None:
        """The final state of ``key``, or None."""
        state = self.ram.get(key)
        if state is not None or self.spill is None or not self.on_disk:
            return state
        row = self.spill.get(self.table, key)
        return row[0].partition(_EXTRA)[0] if row is not None else None

    def get_extra(self, key: str) -> str | None:
        """The extra of ``key`` (retired), or None."""
        if key in self.ram:
            return self.extra.get(key)
        if self.spill is None or not self.on_disk:
            return None
        row = self.spill.get(self.table, key)
        return (row[0].partition(_EXTRA)[2] or None) if row is not None else None

    def take(self, key: str) -> tuple[str, int, str | None] | None:
        """``(state, seen, extra)`` of ``key``, which is no longer retired; or None."""
        state = self.ram.pop(key, None)
        if state is not None:
            if self.since is not None:
                self.since.pop(key, None)
            return state, self.seen.pop(key, 0), self.extra.pop(key, None)
        if self.spill is None or not self.on_disk:
            return None
        row = self.spill.pop(self.table, key)
        if row is None:
            return None
        self.on_disk -= 1
        state, _, extra = row[0].partition(_EXTRA)
        return state, row[1], extra or None

    def put(self, key: str, state: str, seen: int, now: float | None, extra: str | None = None) -> bool:
        """Retire ``key`` in ``state`` (one already retired keeps its place); True when it is new."""
        new = key not in self.ram
        if (
            new
            and self.on_disk
            and self.spill is not None
            and self.spill.maybe(self.table, key)  # (most keys retired are new: no row to look for)
            and self.spill.update(
                self.table, key, _with_extra(state, extra), seen, now if self.since is not None else None
            )
        ):
            return False
        self.ram[key] = state
        self.seen[key] = seen
        if extra is not None:
            self.extra[key] = extra
        elif not new:
            self.extra.pop(key, None)
        if self.since is not None and now is not None:
            self.since[key] = now
        if self.spill is not None and len(self.ram) > self.limit:
            extras = self.extra
            since = self.since or {}
            self.spill.add(
                self.table,
                (
                    (k, _with_extra(s, extras.get(k)), self.seen.get(k, 0), since.get(k))
                    for k, s in self.ram.items()
                ),
            )
            self.on_disk += len(self.ram)
            self.ram, self.seen, self.extra = {}, {}, {}  # (new dicts: a cleared one keeps its size)
            if self.since is not None:
                self.since = {}
        return new

    def forget(self, key: str, when: float) -> bool:
        """Forget ``key`` if it was retired at ``when`` (not since brought back and retired again)."""
        if self.since is None or self.since.get(key) != when:
            return False
        del self.ram[key], self.since[key]
        self.seen.pop(key, None)
        self.extra.pop(key, None)
        return True

    def items(self) -> Iterator[tuple[str, str, int]]:
        """``(key, state, seen)`` in the order retired: those on disk first, then those in RAM."""
        if self.spill is not None and self.on_disk:
            for key, state, seen in self.spill.items(self.table):
                yield key, state.partition(_EXTRA)[0], seen
        for key, state in list(self.ram.items()):
            yield key, state, self.seen.get(key, 0)


_EXTRA = "\x1f"  # (between a state and its extra on disk: no state name holds it)


def _with_extra(state: str, extra: str | None) -> str:
    return state if extra is None else state + _EXTRA + extra


class Known:
    """What the run knows by a number (a token's hash -> its role, D10), bounded as retired entities are.

    In RAM up to ``limit`` values; past it, all move to ``spill`` (``encode`` makes a value a text
    and a number, ``decode`` takes them back), so the CLI forgets nothing (D27). With a retention
    time instead (``retain``, seconds by the log's clock), values unused for that long are
    forgotten: they live in two generations, the older dropped each ``retain`` seconds; those on
    disk carry the time they moved there and are forgotten ``retain`` seconds later (one used
    again comes back to RAM, young again).
    """

    def __init__(
        self,
        spill: Spill | None,
        table: int,
        limit: int,
        retain: float | None,
        encode: Callable[[Any], tuple[str, int]],
        decode: Callable[[str, int], Any],
    ) -> None:
        self.ram: dict[int, Any] = {}
        self.old: dict[int, Any] = {}  # (the older generation, with a retention time)
        self.spill = spill if limit else None
        self.table = table
        self.limit = limit
        self.retain = retain
        self.encode = encode
        self.decode = decode
        self.on_disk = 0
        self.turned: float | None = None  # when the generations last turned
        self.now: float | None = None  # the log's clock, as :meth:`tick` last read it

    def __len__(self) -> int:
        return len(self.ram) + len(self.old) + self.on_disk

    def get(self, key: int, default: Any = None) -> Any:
        """The value known for ``key``, or ``default``."""
        ram = self.ram
        if key in ram:
            return ram[key]
        if key in self.old:  # (used again: young again)
            value = ram[key] = self.old.pop(key)
            return value
        if self.spill is not None and self.on_disk:
            if self.retain is None:
                row = self.spill.get(self.table, str(key))
                if row is not None:
                    return self.decode(*row)
                return default
            row = self.spill.pop(self.table, str(key))  # (used again: young again, in RAM)
            if row is not None:
                self.on_disk -= 1
                value = self.decode(*row)
                self[key] = value
                return value
        return default

    def __setitem__(self, key: int, value: Any) -> None:
        if key not in self.ram and self.spill is not None and self.on_disk:
            text, number = self.encode(value)
            if self.spill.update(self.table, str(key), text, number, self.now):
                return
        self.old.pop(key, None)
        self.ram[key] = value
        if self.spill is not None and len(self.ram) > self.limit:
            now = self.now if self.retain is not None else None
            self.spill.add(self.table, ((str(k), *self.encode(v), now) for k, v in self.ram.items()))
            self.on_disk += len(self.ram)
            self.ram = {}

    def tick(self, now: float) -> int:
        """The log's clock reads ``now``: with a retention time, drop what rested through two of them.

        Returns how many values were forgotten.
        """
        if self.retain is None:
            return 0
        self.now = now
        if self.turned is None:
            self.turned = now
        if now - self.turned < self.retain:
            return 0
        forgotten = len(self.old)
        self.old, self.ram = self.ram, {}
        self.turned = now
        return forgotten


SWEEPS = 8
"""Sweeps of the spill per retention time (by the log's clock; at most one a second)."""

FINISHED_IN_RAM = 10_000
"""Finished entities of one kind kept in RAM before they move to disk (the CLI, D27)."""


class EntityStore:
    """Live entities by id and by code, retired ones by their final state, and their family links.

    ``scope``: the machine whose entities scope a resource token (D10); :meth:`scope_of` walks up to it.
    ``max_live``: past this many live entities, the longest idle are forgotten (D27; 0: no cap).
    ``finished_in_ram``: finished entities of a kind kept in RAM before the oldest move to a
    temporary file on disk (0: never). ``retain_finished``: seconds (by the log's clock) a finished
    entity is kept before it is forgotten (D27; None: kept for the whole run).
    """

    __slots__ = (
        "_codeless",
        "_due",
        "_due_keys",
        "_final_states",
        "_in_ram",
        "_known",
        "_left",
        "_one_state",
        "_recent",
        "_resting",
        "_retired",
        "_standins",
        "_statuses",
        "_swept",
        "_window",
        "_zdict",
        "_zdict_at",
        "by_code",
        "engines",
        "entities",
        "evicted",
        "expired",
        "finals",
        "finished",
        "finished_codes",
        "max_live",
        "now",
        "retain",
        "scope",
        "spill",
    )

    def __init__(
        self,
        machines: Mapping[str, MachineSpec],
        engines: Mapping[str, Engine],
        scope: str,
        *,
        max_live: int = 0,
        finished_in_ram: int = 0,
        retain_finished: float | None = None,
        words: Sequence[str] = (),
    ) -> None:
        self.engines = engines
        self.scope = scope
        self.finals = {name: m.finals for name, m in machines.items()}
        self._final_states = {name: frozenset((s,) for s in m.finals) for name, m in machines.items()}
        attributes = (
            t.timed_attribute for m in machines.values() for t in m.transitions if t.timed_attribute
        )
        self._due_keys = tuple(dict.fromkeys(f"{name}#t" for name in attributes))  # (due times: not kept)
        self.entities: dict[tuple[str, str], Entity] = {}
        self.by_code: dict[tuple[str, str], Entity] = {}
        timed = retain_finished is not None
        self.spill: Spill | None = Spill(timed) if finished_in_ram else None
        self.finished: dict[str, Retired] = {
            name: Retired(self.spill, 2 * i, finished_in_ram, timed) for i, name in enumerate(machines)
        }  # kind -> id -> final state
        self.finished_codes: dict[str, Retired] = {
            name: Retired(self.spill, 2 * i + 1, finished_in_ram, timed) for i, name in enumerate(machines)
        }
        self.max_live = max_live
        self.retain = retain_finished
        self.now: float | None = None  # the log's clock, as far as it has been read
        self._retired: deque[tuple[float, Retired, str]] = deque()  # (when, where, key), for retention
        self._swept: float | None = None  # the log's time of the spill's last sweep (retention only)
        self._due = float("-inf")  # the log's time from which tick has work again (retention only)
        self._known: list[Known] = []
        self._in_ram = finished_in_ram
        self._codeless = 0  # live entities filed by code only
        self._standins: dict[tuple[str, str], tuple[Entity, str | None]] = {}  # (see stand_in)
        self._recent: dict[int, Entity] = {}  # live entities touched in this window of exchanges, by id()
        self._resting: dict[int, Entity] = {}  # ... in the window before (both: until retired or forgotten)
        self._window = 0  # the first exchange of this window
        self._left = WINDOW  # exchanges left to step in this window
        self._statuses = {s: s for m in machines.values() for s in m.statuses}
        self._one_state = {(s.name,): (s.name,) for m in machines.values() for s in m.states}
        self._zdict = ",".join(words).encode()[-(1 << _WBITS) :]
        self._zdict_at = bytes([_zdict_index(self._zdict)])
        self.evicted = 0  # live entities forgotten under the cap (D27)
        self.expired = 0  # finished entities forgotten past the retention time (D27)

    @property
    def live(self) -> int:
        """Live entities (filed by id, or by code only)."""
        return len(self.entities) + self._codeless

    def find(self, kind: str, id: Any, code: Any) -> Entity | None:
        """The entity with this id (or, without an id, this code); a retired one comes back."""
        if isinstance(id, str):
            found = self.entities.get((kind, id))
            if found is not None:
                return found if found.packed is None else _unpacked(found)
            if self._standins and (kind, id) in self._standins:  # (named again in the same exchange)
                return self._file(self._brought_back(kind, id))
            row = self.finished[kind].take(id)
            if row is not None:  # a retired entity named again: bring it back in its final state
                back = self.adopt(kind, id, code, (row[0],))
                back.seen = row[1]
                _restore(back, row[2])
                return back
        if isinstance(code, str) and not isinstance(id, str):
            found = self.by_code.get((kind, code))
            if found is not None:
                return _unpacked(found)
            row = self.finished_codes[kind].take(code)
            if row is not None:
                known = row[2]  # (named by code, retired with its id: that one comes back)
                if known is not None and known in self.finished[kind]:
                    return self.find(kind, known, code)
                return self.adopt(kind, None, code, (row[0],))
        return None

    def peek(self, kind: str, id: Any, code: Any) -> Entity | None:
        """As :meth:`find`, changing nothing: a retired entity is a detached copy in its final state."""
        if isinstance(id, str):
            found = self.entities.get((kind, id))
            if found is not None:
                return _unpacked(found)
            retired = self.finished[kind]
            state = retired.get(id)
            if state is not None:
                copy = Entity(kind, id, code if isinstance(code, str) else None, (state,))
                _restore(copy, retired.get_extra(id))
                return copy
        if isinstance(code, str) and not isinstance(id, str):
            found = self.by_code.get((kind, code))
            if found is not None:
                return _unpacked(found)
            state = self.finished_codes[kind].get(code)
            if state is not None:
                return Entity(kind, None, code, (state,))
        return None

    def stand_in(
        self, kind: str, id: Any, code: Any, status: str, status_of: Mapping[str, str]
    ) -> Entity | None:
        """A retired entity a listing names again in ``status`` (its final state's): a stand-in; else None.

        Named by an answer that records nothing of it (D17), such an entity changes nothing but how
        often it was named: it is not brought back (what it keeps is neither read back nor written
        again). The stand-in, in its final state and filed nowhere, is what the call touched;
        :meth:`settle` retires it again as it was (:meth:`find` brings it back if the same exchange
        names it again). None: the entity is live or never met, it has a code to learn, or its state
        reports another status (:meth:`find` it).
        """
        if not isinstance(id, str) or isinstance(code, str):
            return None
        key = (kind, id)
        if key in self.entities or key in self._standins:
            return None
        retired = self.finished[kind]
        state = retired.get(id)
        if state is None or status_of.get(state) != status:
            return None
        row = retired.take(id)
        assert row is not None
        e = Entity(kind, id, None, (row[0],))
        e.seen = row[1]
        self._standins[key] = (e, row[2])
        return e

    def _brought_back(self, kind: str, id: str) -> Entity:
        """The stand-in of ``kind:id`` (:meth:`stand_in`) made the entity it stands for, not yet filed."""
        e, kept = self._standins.pop((kind, id))
        _restore(e, kept)
        parent = e.parent
        if parent is not None:  # (the listing linked it to its parent: its parent's child now)
            if parent.children is None:
                parent.children = []
            parent.children.append(e)
        return e

    def adopt(self, kind: str, id: Any, code: Any, states: tuple[str, ...]) -> Entity:
        """A new entity in ``states``, filed under its id and code (those that are strings)."""
        return self._file(
            Entity(kind, id if isinstance(id, str) else None, code if isinstance(code, str) else None, states)
        )

    def _file(self, e: Entity) -> Entity:
        """File a new live entity under its id and code (those it has)."""
        kind = e.kind
        if e.id:
            self.entities[(kind, e.id)] = e
        if e.code:
            before = self.by_code.get((kind, e.code))
            if e.id is None and (before is None or before.id is not None):
                self._codeless += 1
            elif e.id is not None and before is not None and before.id is None:
                self._codeless -= 1
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
            before = self.by_code.get((e.kind, code))
            if before is not None and before.id is None:
                self._codeless -= 1
            self.by_code[(e.kind, code)] = e

    def stepped(self, touched: Sequence[Entity], index: int, now: float | None) -> None:
        """Exchange ``index``, at ``now`` by the log's clock, named ``touched`` (in order).

        The final ones are retired (:meth:`settle`), the others rest (:meth:`rests`); then the
        memory bounds (D27): finished entities past the retention time are forgotten (:meth:`tick`),
        every :data:`WINDOW` exchanges the live ones that rested through a whole window are packed,
        and past ``max_live`` the longest idle are forgotten (:meth:`bound`).
        """
        if now is not None:
            self.now = now
            if self.retain is not None:
                self.tick(now)
        finals = self._final_states
        recent = self._recent
        for e in touched:
            if e.states in finals[e.kind]:
                self.settle(e)
            else:
                recent[id(e)] = e  # (as rests does)
        self._left -= 1
        if not self._left:
            self._sweep(index)
        if self.max_live and len(self.entities) + self._codeless > self.max_live:
            self.bound()

    def rests(self, e: Entity) -> None:
        """``e``, live, was named by this exchange: packed once it rests through a window (D27)."""
        self._recent[id(e)] = e

    def _unfile(self, e: Entity) -> tuple[bool, bool]:
        """Take ``e`` out of the maps it is filed in: (was filed by id, was filed by code)."""
        by_id = e.id is not None and self.entities.get(key := (e.kind, e.id)) is e
        if by_id:
            del self.entities[key]
        by_code = e.code is not None and self.by_code.get(key := (e.kind, e.code)) is e
        if by_code:
            del self.by_code[key]
            if e.id is None:
                self._codeless -= 1
        at = id(e)
        self._recent.pop(at, None)  # (no longer live: nothing to pack)
        self._resting.pop(at, None)
        parent = e.parent
        siblings = parent.children if parent is not None else None
        if siblings and e in siblings:
            siblings.remove(e)
        if e.model is not None:  # (an engine that keeps a model per entity: the reference's)
            self.engines[e.kind].release(e)
        e.history = []
        e.packed = None
        if e.attrs is _RESTING_ATTRS:
            e.attrs = {}
        return by_id, by_code

    def settle(self, e: Entity) -> None:
        """Retire ``e`` once it is final: keep only its state, free everything else; else :meth:`pack` it."""
        if e.states not in self._final_states[e.kind]:  # (one final state: retired)
            self.rests(e)
            return
        state = e.states[0]
        if self._standins and e.id is not None:
            standin = self._standins.get((e.kind, e.id))
            if standin is not None and standin[0] is e:  # (retired again as it was: what it keeps too)
                del self._standins[(e.kind, e.id)]
                self._retire(self.finished[e.kind], e.id, state, e.seen, self.now, standin[1])
                return
        kept = _kept(e, self._due_keys) if e.attrs or e.expired_by_clock else None
        by_id, by_code = self._unfile(e)
        now = self.now
        retire = self._retire if self.retain is not None else None  # (else nothing to note but the row)
        if by_id and e.id is not None:
            if retire is None:
                self.finished[e.kind].put(e.id, state, e.seen, now, kept)
            else:
                retire(self.finished[e.kind], e.id, state, e.seen, now, kept)
        if by_code and e.code is not None:
            if retire is None:
                self.finished_codes[e.kind].put(e.code, state, 0, now, e.id)
            else:
                retire(self.finished_codes[e.kind], e.code, state, 0, now, e.id)
        e.attrs = {}

    def pack(self, e: Entity) -> None:
        """Keep what ``e`` recorded and its history as one compressed JSON text while it rests.

        A payment is four dicts and their strings, 700 bytes, as text 200; five remembered
        exchanges 1,100 bytes, as text 500; compressed, a third less. Attributes are packed only
        when their text reads back equal (a tuple would come back a list); :meth:`find`,
        :meth:`peek` and :meth:`unfinished` hand the entity out read back, :meth:`related` reads
        the text. A childless entity's last event, its own last exchange, is dropped (only a
        parent's last event is read, and a child's first exchange sets it); a status it was seen in
        is the machine's own string.
        """
        if e.observed is not None:
            e.observed = self._statuses.get(e.observed, e.observed)
        if len(e.states) == 1:
            e.states = self._one_state.get(e.states, e.states)
        last = e.last_event
        if not e.children and last is not None and last.exchange_index == e.last_own:
            e.last_event = None  # (its index is last_own's)
        if e.packed is not None or not (e.attrs or e.history):
            return
        attrs: dict[str, Any] | None = e.attrs
        try:
            if attrs and orjson.loads(orjson.dumps(attrs)) != attrs:
                attrs = None  # (kept as they are)
            text = orjson.dumps([attrs or None, [_row(h) for h in e.history]])
        except TypeError:  # (an integer beyond 64 bits, a lone surrogate: kept as they are)
            return
        zdict = _ZDICTS[self._zdict_at[0]]
        deflate = zlib.compressobj(1, zlib.DEFLATED, -_WBITS, 2, zlib.Z_DEFAULT_STRATEGY, zdict)
        e.packed = self._zdict_at + deflate.compress(text) + deflate.flush()
        if attrs or not e.attrs:
            e.attrs = _RESTING_ATTRS  # (shared, empty: a resting entity is read back before it changes)
        e.history = _RESTING_HISTORY

    def _sweep(self, index: int) -> None:
        """Pack the entities the last window of exchanges touched and this one did not (D27).

        ``index``: the last exchange stepped, this window's last.
        """
        start = self._window
        for e in self._resting.values():
            if e.last_own < start and e.packed is None and self.is_filed(e):
                self.pack(e)
        self._resting = self._recent.copy()  # (the same dict stays this window's: written steps hold it)
        self._recent.clear()
        self._window = index + 1
        self._left = WINDOW

    def known(self, encode: Callable[[Any], tuple[str, int]], decode: Callable[[str, int], Any]) -> Known:
        """A new :class:`Known` map bounded as this store's retired entities are (D27)."""
        made = Known(self.spill, -1 - len(self._known), self._in_ram, self.retain, encode, decode)
        self._known.append(made)
        return made

    def _retire(
        self, where: Retired, key: str, state: str, seen: int, now: float | None, extra: str | None
    ) -> None:
        where.put(key, state, seen, now, extra)
        if self.retain is not None and now is not None:
            self._retired.append((now, where, key))
            self._due = min(self._due, now + self.retain)

    def _next_due(self, now: float) -> float:
        """When :meth:`tick` next has work, by the log's clock.

        A finished entity past the retention, the tokens' generations to turn, or a sweep of the spill.
        """
        retain = self.retain
        assert retain is not None
        due = self._retired[0][0] + retain if self._retired else float("inf")
        for known in self._known:
            due = min(due, now if known.turned is None else known.turned + retain)
        if self.spill is not None:
            due = min(due, now if self._swept is None else self._swept + max(retain / SWEEPS, 1.0))
        return due

    def tick(self, now: float | None) -> None:
        """The log's clock reads ``now``: forget finished entities retired longer ago than the retention."""
        if now is None:
            return
        self.now = now
        if self.retain is None:
            return
        cutoff = now - self.retain
        spill = self.spill
        for known in self._known:
            known.now = now  # (the time its values move to disk, if they do)
        if spill is not None:
            spill.cutoff = cutoff  # (rows on disk retired before it are forgotten at once...)
        if now < self._due:  # (nothing else to do before then: most exchanges)
            return
        for known in self._known:
            known.tick(now)
        retired = self._retired
        while retired and retired[0][0] < cutoff:
            when, where, key = retired.popleft()
            if where.forget(key, when):
                self.expired += 1
        if spill is not None:
            if self._swept is None:
                self._swept = now
            elif now - self._swept >= max(self.retain / SWEEPS, 1.0):
                self.sweep()  # (... and deleted now and then)
        self._due = self._next_due(now)

    def sweep(self) -> None:
        """Delete the finished entities on disk past the retention time (invisible already) and count them."""
        if self.spill is None or self.now is None:
            return
        self._swept = self.now
        gone = self.spill.sweep()
        if not gone:
            return
        tables: dict[int, Retired | Known] = {k.table: k for k in self._known}
        for done in (*self.finished.values(), *self.finished_codes.values()):
            tables[done.table] = done
            self.expired += gone.get(done.table, 0)
        for table, n in gone.items():
            tables[table].on_disk -= n

    def bound(self) -> None:
        """Past ``max_live`` live entities, forget the longest idle (down to nine tenths of the cap, D27).

        Idle: by the last exchange that named the entity or one of its children. A forgotten
        entity leaves every map of the store; a later call on it is adopted as first met (D18).
        """
        cap = self.max_live
        if not cap or self.live <= cap:
            return
        keep = cap - cap // 10
        everyone = [*self.entities.values(), *(e for e in self.by_code.values() if e.id is None)]
        for e in heapq.nsmallest(self.live - keep, everyone, key=_last_active):
            self._unfile(e)
            e.attrs = {}
            self.evicted += 1

    @property
    def forgotten(self) -> int:
        """Entities forgotten so far (D27): evicted live ones and expired finished ones."""
        return self.evicted + self.expired

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
    def remember(e: Entity, h: Seen, *, own: bool = True) -> None:
        """``h`` happened to ``e``: its history, its own last call and its parent's last event.

        ``own=False``: ``e`` was only read in an answer about its parent (a session listing its
        vouchers): history and count, but no call of its own (independence, D17).
        """
        history = e.history
        index = h.exchange_index
        if not own and history and history[-1].exchange_index == index:
            return  # (already named by this exchange)
        history.append(h)
        if len(history) > HISTORY:
            del history[0]
        if not own:
            e.seen += 1
            return
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
    def unpacked(e: Entity) -> Entity:
        """``e`` (met through its parent's children, say) with what :meth:`pack` kept read back."""
        return _unpacked(e)

    @staticmethod
    def related(e: Entity) -> tuple[RelatedExchange, ...]:
        """The entity's recent exchanges, oldest first."""
        history = e.history if e.packed is None else _history(e.packed)
        return tuple(RelatedExchange(h.exchange_index, history_location(h), summary(h)) for h in history)

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
        retired = self.finished.get(kind)
        final = retired.get(ident) if retired is not None else None
        return (final,) if final is not None else None

    def count(self) -> int:
        """How many entities :meth:`outcomes` yields."""
        return len(self.entities) + sum(len(done) for done in self.finished.values())

    def outcomes(self) -> Iterator[tuple[str, str, str, bool, int]]:
        """(key, kind, state, final, exchanges that named it) for every entity known, live or retired.

        Those on disk are read back a batch at a time: the caller may stream them.
        """
        for (kind, _), e in list(self.entities.items()):
            yield e.key, kind, e.state_text(), self.is_final(e), e.seen
        for kind, done in self.finished.items():
            for id_, state, seen in done.items():
                yield f"{kind}:{id_}", kind, state, True, seen

    def unfinished(self) -> Iterator[Entity]:
        """Entities not in a final state, in the order they were first met."""
        for e in self.entities.values():
            if not self.is_final(e):
                yield _unpacked(e)
        for e in self.by_code.values():
            if e.id is None and not self.is_final(e):
                yield _unpacked(e)


STEPPED_NAMES = [
    "    store = st.store",
    "    settle, recent, finals = store.settle, store._recent, store._final_states",
    "    retain, max_live, filed = store.retain, store.max_live, store.entities",
]
"""What :func:`stepped_lines` reads of the stepper's store (``st.store``), named once in a factory."""


def stepped_lines(pad: str) -> list[str]:
    """:meth:`EntityStore.stepped` written out, at indent ``pad``: ``touched`` by ``ex``.

    For a store whose ``stepped`` is the one of :class:`EntityStore` (its names: :data:`STEPPED_NAMES`).
    """
    lines = [
        "now = ex.time",
        "if now is not None:",
        "    store.now = now",
        "    if retain is not None:",
        "        store.tick(now)",
        "for e in touched:",
        "    if e.states in finals[e.kind]:",
        "        settle(e)",
        "    else:",
        "        recent[id(e)] = e",
        "left = store._left = store._left - 1",
        "if not left:",
        "    store._sweep(ex.index)",
        "if max_live and len(filed) + store._codeless > max_live:",
        "    store.bound()",
    ]
    return [pad + line for line in lines]


def _kept(e: Entity, due: tuple[str, ...]) -> str | None:
    """What ``e`` keeps once retired, as JSON (None: nothing but its state, or nothing JSON holds).

    Its attributes but their due times (``due``: where timed attributes keep them), in order. The
    same text in RAM and on disk, so an entity brought back reads the same wherever it was.
    """
    attrs = e.attrs.copy()
    for key in due:
        attrs.pop(key, None)
    if not attrs and not e.expired_by_clock:
        return None
    try:
        return orjson.dumps([e.expired_by_clock, attrs]).decode()
    except TypeError:  # (an integer beyond 64 bits, a lone surrogate: its state alone is kept)
        return None


def _restore(e: Entity, kept: str | None) -> None:
    """Give a retired entity named again what it kept (:func:`_kept`)."""
    if kept is not None:
        by_clock, attrs = orjson.loads(kept)
        e.expired_by_clock = tuple(by_clock)
        e.attrs = dict(attrs)


WINDOW = 2048
"""Exchanges a live entity rests untouched (one whole window) before it is packed."""


_WBITS = 12  # a 4 KB window: the whole text and the dictionary's end
_ZDICTS: list[bytes] = [b""]
"""The compression dictionaries of the stores made so far (a packed text's first byte says which)."""
_RESTING_ATTRS: dict[str, Any] = {}
_RESTING_HISTORY: list[Seen] = []


def _zdict_index(zdict: bytes) -> int:
    """The number of ``zdict`` in :data:`_ZDICTS` (added if new; 0, none, past 255 of them)."""
    if zdict not in _ZDICTS:
        if len(_ZDICTS) > 255:
            return 0
        _ZDICTS.append(zdict)
    return _ZDICTS.index(zdict)


def _read(packed: bytes) -> list[Any]:
    """``[attrs or None, history rows]`` from a packed text."""
    inflate = zlib.decompressobj(-_WBITS, _ZDICTS[packed[0]])
    data: list[Any] = orjson.loads(inflate.decompress(packed[1:]) + inflate.flush())
    return data


_FILES: dict[str, int] = {}
"""Input labels by number, so that a packed history names its file in a byte or two."""
_FILE_NAMES: list[str] = []


def _row(h: Seen) -> tuple[Any, ...]:
    """A remembered exchange as a packed history keeps it: the file by number (the first 4096)."""
    number = _FILES.get(h.file)
    if number is None and len(_FILE_NAMES) < 4096:
        number = _FILES[h.file] = len(_FILE_NAMES)
        _FILE_NAMES.append(h.file)
    return (h[0], h.file if number is None else number, *h[2:])


def _seen(row: list[Any]) -> Seen:
    """The remembered exchange a packed row stands for."""
    file = row[1]
    return Seen(row[0], _FILE_NAMES[file] if type(file) is int else file, *row[2:])


def _unpacked(e: Entity) -> Entity:
    """``e`` with what :meth:`EntityStore.pack` kept as text read back."""
    packed = e.packed
    if packed is not None:
        attrs, history = _read(packed)
        if e.attrs is _RESTING_ATTRS:
            e.attrs = attrs if attrs is not None else {}
        e.history = [_seen(h) for h in history]
        e.packed = None
    return e


def _history(packed: bytes) -> list[Seen]:
    """The history a packed entity keeps."""
    return [_seen(h) for h in _read(packed)[1]]


def _last_active(e: Entity) -> int:
    """The index of the last exchange that named ``e`` or one of its children (-1: none yet)."""
    return e.last_event[0] if e.last_event is not None else e.last_own
