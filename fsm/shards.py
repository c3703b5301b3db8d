"""Shards by payment context: one run on N processes, the same report as one process (issue 19).

A cheap first pass reads every record once, types it, routes it and notes only the ids it names
(context, session and voucher ids and codes: the ``ref`` of each of its operation's ``steps`` and
``observes`` in the operation table). Exchanges that name a common id are one connected component
(union-find). A code links only where the entity store finds an entity by it, an exchange naming
the code without an id: it joins every entity named by id that carried the code, before or after
(:func:`named_ids`, :meth:`Scan.carry`); a code given with an id is otherwise no link (six-digit
voucher codes recur across unrelated contexts). Bearer tokens are no link either (one payer's
token spans many contexts). Components are packed into N shards, largest first. Each shard is judged by
the same pipeline (:class:`fsm.pipeline.Validator`), in log order within the shard, and the
findings are merged back in log order.

What spans contexts is handed over explicitly, each from the log position it holds:

- the token table and the currency registry: every exchange whose operation ``issues_token``
  or ``learns`` (D10, D14) is replayed, without being judged, in the other shards, just
  before the first exchange that follows it in the log: a sign-in only in the shards whose
  exchanges present the token it issues (the table is looked up by the token an exchange
  presents, nothing else), a currency list in every one;
- each file's clock (D19): the time of the exchange before, in the whole file;
- once-per-file infos (``time.missing``, ``time.no-offset``): told by the shard holding the
  file's first such exchange; once-per-path infos (D1) and everything not routed to an
  operation form one component, so one matcher sees them all, in order;
- exchange numbers: each exchange keeps its number in the whole log;
- first-N-per-rule details, counts, entity outcomes and totals: merged in the order one
  process would have made them (:func:`merge`).
"""

from __future__ import annotations

import glob
import heapq
import io
import math
import multiprocessing
import os
import zlib
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from fsm import worker
from fsm._collector import fewer_collections
from fsm._record import Record
from fsm.config import Config
from fsm.errors import UsageError
from fsm.exchange import Exchange, bearer_token, build_exchange, has_no_offset
from fsm.machines import Engine
from fsm.matcher import Match
from fsm.pipeline import Validator, distinct_label, make_matcher
from fsm.readers import RawItem, input_uri, open_input, printable, read_jsonl
from fsm.report import EntityOutcome, EntityOutcomes, InputSummary, Report, Totals, sort_violations
from fsm.spec import Spec, load_spec
from fsm.spec.model import EntityRef, MachineSpec, OperationSpec
from fsm.stepper import Stepper
from fsm.stepper.call import Call
from fsm.stepper.core import CHECKS
from fsm.stepper.entities import Entity, EntityStore
from fsm.stepper.refs import MISSING, Reader, reader
from fsm.violation import Finding, Severity, Violation

__all__ = [
    "Plan",
    "ShardResult",
    "cores",
    "expand",
    "merge",
    "one_process",
    "plan",
    "run_shard",
    "validate_sharded",
]

_NONE = float("nan")  # no previous time in the file
_UNLINKED = 0  # the component of every record no operation's ids place: unreadable, unrouted, no answer
_NEVER = 2**63 - 1  # (an ordinal no record has)
_LEARNING = ("issues_token", "learns")  # the operation keys whose effect spans contexts (CHECKS)


def _packed(record: Any) -> Any:
    """A record kept for replay, as JSON text (a fraction of the cost of a record to hand between processes).

    Only where the text reads back as the same record: not with a number or a string orjson cannot
    write (a 5000-digit integer, a lone surrogate), nor with a ``null``, which may be one it wrote
    for an infinite number (read leniently, :mod:`fsm.readers._json`).
    """
    try:
        text = orjson.dumps(record)
    except TypeError:
        return record
    return record if b"null" in text else text


