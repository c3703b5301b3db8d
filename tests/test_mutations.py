"""Validator completeness: each mutation of valid generated traffic raises the rule it is meant to.

An operator takes a clean generated log, breaks it in one place, and says which
rule must fire at which record. Hypothesis picks the log (seed, sessions) and the
place; a failing case shrinks and is printed as a short replayable JSONL log.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import assume, given, note, settings
from hypothesis import strategies as st

from fsm.generate import generate
from fsm.pipeline import Validator

Records = list[dict[str, Any]]
Mutation = tuple[Records, set[str], int]  # (mutated log, acceptable rule ids, 0-based record index)
EXAMPLES = max(8, settings.default.max_examples // 3)


def _op(r: dict[str, Any]) -> str:
    return str(r["request"]["path"]).rsplit("/", 1)[-1]


def _where(records: Records, suffix: str, method: str = "POST") -> list[int]:
    return [
        i
        for i, r in enumerate(records)
        if r["request"]["method"] == method
        and r["request"]["path"].endswith(suffix)
        and 200 <= r["response"]["status"] < 300
    ]


def _shift(t: str, seconds: float) -> str:
    moved = datetime.fromisoformat(t) + timedelta(seconds=seconds)
    return moved.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moved.microsecond // 1000:03d}Z"


def duplicate_redeem(log: Records, pick: int) -> Mutation | None:
    """An accepted redeem, accepted again: two accepted redeems of one voucher (D19)."""
    spots = _where(log, "/redeem-voucher")
    if not spots:
        return None
    i = spots[pick % len(spots)]
    out = copy.deepcopy(log)
    out.insert(i + 1, copy.deepcopy(out[i]))
    return out, {"machine.illegal-transition"}, i + 1


def drop_join(log: Records, pick: int) -> Mutation | None:
    """The payer's join disappears: the next reserve happens before the payer joined (D3)."""
    joins = _where(log, "/session-join")
    if not joins:
        return None
    j = joins[pick % len(joins)]
    session = log[j]["request"]["path"].split("/")[-2]
    later = [i for i in _where(log, "/reserve-voucher") if i > j and session in log[i]["request"]["path"]]
    if not later:
        return None
    out = copy.deepcopy(log)
    del out[j]
    return out, {"session.reserve-before-join"}, later[0] - 1


def swap_redeem_and_resolve(log: Records, pick: int) -> Mutation | None:
    """A voucher is resolved before it is redeemed (keeping timestamps in order)."""
    resolves = _where(log, "/resolve-voucher")
    if not resolves:
        return None
    j = resolves[pick % len(resolves)]
    voucher = log[j]["request"]["path"].split("/")[-2]
    redeems = [
        i for i in _where(log, "/redeem-voucher") if i < j and f"/{voucher}/" in log[i]["request"]["path"]
    ]
    if not redeems:
        return None
    i = redeems[-1]
    out = copy.deepcopy(log)
    out[i], out[j] = out[j], out[i]
    out[i]["time"], out[j]["time"] = log[i]["time"], log[j]["time"]
    return out, {"machine.illegal-transition"}, i


def refuse_a_legal_resolve(log: Records, pick: int) -> Mutation | None:
    """The server refuses a resolve that is legal (D16: a warning)."""
    spots = _where(log, "/resolve-voucher")
    if not spots:
        return None
    i = spots[pick % len(spots)]
    out = copy.deepcopy(log)
    out[i]["response"] = {"status": 400, "body": {"code": "not_redeemed"}}
    return out, {"machine.unexpected-refusal"}, i


def break_required_field(log: Records, pick: int) -> Mutation | None:
    """A SIMPLE redeem without its amount."""
    spots = [i for i in _where(log, "/redeem-voucher") if "expectedPayment" in log[i]["request"]["body"]]
    if not spots:
        return None
    i = spots[pick % len(spots)]
    out = copy.deepcopy(log)
    del out[i]["request"]["body"]["expectedPayment"]["amount"]
    return out, {"schema.request"}, i


def wrong_token(log: Records, pick: int) -> Mutation | None:
    """The payee's resource token resolves a voucher (D10)."""
    spots = _where(log, "/resolve-voucher")
    if not spots:
        return None
    i = spots[pick % len(spots)]
    opens = [k for k in _where(log, "/session-open") if k < i]
    if not opens:
        return None
    out = copy.deepcopy(log)
    out[i]["request"]["headers"]["authorization"] = log[opens[-1]]["request"]["headers"]["authorization"]
    return out, {"actor.wrong-role"}, i


def move_time_past_expiry(log: Records, pick: int) -> Mutation | None:
    """Ten minutes pass before a resolve, which is still accepted (D2)."""
    spots = _where(log, "/resolve-voucher")
    if not spots:
        return None
    i = spots[pick % len(spots)]
    out = copy.deepcopy(log)
    for r in out[i:]:
        r["time"] = _shift(r["time"], 600)
    return out, {"time.accepted-after-expiry"}, i


def show_another_fate(log: Records, pick: int) -> Mutation | None:
    """A voucher's GET shows a fate it never had (D17)."""
    spots = _where(log, "", method="GET")
    spots = [i for i in spots if "/vouchers/vch_" in log[i]["request"]["path"]]
    if not spots:
        return None
    i = spots[pick % len(spots)]
    out = copy.deepcopy(log)
    body = out[i]["response"]["body"]
    body["status"] = "DISCARDED" if body["status"] != "DISCARDED" else "RESOLVED"
    return out, {"observe.status-mismatch", "observe.independence"}, i


OPERATORS: dict[str, Callable[[Records, int], Mutation | None]] = {
    f.__name__: f
    for f in (
        duplicate_redeem,
        drop_join,
        swap_redeem_and_resolve,
        refuse_a_legal_resolve,
        break_required_field,
        wrong_token,
        move_time_past_expiry,
        show_another_fate,
    )
}


@pytest.mark.parametrize("name", OPERATORS)
def test_each_mutation_raises_its_rule_at_the_mutated_record(name: str) -> None:
    """The operator's rule fires at its record, on logs and places Hypothesis picks."""
    operator = OPERATORS[name]

    @settings(max_examples=EXAMPLES)
    @given(seed=st.integers(0, 10_000), sessions=st.integers(1, 3), pick=st.integers(0, 20))
    def check(seed: int, sessions: int, pick: int) -> None:
        log = list(generate(sessions, seed=seed, vouchers_per_session=2, partial=False))
        mutated = operator(log, pick)
        assume(mutated is not None)
        assert mutated is not None
        records, rules, index = mutated
        note("replayable log:\n" + "\n".join(orjson.dumps(r).decode() for r in records))
        v = Validator()
        found = [(i, p.rule_id) for i, r in enumerate(records) for p in v.feed(r, line=i + 1)]
        assert any(i == index and rule in rules for i, rule in found), (name, index, rules, found)

    check()


def test_there_is_one_operator_per_kind_of_break_the_issue_names() -> None:
    """Drop, swap, duplicate, change a status, break a field, wrong token, time, another's fate."""
    assert len(OPERATORS) == 8
