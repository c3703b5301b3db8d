"""Typed, frozen views of the protocol data files.

The files under ``fsm/protocol/`` are the protocol; these classes only give
them names and types after :mod:`fsm.spec.loader` has checked them against
their own JSON Schemas.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from fsm._record import Record
from fsm.pointer import split
from fsm.violation import Rule

__all__ = [
    "STAY",
    "CallerSpec",
    "CreateSpec",
    "EntityRef",
    "FlowSpec",
    "FlowStep",
    "GuardSpec",
    "GuardUse",
    "MachineSpec",
    "ObserveSpec",
    "OperationSpec",
    "PaymentFields",
    "Ref",
    "RefusalSpec",
    "Ruling",
    "Spec",
    "StateSpec",
    "StepSpec",
    "StyleCheck",
    "TokenSpec",
    "TransitionSpec",
    "TransportKind",
]

STAY = "="
"""A transition ``dest`` meaning: stay in the source state."""

RefSource = Literal["path", "request", "response", "item"]


@dataclass(frozen=True, slots=True)
class Ref(Record):
    """Where an exchange carries a value: ``path:voucherId`` or ``response:/id``.

    ``key`` is the path parameter name, or a JSON pointer (``""`` for the whole body).
    """

    source: RefSource
    key: str
    tokens: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Ref:
        """Parse the ``source:key`` form used in the operation table."""
        source, _, key = text.partition(":")
        if source == "path":
            return cls("path", key)
        return cls(source, key, split(key))  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{self.source}:{self.key}"


@dataclass(frozen=True, slots=True)
class EntityRef(Record):
    """How an exchange names an entity: by id, by code, or both."""

    id: Ref | None = None
    code: Ref | None = None


@dataclass(frozen=True, slots=True)
class Ruling(Record):
    """One of the kit's rulings (D1, D2, ...) where the Bleepay docs are silent or disagree."""

    id: str
    section: str
    title: str
    text: str


@dataclass(frozen=True, slots=True)
class StateSpec(Record):
    """One state; ``status`` is what the API reports (sub-states share their parent's)."""

    name: str
    status: str
    final: bool
    description: str
    cite: str = ""


@dataclass(frozen=True, slots=True)
class GuardSpec(Record):
    """A named predicate over the entity, the request, or the entity's children.

    Exactly one form is set: ``attribute`` + ``equals``, ``attribute`` +
    ``equals_request`` (a pointer into the request body), or ``children`` with
    ``all_final``.
    """

    name: str
    description: str
    attribute: str | None = None
    equals: str | None = None
    equals_request: str | None = None
    children: str | None = None
    all_final: bool = False
    cite: str = ""


@dataclass(frozen=True, slots=True)
class GuardUse(Record):
    """A guard on a transition: failing it refuses with ``refuse``, or only warns with ``warn``."""

    guard: str
    refuse: str | None = None
    warn: str | None = None


@dataclass(frozen=True, slots=True)
class CreateSpec(Record):
    """A call that creates an entity directly in ``dest``."""

    trigger: str
    operation: str
    actor: str
    dest: str
    cite: str = ""
    pointer: str = ""