def cores() -> int:
    """The processors this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # (not Linux)
        return os.cpu_count() or 1


_GLOB = frozenset("*?[")


def expand(paths: Iterable[str | Path]) -> list[str]:
    """Inputs with glob patterns (``logs/*.jsonl.gz``) replaced by the files they match, sorted.

    A name that is a file is itself, wildcards or not; a pattern that matches nothing is a
    :class:`~fsm.errors.UsageError`.
    """
    out = []
    for given in paths:
        name = str(given)
        if name == "-" or Path(name).exists() or not _GLOB & set(name):
            out.append(name)
            continue
        found = sorted(glob.glob(name, recursive=True))
        if not found:
            raise UsageError(f"{name}: no file matches")
        out.extend(found)
    return out


# ------------------------------------------------------------------ first pass
@dataclass
class PlannedFile(Record):
    """One input as the first pass read it: where its records sit in the run's numbering."""

    path: str
    label: str
    format: str
    uri: str | None
    is_entry: bool
    base: int  # the run-wide number (ordinal) of its first record
    continues: bool = False  # a later part of the file the scan before read the start of
    positions: array[int] = field(default_factory=lambda: array("q"))  # line or entry of each record
    # (a HAR's entries come in time order: their positions need not rise; then :meth:`Plan.ordinal`
    # maps them here, made once where it is needed. An init field: the compiled build sets no other.)
    ordinals: dict[int, int] | None = field(default=None, repr=False, compare=False)


@dataclass
class Plan(Record):
    """What the first pass learnt: each record's shard and what its shard needs to judge it."""

    files: list[PlannedFile]
    shards: int
    shard_of: array[int]  # per record (ordinal): its shard
    index: array[int]  # per record: the exchange number the pipeline gives its exchange
    previous: array[float]  # per record: the time of its file's last timed exchange before it (nan: none)
    first: bytearray  # per record: 1 = its file's first exchange without a time, 2 = first without an offset
    learned: list[int]  # ordinals of the exchanges whose operation learns what spans contexts
    replays: dict[int, tuple[Any, int, str, dict[str, str]]]  # ordinal -> record, ... (those replayed)
    replay_to: list[array[int]]  # per shard: the ordinals of ``learned`` in other shards it replays
    sizes: list[int]  # records per shard
    authorized: set[str]  # labels of the files with a token or a cookie in some exchange
    components: int
    largest: int  # records in the largest component
    named: int = 0  # distinct ids, and codes looked up without an id: at most this many entities live at once
    clocks: dict[str, float] = field(default_factory=dict)  # per label: its last time (D19), at the end

    def capped(self, config: Config) -> bool:
        """Whether ``config``'s cap on live entities (max-live, D27) could forget one in this run.

        Shards judge only part of the entities each, so a cap would forget others than one process
        forgets: a run it could bite is judged in one process instead (the report stays the same).
        """
        return config.max_live > 0 and self.named > config.max_live

    def own(self, f: PlannedFile, shard: int) -> array[int]:
        """The run-wide numbers (ordinals) of ``shard``'s records in ``f``, in log order."""
        shard_of, out = self.shard_of, array("q")
        for o in range(f.base, f.base + len(f.positions)):
            if shard_of[o] == shard:
                out.append(o)
        return out

    def lines(self, f: PlannedFile, own: array[int]) -> bytearray:
        """A byte per line (or entry) of ``f`` up to the last of ``own``'s records: 1 where one of them is.

        (Sized by the farthest position: a problem of no position, -1, may come last, after a HAR's entries.)
        """
        positions, base = f.positions, f.base
        mask = bytearray(max(positions[o - base] for o in own) + 1 if own else 0)  # (HAR: in time order)
        for o in own:
            line = positions[o - base]
            if line >= 0:
                mask[line] = 1
        return mask

    def ordinal(self, f: PlannedFile, position: int | None) -> int:
        """The run-wide number of the record at ``position`` of ``f``.

        Positions rise through a file, but for a HAR whose entries the reader put in time order
        (:func:`fsm.readers.har.in_time_order`): those are looked up in a map made once.
        """
        key, positions = -1 if position is None else position, f.positions
        at = bisect_left(positions, key)
        if at < len(positions) and positions[at] == key:
            return f.base + at
        if f.ordinals is None:
            f.ordinals = {p: i for i, p in reversed(list(enumerate(positions)))}
        return f.base + f.ordinals[key]

    @property
    def skew(self) -> float:
        """The largest shard over the mean shard (1.0: perfectly even)."""
        total = sum(self.sizes)
        return max(self.sizes) * len(self.sizes) / total if total else 1.0


class _Components:
    """Union-find over the ids exchanges name."""

    def __init__(self) -> None:
        self.parent = array("q", [_UNLINKED])
        self.nodes: dict[tuple[str, str, str], int] = {}

    def new(self) -> int:
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def node(self, name: tuple[str, str, str]) -> int:
        found = self.nodes.get(name)
        if found is None:
            found = self.nodes[name] = self.new()
        return found

    def find(self, x: int) -> int:
        parent = self.parent
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, a: int, b: int) -> int:
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[b] = a
        return a

    def join(self, names: Iterable[tuple[str, str, str]]) -> int:
        """The component of the ids ``names`` (a new one if none), all of them joined.

        An id seen for the first time is filed under the component's root (no node of its own).
        """
        nodes, parent = self.nodes, self.parent
        root = -1
        fresh = []
        for name in names:
            node = nodes.get(name)
            if node is None:
                fresh.append(name)
                continue
            r = self.find(node)
            if root < 0:
                root = r
            elif r != root:
                parent[r] = root
        if root < 0:
            root = self.new()
        for name in fresh:
            nodes[name] = root
        return root


Name = tuple[str, str, str]
"""``(machine, "id" or "code", value)``: an id, or a code an entity is looked up by, that links exchanges."""
Carried = tuple[str, str, str]
"""``(machine, code, id)``: an entity named by its id, and the code the exchange gives it."""
IdsReader = Callable[[Exchange, dict[str, str]], tuple[list[Name], list[Carried]]]
_Pick = tuple[str, Reader, Reader, bool]  # (machine, its id, its code, whether the code alone finds it)


def _pick(machine: str, ref: EntityRef, looks_up: bool) -> _Pick:
    return (machine, reader(ref.id), reader(ref.code), looks_up)


def named_ids(op: OperationSpec) -> IdsReader:
    """The reader of the ids an exchange of ``op`` names, as the operation table says.

    ``read(ex, params)``: the names that link the exchange to others, and the codes it gives
    entities it names by id. The entity store (:meth:`fsm.stepper.entities.EntityStore.find`)
    finds an entity by its id when the exchange names one (a string), and by its code only when
    it names none: an entity met by id keeps its code for such lookups and for nothing else. So a
    reference naming an id links by the id (``(machine, "id", id)``) and carries its code
    (``(machine, code, id)``: it links by the code only if another exchange looks the code up,
    :meth:`Scan.carry`); one naming a code without an id links by the code
    (``(machine, "code", code)``). A creating step (``creates``) never looks up: it makes the
    entity under its id, or nothing without one. Each reference is compiled once
    (:func:`fsm.stepper.refs.reader`).
    """
    plan: list[tuple[Reader | None, _Pick]] = [
        (None, _pick(s.machine, s.ref, not s.creates)) for s in op.steps
    ]
    plan.extend(
        (None if o.each is None else reader(o.each), _pick(o.machine, o.ref, True)) for o in op.observes
    )

    def read(ex: Exchange, params: dict[str, str]) -> tuple[list[Name], list[Carried]]:
        out: list[Name] = []
        carried: list[Carried] = []
        for each, (machine, id_of, code_of, looks_up) in plan:
            items = _ALONE if each is None else each(ex, params, MISSING)
            if not isinstance(items, list):
                continue
            for item in items:
                id_, code = id_of(ex, params, item), code_of(ex, params, item)
                if isinstance(id_, str):
                    out.append((machine, "id", id_))
                    if isinstance(code, str):
                        carried.append((machine, code, id_))
                elif looks_up and isinstance(code, str):
                    out.append((machine, "code", code))
        return out, carried

    return read


_ALONE = [MISSING]  # (a reference read without an ``each``: once, with no item)


@dataclass
class Scan(Record):
    """The first pass over some inputs: per record, its component and what its shard needs."""

    files: list[PlannedFile] = field(default_factory=list)
    uf: _Components = field(default_factory=_Components)
    comp: array[int] = field(default_factory=lambda: array("q"))
    index_of: array[int] = field(default_factory=lambda: array("q"))
    previous: array[float] = field(default_factory=lambda: array("d"))
    first: bytearray = field(default_factory=bytearray)
    learned: list[int] = field(default_factory=list)
    replays: dict[int, tuple[Any, int, str, dict[str, str]]] = field(default_factory=dict)
    # ordinal of a sign-in (of ``learned``) -> the tag (:func:`_tag`) of the token it issues; a
    # learning exchange not here teaches every shard (a currency list, a token it cannot tell)
    teaches: dict[int, int] = field(default_factory=dict)
    # token tag -> the nodes of the exchanges that present the token (a routed call's bearer token)
    users: dict[int, int | set[int]] = field(default_factory=dict)
    index: int = 0  # exchanges numbered so far
    clocks: dict[str, float] = field(default_factory=dict)  # per label: the last time (D19)
    untimed: set[str] = field(default_factory=set)  # labels told they have exchanges without a time
    offsetless: set[str] = field(default_factory=set)  # ... without a UTC offset
    authorized: set[str] = field(default_factory=set)  # labels with a token or a cookie somewhere
    # (machine, code) -> the nodes of the ids that carried it (one, or several) while no exchange
    # looked it up: linked by it from the first lookup on (:meth:`carry`)
    carriers: dict[tuple[str, str], int | list[int]] = field(default_factory=dict)

    def read(self, f: PlannedFile, items: Iterable[RawItem], spec: Spec, config: Config) -> None:
        """Read one input's records (``f`` says where they come from)."""
        with fewer_collections():  # (a tuple per id met: hundreds of thousands of objects)
            self._read(f, items, spec, config)

    def _read(self, f: PlannedFile, items: Iterable[RawItem], spec: Spec, config: Config) -> None:
        f.base = len(self.comp)
        self.files.append(f)
        matcher = make_matcher(spec, config)
        learning = {op.id for op in spec.operations if any(CHECKS[k][0](op) for k in _LEARNING)}
        issued = _issued(spec)
        tags: dict[str, int] = {}  # Authorization header -> the tag of its token (-1: none)
        users, teaches = self.users, self.teaches
        label, is_entry, comp, first, uf = f.label, f.is_entry, self.comp, self.first, self.uf
        last: float = self.clocks.get(label, _NONE)  # the file's clock
        untimed, offsetless = label in self.untimed, label in self.offsetless
        names = {op.id: named_ids(op) for op in spec.operations}
        positions, index_of, previous = f.positions.append, self.index_of.append, self.previous.append
        mark, link, index, o = first.append, comp.append, self.index, len(comp) - 1
        transport, match, body_lost = matcher.transport, matcher.match, matcher.body_lost
        carriers = self.carriers
        for position, record, error in items:
            o += 1
            positions(-1 if position is None else position)
            index_of(index)
            previous(last)
            mark(0)
            link(_UNLINKED)
            if error is not None:
                continue
            try:
                built = build_exchange(record, index, label, position, is_entry)
            except Exception:  # (the shard reports the kit's failure on it, as one process does)
                continue
            if isinstance(built, Finding):
                continue
            index += 1
            if transport(built) is not None:  # HTTP mechanics (D22): all in one component
                continue
            if "authorization" in built.headers:
                self.authorized.add(label)
            if built.time is None:
                if not untimed:
                    untimed, first[o] = True, 1
            else:
                last = built.time
                if not offsetless and has_no_offset(built.time_text or ""):
                    offsetless, first[o] = True, 2
            if built.status == 0:
                continue
            try:
                routed = match(built)
            except Exception:
                continue
            if type(routed) is not Match:
                continue
            op_id = routed.operation.id
            if op_id in learning:
                self.learned.append(o)
                self.replays[o] = (_packed(record), len(self.files) - 1, op_id, routed.params)
                token_of = issued.get(op_id)
                token = None if token_of is None else token_of(built, routed.params, MISSING)
                if isinstance(token, str):
                    teaches[o] = _tag(token)
            links, carried = names[op_id](built, routed.params)
            node = comp[o] = uf.join(links)
            auth = built.headers.get("authorization")
            if auth is not None:
                tag = tags.get(auth)
                if tag is None:  # (a log presents each token many times: read and tagged once)
                    token = bearer_token(auth)
                    tag = tags[auth] = -1 if token is None else _tag(token)
                held = users.get(tag)
                if held is None:
                    users[tag] = node
                elif held != node:
                    _note(users, tag, node)
            for machine, what, value in links:
                if what == "code" and (machine, value) in carriers:
                    self._looked_up(machine, value)
            for machine, code, id_ in carried:
                self.carry((machine, code), uf.nodes[(machine, "id", id_)])
            if body_lost(built):  # it follows a 307/308 (D22): judged with the transport
                uf.union(_UNLINKED, comp[o])
        self.index = index
        if matcher.cookies:
            self.authorized.add(label)
        if f.format == "har" and label not in self.authorized:
            # (a sanitized HAR, perhaps: which calls lack a token is told for the whole file at once)
            for o in range(f.base, len(comp)):
                uf.union(_UNLINKED, comp[o])
        if not math.isnan(last):
            self.clocks[label] = last
        if untimed:
            self.untimed.add(label)
        if offsetless:
            self.offsetless.add(label)

    def carry(self, key: tuple[str, str], node: int) -> None:
        """The entity whose id is at ``node`` carries the code ``key`` (machine, code).

        Linked to the code if an exchange looked it up already; else noted, for the first that does
        (:meth:`_looked_up`). A lookup by code finds whichever entity the store holds under the code
        at that point of the log (:meth:`fsm.stepper.entities.EntityStore.find`): every entity that
        carried it is one component with the lookup. A code no exchange looks up links nothing
        (six-digit voucher codes, reused by unrelated contexts).
        """
        looked = self.uf.nodes.get((key[0], "code", key[1]))
        if looked is not None:
            self.uf.union(looked, node)
            return
        held = self.carriers.get(key)
        if held is None:
            self.carriers[key] = node
        elif isinstance(held, int):
            if held != node:
                self.carriers[key] = [held, node]
        elif held[-1] != node:
            held.append(node)

    def _looked_up(self, machine: str, code: str) -> None:
        """An exchange looks ``code`` up: link the entities that carried it before."""
        held = self.carriers.pop((machine, code), None)
        if held is not None:
            looked, union = self.uf.nodes[(machine, "code", code)], self.uf.union
            for node in _each(held):
                union(looked, node)

    def extend(self, other: Scan) -> None:
        """Append the scan of the inputs that follow (scanned apart: other processes or machines).

        ``other`` may start with the rest of this scan's last file (``continues``): its clock and
        once-per-file flags then carry on from where this scan left the file. Into an empty scan,
        ``other`` is taken as it is (its tables are this scan's from then on).
        """
        if not self.files and not self.comp:
            for taken in _SCAN_FIELDS:
                setattr(self, taken, getattr(other, taken))
            return
        base, files = len(self.comp), len(self.files)
        ours: dict[int, int] = {_UNLINKED: _UNLINKED}  # other's roots -> our nodes
        nodes, find, union = self.uf.nodes, other.uf.find, self.uf.union
        looked = []  # codes the other scan looks up that this one does not
        for name, node in other.uf.nodes.items():
            root = find(node)
            mine = ours.get(root)
            known = nodes.get(name)
            if known is None:
                if name[1] == "code":
                    looked.append(name)
                if mine is None:
                    mine = ours[root] = self.uf.new()
                nodes[name] = mine
            elif mine is None:
                ours[root] = self.uf.find(known)
            else:
                ours[root] = union(mine, known)
        theirs: dict[int, int] = {}  # other's components (as its records name them) -> our nodes
        for c in set(other.comp):
            root = other.uf.find(c)
            mine = ours.get(root)
            if mine is None:
                mine = ours[root] = self.uf.new()
            theirs[c] = mine
        self.comp.extend(array("q", map(theirs.__getitem__, other.comp)))
        for machine, _, code in looked:
            self._looked_up(machine, code)
        for key, held in other.carriers.items():
            for node in _each(held):
                self.carry(key, ours[find(node)])
        previous, first = array("d", other.previous), bytearray(other.first)
        numbers = []
        for k, f in enumerate(other.files):
            if k == 0 and f.continues and self.files:
                head = self.files[-1]
                head.positions.extend(f.positions)
                numbers.append(files - 1)
                self._carry_on(head.label, previous, first, len(f.positions))
                continue
            f.base += base
            numbers.append(len(self.files))
            self.files.append(f)
        self.index_of.extend(array("q", map(self.index.__add__, other.index_of)))
        self.previous.extend(previous)
        self.first.extend(first)
        self.learned.extend(o + base for o in other.learned)
        for o, (record, file_no, op_id, params) in other.replays.items():
            self.replays[o + base] = (record, numbers[file_no], op_id, params)
        for o, tag in other.teaches.items():
            self.teaches[o + base] = tag
        for tag, using in other.users.items():
            for node in _each(using):
                _note(self.users, tag, ours[find(node)])
        self.index += other.index
        self.clocks.update(other.clocks)
        self.untimed |= other.untimed
        self.offsetless |= other.offsetless
        self.authorized |= other.authorized

    def _carry_on(self, label: str, previous: array[float], first: bytearray, n: int) -> None:
        """The first ``n`` records continue ``label``: its clock and what it was told already."""
        last = self.clocks.get(label, _NONE)
        for j in range(n):
            if not math.isnan(previous[j]):
                break
            previous[j] = last
        told = (1 if label in self.untimed else 0) | (2 if label in self.offsetless else 0)
        if told:
            for j in range(n):
                first[j] &= ~told


_SCAN_FIELDS = tuple(f.name for f in fields(Scan))


def _each(held: int | list[int] | set[int]) -> Iterable[int]:
    return (held,) if isinstance(held, int) else held


def _note(users: dict[int, int | set[int]], tag: int, node: int) -> None:
    """Note that an exchange at ``node`` presents the token tagged ``tag``."""
    held = users.get(tag)
    if held is None:
        users[tag] = node
    elif isinstance(held, int):
        if held != node:
            users[tag] = {held, node}
    else:
        held.add(node)


def _tag(token: str) -> int:
    """A token's tag: the same in every process (unlike ``hash``), and no secret (D20).

    Two tokens with one tag only replay a sign-in to a shard that does not need it.
    """
    return zlib.crc32(token.encode("utf-8", "surrogatepass"))


def _issued(spec: Spec) -> dict[str, Reader]:
    """Per operation that issues a token and learns nothing else: the reader of the token it issues."""
    return {
        op.id: reader(op.issues_token.token)
        for op in spec.operations
        if op.issues_token is not None and op.learns is None
    }


def planned_files(paths: Sequence[str]) -> list[PlannedFile]:
    """Each input with the label reports give it (two inputs shown alike are told apart, as one run does)."""
    labels: dict[str, str] = {}
    return [
        PlannedFile(p, distinct_label(labels, printable(p), p), "", input_uri(p), False, 0) for p in paths
    ]


def scan_file(
    f: PlannedFile, spec: Spec, config: Config, local: str | None = None, scan: Scan | None = None
) -> Scan:
    """The first pass over one input (read from ``local`` when given: a copy of a remote file)."""
    info, items = open_input(local or f.path, longest=config.longest_record, most_values=config.most_values)
    f.format, f.is_entry = info.format, info.positions_are_entries
    scan = scan if scan is not None else Scan()
    scan.read(f, items, spec, config)
    return scan


_PART_FROM = 8 << 20  # bytes: a plain JSONL file this big has its first pass split over processes


def _parts(path: str, n: int) -> list[tuple[int, int, int]]:
    """``n`` (start byte, end byte, lines before) ranges of a plain file, each ending at a line end."""
    size = os.path.getsize(path)
    cuts, lines = [0], [0]
    with open(path, "rb") as fh:
        counted = 0
        for k in range(1, n):
            fh.seek(max(size * k // n, cuts[-1]))
            fh.readline()  # (to the end of the line the cut falls in)
            cut = fh.tell()
            if cut >= size or cut <= cuts[-1]:
                break
            fh.seek(cuts[-1])
            counted += _newlines(fh, cut - cuts[-1])
            cuts.append(cut)
            lines.append(counted)
    cuts.append(size)
    return [(cuts[i], cuts[i + 1], lines[i]) for i in range(len(cuts) - 1)]


def _newlines(fh: Any, size: int) -> int:
    count = 0
    while size > 0:
        block = fh.read(min(size, 1 << 22))
        if not block:
            break
        count += block.count(b"\n")
        size -= len(block)
    return count


def _scan_part(job: tuple[PlannedFile, int, int, int, Spec, Config]) -> Scan:
    """The first pass over bytes ``start`` to ``end`` of a plain JSONL file (lines numbered as in it)."""
    f, start, end, lines, spec, config = job
    with open(f.path, "rb") as fh:
        fh.seek(start)
        data = io.BytesIO(fh.read(end - start))
    items = read_jsonl(data, longest=config.longest_record, most_values=config.most_values)
    scan = Scan()
    scan.read(
        replace(f, format="jsonl", continues=start > 0, positions=array("q")),
        _shifted(items, lines),
        spec,
        config,
    )
    return scan


def _shifted(items: Iterator[RawItem], lines: int) -> Iterator[RawItem]:
    """``items`` numbered ``lines`` further on, one at a time.

    (A generator, not a generator expression: mypyc compiles those as lists, which parsed a
    whole part before the scan began, outside its rarer collections: at a million records the
    compiled first pass took 17.5 s a part against 6.3 pure, and 1.8 GB.)
    """
    for pos, record, error in items:
        yield (None if pos is None else pos + lines), record, error


def plan(
    paths: Sequence[str],
    shards: int,
    *,
    spec: Spec | None = None,
    config: Config | None = None,
    processes: int = 1,
) -> Plan:
    """The first pass: read, type and route every record, link them by the ids they name, pack shards.

    ``processes``: a plain JSONL file over 8 MB is read in that many parts at once (forked).
    """
    spec = spec if spec is not None else load_spec()
    config = config if config is not None else Config()
    scan = Scan()
    for f in planned_files(paths):
        parts = _parts(f.path, processes) if processes > 1 and _plain_jsonl(f.path) else []
        if len(parts) < 2:
            scan_file(f, spec, config, scan=scan)
            continue
        with multiprocessing.get_context("fork").Pool(len(parts)) as pool:
            scans = pool.map(_scan_part, [(f, *part, spec, config) for part in parts], chunksize=1)
        for part_scan in scans:
            scan.extend(part_scan)
    return pack(scan, shards)


def _plain_jsonl(path: str) -> bool:
    """A regular JSONL file, not compressed, big enough to read in parts."""
    if path == "-" or not os.path.isfile(path) or os.path.getsize(path) < _PART_FROM:
        return False
    info, items = open_input(path)
    try:
        return info.format == "jsonl" and not info.compressed and info.size is not None
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()
        info.close()


def pack(scan: Scan, shards: int) -> Plan:
    """Components packed into ``shards`` shards, largest first, each into the least loaded.

    A sign-in alone in its component goes with the exchanges that present the token it issues
    (those of the first component that does): it need not be replayed there (:func:`_replay_to`).
    """
    find = scan.uf.find
    root_of = {c: find(c) for c in set(scan.comp)}
    roots = array("q", map(root_of.__getitem__, scan.comp))
    sizes = Counter(roots)
    components, largest = len(sizes), max(sizes.values(), default=0)
    moved = _follow_tokens(scan, roots, sizes)
    order = sorted(sizes, key=lambda r: (-sizes[r], r))
    loads = [(0, k) for k in range(shards)]
    shard_of_root: dict[int, int] = {}
    for r in order:
        load, k = heapq.heappop(loads)
        shard_of_root[r] = k
        heapq.heappush(loads, (load + sizes[r], k))
    for r, u in moved.items():
        shard_of_root[r] = shard_of_root[u]
    shard_of = array("h", map(shard_of_root.__getitem__, roots))
    per_shard = [0] * shards
    for load, k in loads:
        per_shard[k] = load
    replay_to = _replay_to(scan, shard_of, shard_of_root, shards)
    replays = scan.replays  # (only those some shard replays travel on with the plan)
    return Plan(
        scan.files,
        shards,
        shard_of,
        scan.index_of,
        scan.previous,
        scan.first,
        scan.learned,
        {o: replays[o] for o in sorted({o for some in replay_to for o in some})},
        replay_to,
        per_shard,
        scan.authorized,
        components,
        largest,
        len(scan.uf.nodes),
        dict(scan.clocks),
    )


def _follow_tokens(scan: Scan, roots: array[int], sizes: Counter[int]) -> dict[int, int]:
    """Each sign-in alone in its component, packed with the first component presenting its token.

    ``roots`` and ``sizes`` change to say so; returns the sign-ins' roots -> the roots they follow.
    """
    find, users, teaches = scan.uf.find, scan.users, scan.teaches
    moved: dict[int, int] = {}
    for o in scan.learned:
        tag = teaches.get(o)
        r = roots[o]
        if tag is None or sizes[r] != 1:
            continue
        held = users.get(tag)
        if held is None:
            continue
        u = find(held if isinstance(held, int) else min(held))
        u = moved.get(u, u)  # (itself a sign-in that followed another: the same shard)
        if u == r:
            continue
        roots[o] = u
        moved[r] = u
        del sizes[r]
        sizes[u] += 1
    return moved


def _replay_to(
    scan: Scan, shard_of: array[int], shard_of_root: dict[int, int], shards: int
) -> list[array[int]]:
    """Per shard, the learning exchanges of other shards it replays (:attr:`Plan.replay_to`).

    A sign-in is replayed where an exchange presents the token it issues; any other learning
    exchange everywhere.
    """
    out = [array("q") for _ in range(shards)]
    every = range(shards)
    find, users, teaches = scan.uf.find, scan.users, scan.teaches
    for o in scan.learned:
        tag = teaches.get(o)
        if tag is None:
            targets: Iterable[int] = every
        else:
            held = users.get(tag)
            targets = () if held is None else {shard_of_root[find(n)] for n in _each(held)}
        mine = shard_of[o]
        for k in targets:
            if k != mine:
                out[k].append(o)
    return out


# ------------------------------------------------------------------ one shard
class ShardStore(EntityStore):
    """The entity store, noting the exchange at which each entry entered each of its tables.

    One process lists entities in the order its tables hold them; a shard holds a part of those
    tables, in the same relative order, and these numbers interleave the parts again.
    """

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
        super().__init__(
            machines,
            engines,
            scope,
            max_live=max_live,
            finished_in_ram=finished_in_ram,
            retain_finished=retain_finished,
            words=words,
        )
        self.at = -1  # the exchange being stepped (``now`` is the store's clock, D27)
        self.born: dict[tuple[str, str], int] = {}
        self.code_born: dict[tuple[str, str], int] = {}
        self.done_at: dict[tuple[str, str], int] = {}

    def _file(self, e: Entity) -> Entity:
        ids, codes = len(self.entities), len(self.by_code)
        super()._file(e)
        if len(self.entities) > ids and e.id is not None:  # (under a new id: filing removes none)
            self.born[(e.kind, e.id)] = self.at
        if len(self.by_code) > codes and e.code is not None:
            self.code_born[(e.kind, e.code)] = self.at
        return e

    def file_code(self, e: Entity, code: Any) -> None:
        if e.code is None and isinstance(code, str) and (e.kind, code) not in self.by_code:
            self.code_born[(e.kind, code)] = self.at
        super().file_code(e, code)

    def settle(self, e: Entity) -> None:
        done = self.finished[e.kind]
        before = len(done)  # (grows by one where ``e`` is retired by its id for the first time)
        super().settle(e)
        if len(done) > before and e.id is not None:
            self.done_at[(e.kind, e.id)] = self.at

    def outcome_keys(self) -> list[tuple[int, int, int]]:
        """Where each of :meth:`outcomes` stands in one process's order."""
        keys = [(0, 0, self.born[k]) for k in self.entities]
        for rank, (kind, done) in enumerate(self.finished.items(), 1):
            keys.extend((1, rank, self.done_at[(kind, id_)]) for id_, _, _ in done.items())
        return keys

    def unfinished_keys(self) -> list[tuple[int, int, int]]:
        """Where each of :meth:`unfinished` stands in one process's order."""
        keys = [(1, 0, self.born[k]) for k, e in self.entities.items() if not self.is_final(e)]
        keys.extend(
            (1, 1, self.code_born[k])
            for k, e in self.by_code.items()
            if e.id is None and not self.is_final(e)
        )
        return keys


class ShardStepper(Stepper):
    """The stepper of one shard: its store notes order, and it replays what other shards learnt."""

    store_class = ShardStore

    def learn(self, ex: Exchange, match: Match) -> None:
        """Apply what an exchange judged in another shard teaches (tokens, currencies), judging nothing."""
        call = Call(ex, match.operation, match.params)
        for key in _LEARNING:
            declared, check = CHECKS[key]
            if declared(match.operation):
                getattr(self, check)(call, [])

    def resume_clock(self, file: str, time: float | None) -> None:
        """``file``'s clock as the exchanges before, in other shards too, left it (D19)."""
        self._clock.resume(file, time)

    def clock_resumer(self) -> Callable[[str, float | None], None]:
        """:meth:`resume_clock`, bound once (called for every exchange of a shard)."""
        return self._clock.resume


@dataclass
class ShardResult(Record):
    """What one shard hands back: its kept violations and entities, each with its place in one run's order."""

    violations: list[tuple[tuple[int, ...], Violation]]
    kept: Counter[str]
    untold: Counter[tuple[str, Severity]]
    entities: list[tuple[tuple[int, ...], tuple[str, str, str, bool, int]]]  # (EntityOutcome's fields)
    report: Report  # (inputs and totals: this shard's part; its entities are in ``entities``)


ItemSource = Callable[[Plan, PlannedFile, int], tuple[str, Iterator[RawItem]]]
"""(plan, file, shard) -> the file's format and the shard's records of it, in log order (others may
come too: they are skipped)."""


class ShardValidator(Validator):
    """The pipeline's validator judging one shard of a planned run."""

    def __init__(self, spec: Spec, *, config: Config, engine: str) -> None:
        super().__init__(spec, config=config, engine=engine, stepper=ShardStepper, max_live=0)
        self._own = array("q")  # the ordinals of the shard's records in the file being read

    def run(self, p: Plan, shard: int, items: ItemSource | None = None) -> ShardResult:
        """Judge the records of ``shard``: read from the files (``items``: from elsewhere, in log order)."""
        items = items if items is not None else self._read_own
        stepper: ShardStepper = self._stepper  # type: ignore[assignment]
        ops = {op.id: op for op in self.spec.operations}
        self._untimed.update(f.label for f in p.files)  # told by the shard holding the first
        self._offsetless.update(f.label for f in p.files)
        self._authorized |= p.authorized  # (a file told it has tokens somewhere, in other shards too)
        learned, li = p.replay_to[shard], 0
        upcoming = learned[0] if learned else _NEVER  # (the next replay's ordinal)
        tags: dict[int, tuple[int, ...]] = {}  # id(violation) -> where one process emits it
        vs = self._violations
        store: ShardStore = stepper.store  # type: ignore[assignment]
        resume, shard_of, index, first_of, previous = (
            stepper.clock_resumer(),
            p.shard_of,
            p.index,
            p.first,
            p.previous,
        )
        judge, front = self._judge, self._front
        for f in p.files:
            label, is_entry, positions, base = f.label, f.is_entry, f.positions, f.base
            self._own = own = p.own(f, shard)
            wanted = array("q", (positions[o - base] for o in own))  # (their positions: -1 for none)
            fmt, records = items(p, f, shard)
            read, judged, transport, first = self._read, self._judged, self._transport, len(vs)
            k, mine = 0, len(own)  # (own[k]: the next of the shard's records, as they come in log order)
            for item in records:
                position = item[0]
                if k < mine and wanted[k] == (-1 if position is None else position):
                    o = own[k]
                    k += 1
                else:  # (another shard's record, or one the plan does not place where it came)
                    o = p.ordinal(f, position)
                    if shard_of[o] != shard:
                        continue
                if upcoming < o:
                    while li < len(learned) and learned[li] < o:
                        self._replay(p, learned[li], ops)
                        li += 1
                    upcoming = learned[li] if li < len(learned) else _NEVER
                self._index = store.at = index[o]
                told = first_of[o]
                if told:
                    if told & 1:
                        self._untimed.discard(label)
                    elif told & 2:
                        self._offsetless.discard(label)
                t = previous[o]
                resume(label, None if t != t else t)  # (nan: no time before)
                n = len(vs)
                judge(front(item, label, is_entry), label, is_entry)
                if len(vs) > n:
                    for j in range(n, len(vs)):
                        tags[id(vs[j])] = (0, o, 0, j)
            if fmt == "har":  # (after the file's last record, as one process says it; it may withdraw some)
                before = {id(v) for v in vs[first:]}
                self._sanitized(label, first)
                for gone in before - {id(v) for v in vs[first:]}:
                    del tags[gone]
                for j in range(first, len(vs)):
                    tags.setdefault(id(vs[j]), (0, f.base + len(f.positions) - 1, 1, j))
            self._inputs.append(
                InputSummary(
                    label, fmt, self._read - read, self._judged - judged, f.uri, self._transport - transport
                )
            )
        ended = len(vs)
        for label, t in p.clocks.items():  # (unfinished entities' clocks run to the log's latest time, D24)
            stepper.resume_clock(label, t)
        report = self.finish()
        keyed = [(tags[id(v)], v) for v in vs[:ended]]
        for i, (v, key) in enumerate(zip(vs[ended:], store.unfinished_keys(), strict=False)):
            keyed.append(((*key, ended + i), v))
        outcomes = zip(store.outcome_keys(), report.entities, strict=True)
        # (plain tuples travel back to the merging process in a fraction of a named tuple's time)
        entities: list[tuple[tuple[int, ...], tuple[str, str, str, bool, int]]] = [
            ((*key, i), (e.key, e.kind, e.state, e.final, e.exchanges)) for i, (key, e) in enumerate(outcomes)
        ]
        report = replace(report, entities=())
        return ShardResult(keyed, Counter(self._kept), Counter(self._untold), entities, report)

    def _read_own(self, p: Plan, f: PlannedFile, shard: int) -> tuple[str, Iterator[RawItem]]:
        """The format of ``f`` and its records of ``shard`` (:meth:`run` set ``_own``), to the last of them.

        The others are not even parsed: a JSONL line is only looked up in a byte mask.
        """
        own = self._own
        if not own:
            return f.format, iter(())
        bounds = self.config
        mask = p.lines(f, own)
        info, items = open_input(
            f.path, longest=bounds.longest_record, most_values=bounds.most_values, keep=mask.__getitem__
        )
        return info.format, _to(items, f.positions[own[-1] - f.base])

    def _replay(self, p: Plan, o: int, ops: dict[str, OperationSpec]) -> None:
        record, file_no, op_id, params = p.replays[o]
        if isinstance(record, bytes):
            record = orjson.loads(record)
        f = p.files[file_no]
        ex = build_exchange(record, p.index[o], f.label, f.positions[o - f.base], f.is_entry)
        if isinstance(ex, Exchange):
            self._stepper.learn(ex, Match(ops[op_id], params))  # type: ignore[attr-defined]


def _to(items: Iterator[RawItem], last: int) -> Iterator[RawItem]:
    """``items`` up to the one at position ``last``; the reader is then closed (the rest is other shards').

    (The mask a shard reads JSONL lines by ends at that line: it is never asked about a later one.)
    """
    try:
        for item in items:
            yield item
            if item[0] == last:
                return
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


def run_shard(
    p: Plan,
    shard: int,
    *,
    spec: Spec,
    config: Config,
    engine: str = "table",
    items: ItemSource | None = None,
) -> ShardResult:
    """Judge shard ``shard`` of ``p`` (its records read from the files, or from ``items``)."""
    with fewer_collections():  # (as one process judges its files: a young collection every 50,000 objects)
        return ShardValidator(spec, config=config, engine=engine).run(p, shard, items)


# ------------------------------------------------------------------ merge
def merge(p: Plan, results: Sequence[ShardResult], *, spec: Spec, config: Config) -> Report:
    """One report from the shards' parts, as one process would have made it."""
    keep = config.kept_per_rule or 2**63
    kept: Counter[str] = Counter()
    untold: Counter[tuple[str, Severity]] = Counter()
    violations: list[Violation] = []
    for _, v in sorted((kv for r in results for kv in r.violations), key=lambda kv: kv[0]):
        if kept[v.rule_id] < keep:
            kept[v.rule_id] += 1
            violations.append(v)
        else:
            untold[(v.rule_id, v.severity)] += 1
    for r in results:
        untold.update(r.untold)
    ordered = [e for _, e in sorted((ke for r in results for ke in r.entities), key=_first)]
    inputs = []
    for i, f in enumerate(p.files):
        parts = [r.report.inputs[i] for r in results]
        inputs.append(
            InputSummary(
                f.label,
                parts[0].format if parts else f.format,
                sum(x.records for x in parts),
                sum(x.judged for x in parts),
                f.uri,
                sum(x.transport for x in parts),
            )
        )
    totals = Totals(*(sum(getattr(r.report.totals, t.name) for r in results) for t in fields(Totals)))
    routed = sum(r.report.routed or 0 for r in results)
    told = next((r.report for r in results if r.report.paths_seen or r.report.advice), None)
    return Report(
        inputs=tuple(inputs),
        totals=totals,
        routed=routed,
        # (every exchange not routed to an operation is in one shard: its paths are all the paths)
        paths_seen=told.paths_seen if told is not None and not routed else (),
        advice=told.advice if told is not None and not routed else "",
        violations=sort_violations(violations),
        entities=EntityOutcomes(partial(map, EntityOutcome._make, ordered), len(ordered)),
        rules=spec.rules,
        strict=config.strict,
        untold=tuple(sorted(((rule, level, n) for (rule, level), n in untold.items()), key=str)),
    )


def _first(pair: tuple[tuple[int, ...], Any]) -> tuple[int, ...]:
    return pair[0]


# ------------------------------------------------------------------ processes
_RUN: tuple[Plan, Spec, Config, str] | None = None  # (inherited by forked shard processes)


def _in_child(shard: int) -> ShardResult:
    assert _RUN is not None
    p, spec, config, engine = _RUN
    return run_shard(p, shard, spec=spec, config=config, engine=engine)


def one_process(names: Sequence[str], spec: Spec, config: Config, engine: str) -> Report:
    """The run of ``names`` in this process, as :func:`fsm.validate_log` makes it."""
    v = Validator(spec, config=config, engine=engine)
    for name in names:
        v.feed_file(name)
    return v.finish()


def validate_sharded(
    paths: str | Path | Iterable[str | Path],
    *,
    jobs: int | None = None,
    config: Config | None = None,
    spec: Spec | None = None,
    engine: str = "table",
    on_plan: Callable[[Plan], None] | None = None,
) -> Report:
    """Validate log files on ``jobs`` processes (default: the cores available).

    The report is the one :func:`fsm.validate_log` makes in one process, byte for byte in every
    format. Inputs may be glob patterns (:func:`expand`).

    Standard input (``-``) cannot be read twice: with it, where processes cannot be forked, or
    where the cap on live entities could forget one (:meth:`Plan.capped`), the run is one process.
    ``on_plan`` is called with the first pass's :class:`Plan` (shard sizes, components, the
    largest component).
    """
    global _RUN
    names = expand([paths] if isinstance(paths, (str, Path)) else paths)
    jobs = cores() if jobs is None else jobs
    spec = spec if spec is not None else load_spec()
    config = config if config is not None else Config()
    if jobs <= 1 or "-" in names or not worker.available():
        return one_process(names, spec, config, engine)
    p = plan(names, jobs, spec=spec, config=config, processes=jobs)
    if on_plan is not None:
        on_plan(p)
    if p.capped(config):
        return one_process(names, spec, config, engine)
    _RUN = (p, spec, config, engine)
    try:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            results = pool.map(_in_child, range(jobs), chunksize=1)
    finally:
        _RUN = None
    return merge(p, results, spec=spec, config=config)
