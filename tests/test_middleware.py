"""The middleware in real servers: Starlette and FastAPI under uvicorn, Flask and Django under waitress.

A fake Bleepay (tests/embed_apps.py) replays recorded answers, protocol-correct and protocol-breaking;
httpx clients talk to it over the network.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("httpx", reason="the middleware tests talk to servers with httpx")
import httpx

from fsm import validate_log
from fsm.generate import generate

REPO = Path(__file__).resolve().parents[1]
SESSION = REPO / "examples/session-two-payments.jsonl"
BROKEN = REPO / "examples/broken.jsonl"
NEEDS = {"starlette": ("uvicorn", "starlette"), "fastapi": ("uvicorn", "fastapi"),
         "flask": ("waitress", "flask"), "django": ("waitress", "django")}  # fmt: skip
CLOCK_RULES = {"time.accepted-after-expiry", "entity.incomplete"}  # (depend on the recorded clock, or finish)


def _needs(kind: str) -> None:
    for package in NEEDS[kind]:
        pytest.importorskip(package, reason=f"the {kind} test runs a real {package}")


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _send(client: httpx.Client, record: dict[str, Any]) -> httpx.Response:
    q = record["request"]
    body = json.dumps(q["body"]).encode() if "body" in q else None
    return client.request(q["method"], q["path"], headers=q.get("headers"), content=body)


def _without_times(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _without_times(v, k) for k, v in value.items() if not k.endswith("At")}
    if isinstance(value, list):
        return [_without_times(v) for v in value]
    return value


_FINGERPRINT = re.compile(r"tok:[0-9a-f]{6}")
_OWN = {"entity.incomplete"}  # (said when the run finishes: the monitor has not)


def _seen(found: list[dict[str, Any]] | list[list[Any]]) -> Counter[tuple[Any, ...]]:
    """(rule, severity, entity, message) of each finding; fingerprints of tokens made alike.

    The exchange log holds stand-ins for the tokens (D29), which messages show by their own
    fingerprints.
    """
    rows = [
        [f["rule"], f["severity"], f.get("entity"), f["message"]] if isinstance(f, dict) else f for f in found
    ]
    return Counter((r, s, e, _FINGERPRINT.sub("tok:*", m)) for r, s, e, m in rows if r not in _OWN)


def _revalidated(out: Path) -> Counter[tuple[Any, ...]]:
    """voucher-fsm validate's findings on the exchange log the monitor wrote."""
    report = validate_log(out / "exchanges.jsonl")
    return _seen([[v.rule_id, v.severity.value, v.entity, v.message] for v in report.violations])


@pytest.mark.parametrize("kind", ["starlette", "fastapi", "flask", "django"])
def test_observe_passes_answers_unchanged_and_reports_what_validate_reports(
    kind: str, tmp_path: Path
) -> None:
    _needs(kind)
    from tests.embed_servers import serve

    records = _records(SESSION) + _records(BROKEN)
    with (
        serve(kind, tmp_path, [SESSION, BROKEN], limit=4096) as server,
        httpx.Client(base_url=server.url) as c,
    ):
        for r in records:
            answer = _send(c, r)
            assert answer.status_code == r["response"]["status"]
            assert _without_times(answer.json()) == _without_times(r["response"].get("body"))
        if (
            kind != "django"
        ):  # a streamed answer passes chunk by chunk: the first arrives before the rest exists
            with c.stream("GET", "/api/v1/vouchers", params={"stream": "200"}) as streamed:
                chunks = streamed.iter_raw()
                first = next(chunks)
                c.post("/_release")
                whole = first + b"".join(chunks)
            assert len(json.loads(whole)) == 200 and len(whole) > 4096
        state = server.state()
    assert state["stats"]["internal_errors"] == 0
    assert state["stats"]["exchanges"] == len(records) + (kind != "django")
    assert state["stats"]["bodies_not_checked"] == (kind != "django")
    # the findings the sinks got are the findings voucher-fsm validate gives on the recorded exchanges
    assert _seen(server.findings()) == _seen(state["findings"]) == _revalidated(tmp_path)
    # and every rule the broken example breaks, but those that depend on its recorded clock
    expected = {v.rule_id for v in validate_log(BROKEN).violations} - CLOCK_RULES
    assert expected <= set(state["by_rule"]), expected - set(state["by_rule"])
    assert "machine.illegal-transition" in expected


@pytest.mark.parametrize("kind", ["starlette", "flask"])
def test_enforce_answers_a_second_redeem_with_the_predicted_refusal_before_the_app_sees_it(
    kind: str, tmp_path: Path
) -> None:
    _needs(kind)
    from tests.embed_servers import serve

    records = _records(SESSION)
    first_redeem = next(i for i, r in enumerate(records) if r["request"]["path"].endswith("/redeem-voucher"))
    with serve(kind, tmp_path, [SESSION], mode="enforce") as server, httpx.Client(base_url=server.url) as c:
        for r in records[: first_redeem + 1]:
            assert _send(c, r).status_code == r["response"]["status"]
        calls = server.state()["calls"]
        again = _send(c, records[first_redeem])
        assert again.status_code == 400  # (the status operations.json gives already_redeemed)
        assert again.json()["code"] == "already_redeemed"
        assert "machine.illegal-transition" in again.json()["message"]
        assert server.state()["calls"] == calls  # answered by the middleware: the app never saw it
        for r in records[first_redeem + 1 :]:  # legal calls go through, answered by the app
            assert _send(c, r).status_code == r["response"]["status"]
        state = server.state()
    assert state["stats"]["enforced"] == 1
    assert state["stats"]["internal_errors"] == 0
    assert not [f for f in state["findings"] if f[1] == "error"]
    assert _seen(state["findings"]) == _revalidated(tmp_path)


