"""Validating clients over the network: httpx (sync and async transports) and requests (an adapter),
talking to the fake Bleepay under uvicorn; a client sees its own party's calls only (D28)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("httpx", reason="the client tests need httpx")
pytest.importorskip("requests", reason="the client tests need requests")
pytest.importorskip("uvicorn", reason="the client tests talk to a real uvicorn server")
pytest.importorskip("starlette", reason="the fake Bleepay is a Starlette app")
import httpx
import requests

from fsm.clients import AsyncHTTPXTransport, HTTPXTransport, ProtocolViolation, RequestsAdapter
from fsm.monitor import Monitor

REPO = Path(__file__).resolve().parents[1]
SESSION = REPO / "examples/session-two-payments.jsonl"
BROKEN = REPO / "examples/broken.jsonl"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from tests.embed_servers import serve

    with serve("starlette", tmp_path_factory.mktemp("bleepay"), [SESSION, BROKEN]) as s:
        yield s


@pytest.fixture
def fresh(server: Any) -> Any:
    """The server with every recorded answer ready again."""
    httpx.post(f"{server.url}/_reset", timeout=10).raise_for_status()
    return server


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _payee_token(records: list[dict[str, Any]]) -> str:
    sign_in = next(r for r in records if r["request"].get("body", {}).get("type") == "resource")
    return str(sign_in["response"]["body"]["authorization"]["token"])


def _is_payees(record: dict[str, Any], token: str) -> bool:
    body = record["request"].get("body")
    return (isinstance(body, dict) and body.get("type") == "resource") or token in record["request"].get(
        "headers", {}
    ).get("authorization", "")


def _args(record: dict[str, Any]) -> dict[str, Any]:
    q = record["request"]
    body = json.dumps(q["body"]).encode() if "body" in q else None
    return {"method": q["method"], "url": q["path"], "headers": q.get("headers"), "content": body}


def _payee_run(server: Any, transport: httpx.BaseTransport) -> None:
    """The payee's calls through ``transport``; the payer's through a plain client (unseen)."""
    records = _records(SESSION)
    token = _payee_token(records)
    with (
        httpx.Client(base_url=server.url, transport=transport) as payee,
        httpx.Client(base_url=server.url) as payer,
    ):
        for r in records:
            answer = (payee if _is_payees(r, token) else payer).request(**_args(r))
            assert answer.status_code == r["response"]["status"]


def _errors(monitor: Monitor) -> list[str]:
    return [v.rule_id for v in monitor.snapshot().violations if v.severity.value == "error"]


def test_an_observing_httpx_client_reports_the_broken_servers_answers(fresh: Any) -> None:
    transport = HTTPXTransport()
    with httpx.Client(base_url=fresh.url, transport=transport) as client:
        for r in _records(BROKEN):
            assert client.request(**_args(r)).status_code == r["response"]["status"]
    snap = transport.monitor.snapshot()
    assert snap.exchanges == len(_records(BROKEN))
    assert {"machine.illegal-transition", "observe.independence", "actor.wrong-role"} <= set(snap.by_rule)


def test_a_payee_client_with_the_payee_view_draws_no_false_error_from_the_payers_unseen_calls(
    fresh: Any,
) -> None:
    seen_as_payee = HTTPXTransport(view="payee")
    _payee_run(fresh, seen_as_payee)
    assert _errors(seen_as_payee.monitor) == []
    assert "observe.unseen-call" in seen_as_payee.monitor.snapshot().by_rule
    httpx.post(f"{fresh.url}/_reset", timeout=10)
    seen_as_all = HTTPXTransport()  # the same calls judged as if they were all the traffic
    _payee_run(fresh, seen_as_all)
    assert "observe.status-mismatch" in _errors(seen_as_all.monitor)


def test_an_enforcing_httpx_client_raises_before_sending_a_second_redeem(fresh: Any) -> None:
    records = _records(SESSION)
    token = _payee_token(records)
    first = next(i for i, r in enumerate(records) if r["request"]["path"].endswith("/redeem-voucher"))
    transport = HTTPXTransport(mode="enforce", view="payee")
    with (
        httpx.Client(base_url=fresh.url, transport=transport) as payee,
        httpx.Client(base_url=fresh.url) as payer,
    ):
        for r in records[: first + 1]:
            (payee if _is_payees(r, token) else payer).request(**_args(r))
        calls = fresh.state()["calls"]
        with pytest.raises(ProtocolViolation, match="already_redeemed") as raised:
            payee.request(**_args(records[first]))
        assert fresh.state()["calls"] == calls  # never sent
    assert raised.value.prediction.operation == "redeem-voucher"
    assert raised.value.prediction.code == "already_redeemed"
    assert transport.monitor.stats()["enforced"] == 1


def test_an_async_httpx_client_observes_and_enforces(fresh: Any) -> None:
    records = _records(SESSION)
    first = next(i for i, r in enumerate(records) if r["request"]["path"].endswith("/redeem-voucher"))
    transport = AsyncHTTPXTransport(mode="enforce")

    async def run() -> None:
        async with httpx.AsyncClient(base_url=fresh.url, transport=transport) as client:
            for r in records[: first + 1]:
                assert (await client.request(**_args(r))).status_code == r["response"]["status"]
            with pytest.raises(ProtocolViolation):
                await client.request(**_args(records[first]))

    asyncio.run(run())
    assert transport.monitor.stats()["exchanges"] == first + 1
    assert _errors(transport.monitor) == []


def test_a_requests_session_with_the_adapter_observes_and_enforces(fresh: Any) -> None:
    records = _records(SESSION)
    token = _payee_token(records)
    first = next(i for i, r in enumerate(records) if r["request"]["path"].endswith("/redeem-voucher"))
    adapter = RequestsAdapter(mode="enforce", view="payee")
    with requests.Session() as payee, requests.Session() as payer:
        payee.mount("http://", adapter)
        for r in records[: first + 1]:
            a = _args(r)
            who = payee if _is_payees(r, token) else payer
            answer = who.request(a["method"], fresh.url + a["url"], headers=a["headers"], data=a["content"])
            assert answer.status_code == r["response"]["status"]
        a = _args(records[first])
        with pytest.raises(ProtocolViolation, match="redeem-voucher"):
            payee.request(a["method"], fresh.url + a["url"], headers=a["headers"], data=a["content"])
    stats = adapter.monitor.stats()
    assert stats["exchanges"] == sum(_is_payees(r, token) for r in records[: first + 1])
    assert stats["enforced"] == 1
    assert _errors(adapter.monitor) == []