@dataclass(frozen=True, slots=True)
class TransitionSpec(Record):
    """One transition as written in a machine file (``dest`` may be :data:`STAY`)."""

    trigger: str
    actor: str
    source: tuple[str, ...]
    dest: str
    operation: str | None = None
    guards: tuple[GuardUse, ...] = ()
    warn: str | None = None
    timed_attribute: str | None = None
    description: str = ""
    cite: str = ""
    pointer: str = ""

    refusing_guards: tuple[GuardUse, ...] = field(init=False, default=())
    """Guards that make the call refused when they fail."""
    warning_guards: tuple[GuardUse, ...] = field(init=False, default=())
    """Guards that only produce a warning when they fail."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "refusing_guards", tuple(g for g in self.guards if g.refuse is not None))
        object.__setattr__(self, "warning_guards", tuple(g for g in self.guards if g.warn is not None))

    def dest_for(self, source: str) -> str:
        """The target state when leaving ``source``."""
        return source if self.dest == STAY else self.dest


@dataclass(frozen=True, slots=True)
class RefusalSpec(Record):
    """The error code the server must give for ``trigger`` in ``states`` (None: any code)."""

    trigger: str
    states: tuple[str, ...]
    code: str | None
    rule: str | None = None
    cite: str = ""
    pointer: str = ""
    lazy: bool = False  # accepted after a timed transition: a server expiring lazily, followed (D24)


@dataclass(frozen=True)
class MachineSpec(Record):
    """One lifecycle, as loaded from ``<name>.machine.json``."""

    name: str
    title: str
    description: str
    file: str
    states: tuple[StateSpec, ...]
    creates: tuple[CreateSpec, ...]
    transitions: tuple[TransitionSpec, ...]
    refusals: tuple[RefusalSpec, ...] = ()
    guards: Mapping[str, GuardSpec] = field(default_factory=dict)
    attributes: Mapping[str, str] = field(default_factory=dict)
    parent: str | None = None

    # derived in __post_init__ (declared, so the compiled build's classes have room for them)
    _by_name: Mapping[str, StateSpec] = field(init=False, repr=False, compare=False, default_factory=dict)
    _finals: frozenset[str] = field(init=False, repr=False, compare=False, default=frozenset())
    _statuses: frozenset[str] = field(init=False, repr=False, compare=False, default=frozenset())
    _refusal: Mapping[tuple[str, str], RefusalSpec] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )
    _operation_of: Mapping[str, str] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        by_name = {s.name: s for s in self.states}
        object.__setattr__(self, "_by_name", by_name)
        # derived once: the hot path asks for these on every exchange
        object.__setattr__(self, "_finals", frozenset(s.name for s in self.states if s.final))
        object.__setattr__(self, "_statuses", frozenset(s.status for s in self.states))
        refusal: dict[tuple[str, str], RefusalSpec] = {}
        for r in self.refusals:
            for s in r.states:
                refusal.setdefault((s, r.trigger), r)
        object.__setattr__(self, "_refusal", refusal)
        operation_of: dict[str, str] = {}
        for t in self.transitions:
            if t.operation:
                operation_of.setdefault(t.trigger, t.operation)
        object.__setattr__(self, "_operation_of", operation_of)

    @property
    def state_names(self) -> tuple[str, ...]:
        """Every state name, in file order."""
        return tuple(s.name for s in self.states)

    @property
    def finals(self) -> frozenset[str]:
        """The final states."""
        return self._finals

    @property
    def statuses(self) -> frozenset[str]:
        """Every status the API reports for this machine."""
        return self._statuses

    @property
    def triggers(self) -> tuple[str, ...]:
        """Every trigger of a transition (creation triggers excluded), in file order."""
        return tuple(dict.fromkeys(t.trigger for t in self.transitions))

    @property
    def operation_of(self) -> Mapping[str, str]:
        """Trigger -> the operation that fires it, for every trigger a call fires, in file order.

        Timed triggers are excluded. The one trigger-to-operation map: diagrams, traces and docs read it.
        """
        return self._operation_of

    def state(self, name: str) -> StateSpec:
        """The state called ``name``."""
        return self._by_name[name]

    def status_of(self, state: str) -> str:
        """The API status reported in ``state``."""
        return self.state(state).status

    def states_with_status(self, status: str) -> tuple[str, ...]:
        """The states in which the API reports ``status``."""
        return tuple(s.name for s in self.states if s.status == status)

    def refusal(self, state: str, trigger: str) -> RefusalSpec | None:
        """The documented refusal for ``trigger`` in ``state``, if any."""
        return self._refusal.get((state, trigger))

    def transitions_for(self, trigger: str) -> tuple[TransitionSpec, ...]:
        """The transitions fired by ``trigger``."""
        return tuple(t for t in self.transitions if t.trigger == trigger)

    def creation(self, trigger: str) -> CreateSpec | None:
        """The creation fired by ``trigger``, if it creates."""
        return next((c for c in self.creates if c.trigger == trigger), None)


@dataclass(frozen=True, slots=True)
class StepSpec(Record):
    """One machine step an operation makes (``creates``: the call makes the entity)."""

    machine: str
    trigger: str
    ref: EntityRef
    creates: bool = False
    parent: str | None = None
    status: Ref | None = None
    record: Mapping[str, Ref | tuple[Ref, str, str]] = field(default_factory=dict)
    expect: Mapping[str, Ref] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ObserveSpec(Record):
    """A read of an entity's status (``each``: once per item of a response array)."""

    machine: str
    ref: EntityRef
    status: Ref
    each: Ref | None = None
    record: Mapping[str, Ref | tuple[Ref, str, str]] = field(default_factory=dict)
    expect: Mapping[str, Ref] = field(default_factory=dict)
    member_of: str | None = None  # the items are children of the call's entity of this machine