def _flows(sessions: int) -> tuple[list[list[dict[str, Any]]], int]:
    """Independent flows (one context each) with a protocol-breaking second redeem of each voucher
    redeemed, and how many of those there are."""
    flows: list[list[dict[str, Any]]] = []
    again = 0
    for r in generate(sessions, seed=7, vouchers_per_session=2, partial=False, tour=False):
        if r["request"]["path"].endswith("/sign-in") and r["request"]["body"].get("type") == "mobile-device":
            flows.append([])
        flows[-1].append(r)
        redeemed = r["request"]["path"].endswith("/redeem-voucher") and r["response"]["status"] == 200
        if redeemed and not any(x is not r and x["request"] == r["request"] for x in flows[-1]):
            flows[-1].append(copy.deepcopy(r))  # replayed as accepted: an illegal transition
            again += 1
    return flows, again


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _by_flow(flows: list[list[dict[str, Any]]]) -> Counter[tuple[Any, ...]]:
    """(rule, severity, entity) of every flow judged alone, one after the other, in one validator."""
    from fsm import Validator

    v = Validator()
    found = [x for flow in flows for r in flow for x in v.feed(r)]
    return Counter((x.rule_id, x.severity.value, x.entity) for x in found if x.rule_id not in CLOCK_RULES)


@pytest.mark.parametrize("kind", ["flask", "starlette"])
def test_concurrent_threads_or_tasks_get_the_findings_of_one_thread_feeding_the_same_order(
    kind: str, tmp_path: Path
) -> None:
    _needs(kind)
    from tests.embed_servers import serve

    flows, again = _flows(8)
    log = _write(tmp_path / "flows.jsonl", [r for flow in flows for r in flow])
    with serve(kind, tmp_path / "out", [log]) as server:
        if kind == "flask":  # real threads in the client, and waitress's 8 worker threads

            def run(flow: list[dict[str, Any]]) -> None:
                with httpx.Client(base_url=server.url) as c:
                    for r in flow:
                        assert _send(c, r).status_code == r["response"]["status"]

            threads = [threading.Thread(target=run, args=(flow,)) for flow in flows]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
        else:  # asyncio tasks, one per flow, on uvicorn's event loop

            async def run_all() -> None:
                async with httpx.AsyncClient(base_url=server.url) as c:

                    async def one(flow: list[dict[str, Any]]) -> None:
                        for r in flow:
                            q = r["request"]
                            body = json.dumps(q["body"]).encode() if "body" in q else None
                            answer = await c.request(
                                q["method"], q["path"], headers=q.get("headers"), content=body
                            )
                            assert answer.status_code == r["response"]["status"]

                    await asyncio.gather(*(one(flow) for flow in flows))

            asyncio.run(run_all())
        state = server.state()
    assert state["stats"]["exchanges"] == sum(map(len, flows))
    assert state["stats"]["internal_errors"] == 0
    # the same findings as one thread feeding the exchanges in the order the monitor received them
    assert _seen(state["findings"]) == _revalidated(tmp_path / "out")
    # and as judging each flow alone: contexts fed at once never interfere
    concurrent = Counter((f[0], f[1], f[2]) for f in state["findings"] if f[0] not in CLOCK_RULES)
    assert concurrent == _by_flow(flows)
    assert concurrent[("machine.illegal-transition", "error", None)] == 0
    assert again >= len(flows)  # (each flow redeems at least once)
    assert sum(n for (rule, _, _), n in concurrent.items() if rule == "machine.illegal-transition") == again


def test_captured_header_dicts_are_the_same_whether_a_name_is_met_first_or_again() -> None:
    """A header name is decoded once and remembered (a bounded cache): the same dicts as decoding each time.

    ASGI names in any case, repeated names (the last wins), a name that is no hashable bytes
    (a bytearray), names past the cache's bound; WSGI ``HTTP_*`` keys (a bare ``HTTP_`` too) and
    keys that are not headers.
    """
    from fsm import middleware

    def asgi_plain(pairs: list[tuple[Any, bytes]]) -> dict[str, str]:
        return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in pairs}

    def wsgi_plain(environ: dict[str, Any]) -> dict[str, str]:
        return {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}

    pairs: list[tuple[Any, bytes]] = [
        (b"Content-Type", b"application/json"),
        (b"authorization", b"Bearer t\xe9"),
        (b"X-Twice", b"1"),
        (b"x-twice", b"2"),
        (bytearray(b"X-Array"), b"a"),
    ]
    many = [(f"x-name-{n}".encode(), b"v") for n in range(middleware._NAMES_KEPT + 5)]
    environ = {"HTTP_X_ONE": "1", "HTTP_": "bare", "CONTENT_TYPE": "text/plain", "wsgi.input": None}
    for _ in range(2):  # first met, then remembered
        assert middleware._headers(pairs) == asgi_plain(pairs)
        assert middleware._headers(many) == asgi_plain(many)
        assert middleware._environ_headers(environ) == wsgi_plain(environ)
    assert len(middleware._NAMES) <= middleware._NAMES_KEPT
