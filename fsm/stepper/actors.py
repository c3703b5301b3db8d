"""Actors and tokens (D10): who called, and whether that role may make the call.

A bearer token's role comes from the sign-in exchange that issued it in the log, or else from its
unverified JWT claims; a token never seen is unknown and not judged. An entity remembers the tokens of
its roles (their hashes, never the secrets); roles are looked up along the parent chain. The role
names, the claim names and the machine that scopes a resource token are data (``callers`` in
``operations.json``).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from fsm._shared import per_spec
from fsm.exchange import Exchange
from fsm.secrets import fingerprint
from fsm.spec.model import CallerSpec, OperationSpec, Spec
from fsm.stepper.call import Call
from fsm.stepper.entities import Entity, EntityStore
from fsm.stepper.refs import MISSING, Reader, reader
from fsm.violation import Finding

__all__ = ["Actors", "TokenInfo"]


@dataclass(slots=True)
class TokenInfo:
    """What the run knows of a bearer token: its role, and the context code a resource token is for."""

    role: str
    code: str | None


_UNSEEN: Any = object()
"""A token the registry has not looked at yet (``None`` is one it could not tell)."""


class Actors:
    """The token registry, the roles entities hold, and the role checks of accepted calls."""

    def __init__(self, spec: Spec, store: EntityStore) -> None:
        self.callers: CallerSpec = spec.callers
        self._roles = frozenset(self.callers.roles)
        self._resource_role = self.callers.resource_role
        self.token_types = spec.token_types
        self.store = store
        self.tokens = store.known(_encode, _decode)  # hash of a token -> TokenInfo | None (bounded, D27)
        self._resource = re.compile(spec.resource_pattern)
        self.need: dict[str, str | None]
        """Per operation: the one role it is for (None: any caller)."""
        self._issues: dict[str, tuple[Reader, Reader, Reader | None]]
        """Per operation that issues a token: where its answer carries the token, its type and resource."""
        self.need, self._issues = per_spec("actors", spec, lambda: _planned(spec))

    # ------------------------------------------------------------------ tokens
    def info(self, token: str) -> TokenInfo | None:
        """What the run knows of ``token`` (learnt from a sign-in, else from its claims), or None."""
        key = hash(token)
        known = self.tokens.ram.get(key, _UNSEEN)  # (most often in RAM: no call of the bounded map's)
        if known is _UNSEEN:
            known = self.tokens.get(key, _UNSEEN)
        if known is not _UNSEEN:
            found: TokenInfo | None = known
            return found
        info = self.claims(token)
        self.tokens[key] = info
        return info

    def claims(self, token: str) -> TokenInfo | None:
        """Role from the token's unverified JWT claims (D10), or None (unknown)."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        try:
            payload = parts[1] + "=" * (-len(parts[1]) % 4)
            claims = orjson.loads(base64.urlsafe_b64decode(payload))
        except (ValueError, orjson.JSONDecodeError):
            return None
        if not isinstance(claims, dict):
            return None
        c = self.callers
        resource = claims.get(c.resource_claim)
        if claims.get(c.type_claim) == c.resource_type or isinstance(resource, str):
            return TokenInfo(c.resource_role, self._scope_code(resource))
        if any(k in claims for k in c.user_claims):
            return TokenInfo(c.user_role, None)
        return None

    def _scope_code(self, resource: object) -> str | None:
        m = self._resource.match(resource) if isinstance(resource, str) else None
        return m.group("code") if m else None

    def issue(self, op: OperationSpec, ex: Exchange, params: Mapping[str, str]) -> None:
        """Learn the role of the token an accepted sign-in issues (``issues_token``)."""
        spec = op.issues_token
        if spec is None or not ex.accepted:
            return
        read_token, read_type, read_resource = self._issues[op.id]
        token = read_token(ex, params, MISSING)
        kind = read_type(ex, params, MISSING)
        if not isinstance(token, str) or not isinstance(kind, str):
            return
        role = self.token_types.get(kind)
        if role is None:
            return
        code = self._scope_code(read_resource(ex, params, MISSING)) if read_resource is not None else None
        self.tokens[hash(token)] = TokenInfo(role, code)

    # ------------------------------------------------------------------- roles
    def bind(self, e: Entity, actor: str, token: str) -> None:
        """Remember ``token`` as the entity's ``actor``, unless it already has that role.

        Nothing to do when the entity or one of its parents already records that role (roles are
        looked up along the parent chain), nor for a resource token named for another role.
        """
        if actor not in self._roles:
            return
        holder: Entity | None = e
        while holder is not None:
            if holder.callers is not None and actor in holder.callers:
                return
            holder = holder.parent
        info = self.info(token)
        if info is not None and info.role == self.callers.resource_role and actor != info.role:
            return
        if self.role_in(token, e) is not None:
            return
        if e.callers is None:
            e.callers = {}
        e.callers[actor] = hash(token)

    def role_in(self, token: str, e: Entity | None) -> str | None:
        """The role ``token`` holds on ``e`` or its parents: the resource role wins over the others."""
        found: str | None = None
        key = hash(token)
        resource_role = self.callers.resource_role
        while e is not None:
            if e.callers is not None:
                for role, held in e.callers.items():
                    if held != key:
                        continue
                    if role == resource_role:
                        return role
                    found = found or role
            e = e.parent
        return found

    def breaches(self, call: Call, findings: list[Finding]) -> None:
        """``actors``: ``actor.wrong-role`` and ``actor.wrong-context`` findings of an accepted call (added).

        A call without a token, or refused, draws none (:meth:`Call.as_accepted
        <fsm.stepper.call.Call.as_accepted>`: what accepting it would draw).
        """
        token = call.token
        if token is None or not call.accepted:
            return
        op, touched = call.op, call.touched
        info = self.info(token)
        resource = info is not None and info.role == self._resource_role
        need = self.need[op.id]
        if need is not None:
            target = touched[-1] if touched else None
            role = self._resource_role if resource else self.role_in(token, target)
            if role is not None and role != need:
                findings.append(self.wrong_role(op, token, target, need, role))
        if info is not None and resource and info.code is not None:
            self.check_scope(touched, token, info.code, findings)

    @staticmethod
    def wrong_role(op: OperationSpec, token: str, target: Entity | None, need: str, role: str) -> Finding:
        """``actor.wrong-role``: ``op``, for the ``need`` only, was accepted from the ``role``'s ``token``."""
        return Finding(
            "actor.wrong-role",
            f"{op.id} is for the {need} only but was accepted from the {role}'s token {fingerprint(token)}",
            instance_path="/request/headers/authorization",
            entity=target.key if target else None,
            expected=need,
            actual=role,
        )

    def check_scope(self, touched: Sequence[Entity], token: str, code: str, findings: list[Finding]) -> None:
        """A resource token used on an entity of another context than its own: ``actor.wrong-context``."""
        scope = None
        for e in touched:
            scope = self.store.scope_of(e)
            if scope is not None:
                break
        if scope is not None and scope.code is not None and scope.code != code:
            target = touched[-1] if touched else None
            findings.append(
                Finding(
                    "actor.wrong-context",
                    f"resource token {fingerprint(token)} is scoped to context code {code} "
                    "but was used on "
                    f"{(target or scope).key} of context {scope.code}",
                    instance_path="/request/headers/authorization",
                    entity=(target or scope).key,
                    expected=code,
                    actual=scope.code,
                )
            )


def _encode(info: TokenInfo | None) -> tuple[str, int]:
    """A token's role as a spilled row keeps it: (role, scope code), and whether there is one."""
    if info is None:
        return "", 0
    return f"{info.role}\n{info.code or ''}", 1 if info.code is None else 2


def _decode(text: str, kind: int) -> TokenInfo | None:
    if not kind:
        return None
    role, _, code = text.partition("\n")
    return TokenInfo(role, code if kind == 2 else None)


def _planned(spec: Spec) -> tuple[dict[str, str | None], dict[str, tuple[Reader, Reader, Reader | None]]]:
    """Per operation the role it is for, and the readers of the token it issues (once a spec)."""
    roles = set(spec.callers.roles)
    need = {op.id: next((a for a in op.actors if a in roles), None) for op in spec.operations}
    issues = {
        op.id: (
            reader(op.issues_token.token),
            reader(op.issues_token.type),
            reader(op.issues_token.resource) if op.issues_token.resource is not None else None,
        )
        for op in spec.operations
        if op.issues_token is not None
    }
    return need, issues
