"""A fake Bleepay for the embedding tests: real Starlette, FastAPI, Flask and Django apps that replay
recorded answers (protocol-correct or protocol-breaking), wrapped in voucher-fsm's middleware.

Each app is made in its own server process from the environment:

- ``FAKE_BLEEPAY_LOG``: JSONL files whose answers are replayed (``os.pathsep``-separated); a request
  gets the next recorded answer for its method, path, body and Authorization header (then for its
  method and path), with every ``...At`` time moved by (now - the first record's time);
- ``FAKE_BLEEPAY_OUT``: a folder for ``findings.jsonl`` and ``exchanges.jsonl``;
- ``FAKE_BLEEPAY_MODE``: ``observe`` or ``enforce``; ``FAKE_BLEEPAY_LIMIT``: the body bound.

Outside the API prefix: ``GET /_monitor`` answers the monitor's ``stats()`` and ``snapshot()`` and
how many calls reached the app; ``POST /_release`` lets a streamed answer go on; ``POST /_reset``
(Starlette and FastAPI) makes every recorded answer ready again. ``GET
/api/v1/vouchers?stream=N`` streams a list of N vouchers, one chunk each, pausing after the first
until released (a middleware that buffered the answer would never deliver the first chunk).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from fsm.monitor import Monitor
from fsm.sinks import ExchangeLog, JsonlFindings

try:  # (FastAPI reads the handlers' annotations: Request must be a name of this module)
    from starlette.requests import Request
except ImportError:  # pragma: no cover - the Starlette tests skip
    Request = Any  # type: ignore[misc,assignment]

__all__ = ["Replay", "django_app", "fastapi_app", "flask_app", "starlette_app"]


def _moved(value: Any, delta: timedelta, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _moved(v, delta, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_moved(v, delta) for v in value]
    if isinstance(value, str) and key.endswith("At"):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
        return (when + delta).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return value


def moved(records: list[dict[str, Any]], now: datetime | None = None) -> list[dict[str, Any]]:
    """The records with their times, and every ``...At`` time of their bodies, moved to start now."""
    first = next((r["time"] for r in records if r.get("time")), None)
    start = datetime.fromisoformat(first.replace("Z", "+00:00")) if first else datetime.now(UTC)
    delta = (now or datetime.now(UTC)) - start
    out = []
    for r in records:
        m = _moved(r, delta)
        if isinstance(r.get("time"), str):
            m["time"] = _moved({"timeAt": r["time"]}, delta)["timeAt"]
        out.append(m)
    return out


class Replay:
    """Recorded answers, handed out in order per request (thread-safe)."""

    def __init__(self, records: list[dict[str, Any]], now: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self.calls = 0
        self._records = records
        self.reset(now)

    def reset(self, now: datetime | None = None) -> None:
        """Every recorded answer ready to be given again."""
        exact: dict[tuple[Any, ...], deque[tuple[int, bytes]]] = {}
        loose: dict[tuple[str, str], deque[tuple[int, bytes]]] = {}
        for r, now_r in zip(self._records, moved(self._records, now), strict=True):
            req, resp = r["request"], now_r["response"]  # (asked as recorded, answered with times moved)
            answer = (resp["status"], orjson.dumps(resp.get("body")))
            key = self.key(req["method"], req["path"], req.get("body"), req.get("headers"))
            exact.setdefault(key, deque()).append(answer)
            loose.setdefault((req["method"], req["path"]), deque()).append(answer)
        with self._lock:
            self._exact, self._loose = exact, loose

    @staticmethod
    def key(method: str, path: str, body: Any, headers: Any) -> tuple[Any, ...]:
        auth = {k.lower(): v for k, v in (headers or {}).items()}.get("authorization")
        return (method, path, orjson.dumps(body, option=orjson.OPT_SORT_KEYS), auth)

    @classmethod
    def from_files(cls, files: list[str]) -> Replay:
        records = [
            orjson.loads(line) for f in files for line in Path(f).read_bytes().splitlines() if line.strip()
        ]
        return cls(records)

    def answer(self, method: str, path: str, body: bytes, headers: Any) -> tuple[int, bytes]:
        try:
            parsed = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            parsed = None
        with self._lock:
            self.calls += 1
            exact = self._exact.get(self.key(method, path, parsed, headers))
            if exact:
                answer = exact.popleft()
                loose = self._loose[(method, path)]
                if answer in loose:
                    loose.remove(answer)
                return answer
            loose = self._loose.get((method, path))
            if loose:
                return loose.popleft()
        return 404, b'{"code":"not_found"}'


def _setup() -> tuple[Replay, Monitor]:
    replay = Replay.from_files(os.environ["FAKE_BLEEPAY_LOG"].split(os.pathsep))
    out = Path(os.environ["FAKE_BLEEPAY_OUT"])
    monitor = Monitor(
        mode=os.environ.get("FAKE_BLEEPAY_MODE", "observe"),
        sinks=[JsonlFindings(out / "findings.jsonl")],
        body_limit=int(os.environ.get("FAKE_BLEEPAY_LIMIT", str(1 << 20))),
    )
    ExchangeLog(out / "exchanges.jsonl", monitor)
    return replay, monitor


def _state(replay: Replay, monitor: Monitor) -> bytes:
    snap = monitor.snapshot()
    return orjson.dumps(
        {
            "stats": monitor.stats(),
            "calls": replay.calls,
            "by_rule": snap.by_rule,
            "findings": [[v.rule_id, v.severity.value, v.entity, v.message] for v in snap.violations],
        }
    )


def _chunks(n: int) -> list[bytes]:
    items = [
        orjson.dumps({"id": f"vch_{i:06d}", "code": f"C{i:05d}", "status": "RESERVED"}) for i in range(n)
    ]
    return [b"[" + items[0], *(b"," + item for item in items[1:]), b"]"]


def starlette_app(fastapi: bool = False) -> Any:
    """The fake Bleepay as a Starlette app (``fastapi=True``: a FastAPI app) in ASGIMiddleware."""
    from starlette.responses import Response, StreamingResponse

    from fsm.middleware import ASGIMiddleware

    replay, monitor = _setup()
    released = asyncio.Event()

    async def api(request: Request) -> Response:
        body = await request.body()
        if (
            request.method == "GET"
            and request.url.path == "/api/v1/vouchers"
            and "stream" in request.query_params
        ):
            chunks = _chunks(int(request.query_params["stream"]))

            async def stream() -> Any:
                yield chunks[0]
                await asyncio.wait_for(released.wait(), 20)
                for chunk in chunks[1:]:
                    yield chunk

            return StreamingResponse(stream(), media_type="application/json")
        status, payload = replay.answer(request.method, request.url.path, body, request.headers)
        return Response(payload, status, media_type="application/json")

    async def state(request: Request) -> Response:
        return Response(_state(replay, monitor), media_type="application/json")

    async def release(request: Request) -> Response:
        released.set()
        return Response(b"{}", media_type="application/json")

    async def reset(request: Request) -> Response:
        replay.reset()
        return Response(b"{}", media_type="application/json")

    if fastapi:
        from fastapi import FastAPI

        app: Any = FastAPI()
        app.add_api_route("/_monitor", state, methods=["GET"])
        app.add_api_route("/_release", release, methods=["POST"])
        app.add_api_route("/_reset", reset, methods=["POST"])
        app.add_api_route("/{path:path}", api, methods=["GET", "POST"])
        app.add_middleware(ASGIMiddleware, monitor=monitor)  # (the FastAPI way)
        return app
    from starlette.applications import Starlette
    from starlette.routing import Route

    inner = Starlette(
        routes=[
            Route("/_monitor", state),
            Route("/_release", release, methods=["POST"]),
            Route("/_reset", reset, methods=["POST"]),
            Route("/{path:path}", api, methods=["GET", "POST"]),
        ]
    )
    return ASGIMiddleware(inner, monitor=monitor)


def fastapi_app() -> Any:
    """The fake Bleepay as a FastAPI app (ASGIMiddleware added with ``add_middleware``)."""
    return starlette_app(fastapi=True)


def _wsgi_stream(n: int, released: threading.Event) -> Any:
    chunks = _chunks(n)
    yield chunks[0]
    released.wait(20)
    yield from chunks[1:]


def flask_app() -> Any:
    """The fake Bleepay as a Flask app, its ``wsgi_app`` in WSGIMiddleware."""
    from flask import Flask, Response, request

    from fsm.middleware import WSGIMiddleware

    replay, monitor = _setup()
    released = threading.Event()
    app = Flask("fake_bleepay")

    @app.get("/_monitor")
    def state() -> Response:
        return Response(_state(replay, monitor), mimetype="application/json")

    @app.post("/_release")
    def release() -> Response:
        released.set()
        return Response(b"{}", mimetype="application/json")

    @app.route("/<path:path>", methods=["GET", "POST"])
    def api(path: str) -> Response:
        if request.method == "GET" and request.path == "/api/v1/vouchers" and "stream" in request.args:
            return Response(_wsgi_stream(int(request.args["stream"]), released), mimetype="application/json")
        status, payload = replay.answer(request.method, request.path, request.get_data(), request.headers)
        return Response(payload, status=status, mimetype="application/json")

    app.wsgi_app = WSGIMiddleware(app.wsgi_app, monitor=monitor)  # type: ignore[method-assign]
    return app


def django_app() -> Any:
    """The fake Bleepay as a Django project's WSGI application in WSGIMiddleware."""
    import django
    from django.conf import settings
    from django.urls import re_path

    replay, monitor = _setup()

    def api(request: Any) -> Any:
        from django.http import HttpResponse

        status, payload = replay.answer(request.method, request.path, request.body, request.headers)
        return HttpResponse(payload, status=status, content_type="application/json")

    def state(request: Any) -> Any:
        from django.http import HttpResponse

        return HttpResponse(_state(replay, monitor), content_type="application/json")

    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["127.0.0.1"],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
        SECRET_KEY="fake-bleepay-tests-only",
        USE_TZ=True,
    )
    global urlpatterns
    urlpatterns = [re_path(r"^_monitor$", state), re_path(r"^.*$", api)]
    django.setup()
    from django.core.wsgi import get_wsgi_application

    from fsm.middleware import WSGIMiddleware

    return WSGIMiddleware(get_wsgi_application(), monitor=monitor)


urlpatterns: list[Any] = []