@dataclass(frozen=True, slots=True)
class TokenSpec(Record):
    """Where a sign-in exchange carries the token it issues and its type."""

    token: Ref
    type: Ref
    resource: Ref | None = None


@dataclass(frozen=True)
class OperationSpec(Record):
    """One endpoint of the operation table."""

    id: str
    summary: str
    method: str
    path: str
    auth: str
    actors: tuple[str, ...]
    request: str | None
    responses: Mapping[int, str]
    errors: Mapping[int, tuple[str, ...]]
    cite: str
    pointer: str
    query: Mapping[str, str] = field(default_factory=dict)
    query_schema: str | None = None
    steps: tuple[StepSpec, ...] = ()
    observes: tuple[ObserveSpec, ...] = ()
    issues_token: TokenSpec | None = None
    learns: Mapping[str, Ref] | None = None
    payments: tuple[Ref, ...] = ()
    body_required: bool = True
    """A call must send a JSON body (False: no request body, or one the spec's ``optional_body``)."""

    @property
    def documented_codes(self) -> frozenset[str]:
        """Every error code the docs list for this endpoint."""
        return frozenset(c for codes in self.errors.values() for c in codes)


@dataclass(frozen=True, slots=True)
class CallerSpec(Record):
    """Who calls (D10): the roles an operation may be for, and how a bearer token tells its role.

    A token whose ``type_claim`` equals ``resource_type``, or that carries a string
    ``resource_claim``, is a resource token: ``resource_role``, scoped to one entity of the
    ``scope`` machine (by the code ``resource_pattern`` finds). A token with any of
    ``user_claims`` is a registered user's (``user_role``).
    """

    roles: tuple[str, ...]
    resource_role: str
    user_role: str
    scope: str
    type_claim: str
    resource_type: str
    resource_claim: str
    user_claims: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PaymentFields(Record):
    """The member names of a payment object (D14)."""

    network: str
    currency: str
    address: str


@dataclass(frozen=True, slots=True)
class TermsByValue(Record):
    """How recorded terms compare (D23): members compared by value rather than by text.

    ``decimal``: member names whose values are decimal amounts (``"100"`` = ``"100.00"``);
    ``caseless``: member names whose hex values compare case-insensitively (EIP-55 checksums).
    Everything else compares exactly.
    """

    decimal: frozenset[str] = frozenset()
    caseless: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class StyleCheck(Record):
    """A style expectation (D11/D12): values at ``pointers`` match ``pattern``, or are present.

    ``when`` limits the check to bodies whose value at a pointer equals a string
    (a ``*`` in it matches the same array item as in the checked pointer).
    """

    rule: str
    schemas: tuple[str, ...]
    pointers: tuple[str, ...]
    expected: str
    pattern: str | None = None
    required: bool = False
    when: tuple[str, str] | None = None
    pointer: str = ""


