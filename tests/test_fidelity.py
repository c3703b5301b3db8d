"""Correct servers that differ in legitimate ways draw no finding; real breaches still do.

Each server is the sandbox behind layers a correct server may add (``tests/variant_servers.py``),
served by uvicorn on 127.0.0.1 (port picked at run time, stopped by PID), talked to with httpx and
requests over the network and watched by the kit's own middleware and clients.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator

import httpx
import pytest
import requests

from fsm.clients import HTTPXTransport, RequestsAdapter
from fsm.monitor import Captured, Monitor, decoded
from tests.sandbox_flows import simple_payment, two_payments
from tests.variant_servers import serve


def problems(mon: Monitor) -> list[str]:
    """A monitor's errors and warnings so far, as ``rule: message``."""
    return [f"{v.rule_id}: {v.message}" for v in mon.snapshot().violations if v.severity.value != "info"]


@pytest.fixture(scope="module")
def gzipped() -> Iterator[str]:
    """A server that gzips every answer, watched by the kit's ASGI middleware outside the compression."""
    with serve("gzip", "watched") as url:
        yield url


def test_a_server_that_gzips_its_answers_is_judged_on_the_decoded_bodies(gzipped: str) -> None:
    """httpx asks for gzip; its transport and the server's middleware see compressed bytes and decode them."""
    mon = Monitor()
    with httpx.Client(base_url=gzipped, transport=HTTPXTransport(monitor=mon), timeout=10) as http:
        simple_payment(http)
        two_payments(http)
        assert http.get("/api/v1/auth/get-challenge").headers["content-encoding"] == "gzip"
        server = http.get("/_findings").json()
    assert problems(mon) == [] and mon.stats()["exchanges"] >= 20
    assert mon.stats()["bodies_not_checked"] == 0
    assert server == []


def test_requests_decodes_gzip_itself_and_its_adapter_does_not_decode_twice(gzipped: str) -> None:
    """requests hands over the decoded content while the header still says gzip: judged as it is."""
    mon = Monitor()
    with requests.Session() as s:
        s.mount("http://", RequestsAdapter(monitor=mon))
        r = s.get(gzipped + "/api/v1/auth/get-challenge", timeout=10)
        assert r.headers["content-encoding"] == "gzip"
    assert problems(mon) == [] and mon.stats()["bodies_not_checked"] == 0


def test_a_compressed_body_that_cannot_be_decoded_is_not_checked_rather_than_misjudged() -> None:
    """Unknown codings, broken streams and bodies that unpack past the bound are left unchecked."""
    body = b'{"challenge": "' + b"a" * 48 + b'"}'
    assert decoded(gzip.compress(body), "gzip") == body
    assert decoded(zlib.compress(body), "deflate") == body
    raw = zlib.compressobj(wbits=-15)
    assert decoded(raw.compress(body) + raw.flush(), "Deflate") == body  # (raw deflate, as some send it)
    assert decoded(gzip.compress(gzip.compress(body)), "gzip, gzip") == body
    assert decoded(body, "identity") == body
    assert decoded(body, "compress") is None
    assert decoded(gzip.compress(body)[:-9], "gzip") is None
    assert decoded(gzip.compress(b" " * 100_000), "gzip", limit=1000) is None
    captured = Captured("GET", "/api/v1/auth/get-challenge", {}, "", status=200)
    captured.resp_headers = {"content-encoding": "gzip"}
    captured.resp_body = gzip.compress(b" " * 5000)
    assert captured.parts("", limit=1000).resp_unkept
    captured.resp_body = gzip.compress(body)
    assert captured.parts("").resp_body == {"challenge": "a" * 48}
