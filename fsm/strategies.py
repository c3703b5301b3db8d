"""Hypothesis strategies for integrators: every payload, and whole valid flows.

Property-test your own client or server against the protocol::

    from hypothesis import given
    from fsm import strategies

    @given(strategies.requests("redeem-voucher"))
    def test_my_server_accepts_valid_redeems(body): ...

    @given(strategies.flows(max_sessions=2))
    def test_my_client_replays_valid_traffic(records): ...

Needs the ``hypothesis`` extra: ``pip install 'voucher-fsm[hypothesis]'``.
"""

from __future__ import annotations

from typing import Any

try:
    from hypothesis import strategies as st
    from hypothesis_jsonschema import from_schema
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("fsm.strategies needs Hypothesis: pip install 'voucher-fsm[hypothesis]'") from exc

from fsm._resources import load_schemas
from fsm.errors import UsageError
from fsm.generate import generate
from fsm.spec import load_spec

__all__ = ["flows", "payloads", "requests", "responses"]


def payloads(schema_id: str) -> st.SearchStrategy[Any]:
    """Valid instances of one shipped schema, e.g. ``vouchers/redeem-voucher.request``."""
    schemas = load_schemas()
    if schema_id not in schemas:
        raise UsageError(f"no schema {schema_id!r}; shipped: {', '.join(sorted(schemas))}")
    return from_schema(dict(schemas[schema_id]))


def requests(operation_id: str) -> st.SearchStrategy[Any]:
    """Valid request bodies of an operation (``redeem-voucher``, ``session-open``, ...)."""
    op = load_spec().operation(operation_id)
    if op.request is None:
        raise UsageError(f"{operation_id} takes no request body")
    return payloads(op.request)


def responses(operation_id: str, status: int = 200) -> st.SearchStrategy[Any]:
    """Valid response bodies of an operation for a status (errors: the {code, message} envelope)."""
    spec = load_spec()
    op = spec.operation(operation_id)
    if status in op.responses:
        return payloads(op.responses[status])
    generic = {code for code, answered in spec.generic_statuses.items() if answered == status}
    codes = sorted(set(op.errors.get(status, ())) | generic)
    if not codes:
        known = sorted({*op.responses, *op.errors, *spec.generic_statuses.values()})
        raise UsageError(f"{operation_id} documents no answer with status {status}; it has {known}")
    return st.fixed_dictionaries({"code": st.sampled_from(codes)}, optional={"message": st.text(max_size=40)})


def flows(
    min_sessions: int = 1, max_sessions: int = 3, *, complete: bool = True
) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Whole valid flows as exchange records.

    Sessions with 1-8 vouchers each, SIMPLE and CUSTOM, FX, refusals answered with the
    right codes. Shrinks towards fewer sessions and smaller seeds.
    """
    return st.builds(
        lambda n, seed: list(generate(n, seed=seed, partial=not complete)),
        st.integers(min_sessions, max_sessions),
        st.integers(0, 2**16),
    )