@dataclass(frozen=True, slots=True)
class FlowStep(Record):
    """One call of a declared flow: who calls which operation."""

    actor: str
    operation: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class FlowSpec(Record):
    """A documented flow, drawn as a sequence diagram."""

    name: str
    title: str
    steps: tuple[FlowStep, ...]
    cite: str = ""
    pointer: str = ""


@dataclass(frozen=True, slots=True)
class TransportKind(Record):
    """HTTP mechanics that are no protocol call (D22): an exchange fits when every condition given holds."""

    id: str
    rule: str
    name: str
    methods: frozenset[str] = frozenset()
    statuses: frozenset[int] = frozenset()
    request_headers: tuple[str, ...] = ()
    schemes_other_than: frozenset[str] = frozenset()
    from_cache: bool = False
    pointer: str = ""

    def fits(
        self, method: str, status: int, headers: Mapping[str, str], scheme: str | None, cached: bool = False
    ) -> bool:
        """True when the exchange (its method, status, request headers, URL scheme, cache) is of this kind."""
        if self.from_cache and not cached:
            return False
        if self.methods and method not in self.methods:
            return False
        if self.statuses and status not in self.statuses:
            return False
        if self.schemes_other_than and (scheme is None or scheme in self.schemes_other_than):
            return False
        return all(name in headers for name in self.request_headers)


@dataclass(frozen=True)
class Spec(Record):
    """The whole protocol: machines, operations, rules, tokens and routing facts."""

    machines: Mapping[str, MachineSpec]
    operations: tuple[OperationSpec, ...]
    rules: Mapping[str, Rule]
    tokens: tuple[tuple[str, str, str], ...]
    prefix: str
    error_schema: str
    generic_statuses: Mapping[str, int]  # codes any operation may answer -> their HTTP status (D15)
    token_types: Mapping[str, str]
    resource_pattern: str
    out_of_scope: tuple[tuple[str, str], ...]
    callers: CallerSpec
    payment_fields: PaymentFields
    general_statuses: frozenset[int]  # any operation may answer these, listed or not
    optional_body: str  # the request schema that a call may also send as no body at all
    style: tuple[StyleCheck, ...] = ()
    flows: tuple[FlowSpec, ...] = ()
    terms_by_value: TermsByValue = field(default_factory=TermsByValue)
    participants: Mapping[str, str] = field(default_factory=dict)
    transport: tuple[TransportKind, ...] = ()
    """HTTP mechanics recognised as transport (D22), in the order they are tried."""
    body_kept: frozenset[int] = frozenset()
    """Redirect statuses after which the client sends the same body again (307, 308)."""
    body_lost_rule: str = ""
    """The rule said when a request that followed such a redirect was recorded without its body."""
    rulings: Mapping[str, Ruling] = field(default_factory=dict)  # D1, D2, ... in order
    refusal_codes: Mapping[str, str] = field(default_factory=dict)  # rule an acceptance would break -> code

    _generic_errors: frozenset[str] = field(init=False, repr=False, compare=False, default=frozenset())

    def __post_init__(self) -> None:
        object.__setattr__(self, "_generic_errors", frozenset(self.generic_statuses))

    @property
    def generic_errors(self) -> frozenset[str]:
        """The codes any operation may answer (D15)."""
        return self._generic_errors

    def error_status(self, op: OperationSpec, code: object) -> int | None:
        """The HTTP status the docs give ``code`` for ``op`` (its own errors, then the generic ones)."""
        for status, codes in op.errors.items():
            if code in codes:
                return status
        return self.generic_statuses.get(code) if isinstance(code, str) else None

    def operation(self, op_id: str) -> OperationSpec:
        """The operation with id ``op_id``."""
        for op in self.operations:
            if op.id == op_id:
                return op
        raise KeyError(op_id)
