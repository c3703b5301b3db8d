"""Protocol-correct servers that differ from the sandbox in legitimate ways, served by uvicorn on 127.0.0.1.

Each variant is the sandbox (:mod:`fsm.sandbox`, the reference server) behind plain ASGI layers that
change what a correct server may change: compressed bodies, members the docs do not name. The layers
are chosen by ``FIDELITY_VARIANTS`` (comma-separated names, see :data:`LAYERS`); ``watched`` puts the
kit's own :class:`fsm.middleware.ASGIMiddleware` outermost, where a service would put it, and
``GET /_findings`` answers its findings (errors and warnings, as ``rule: message``) and the count of
exchanges it judged; with ``mounted`` too, the watched app is mounted at ``/gateway`` (Starlette's
``Mount``: its API at ``/gateway/api/v1``). ``fault:NAME`` switches a sandbox fault on (a real breach
under the layers).

:func:`serve` starts one in its own process (port picked at run time, stopped by its PID).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import orjson

from fsm.sandbox.serve import free_port, stop, wait_answering

REPO = Path(__file__).resolve().parents[1]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class Rewrite:
    """Rewrites each JSON answer of the API with ``change(body)`` (its length fixed to match)."""

    def __init__(self, app: App, change: Callable[[Any], Any]) -> None:
        self.app = app
        self.change = change

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        start: Message = {}
        chunks: list[bytes] = []

        async def buffered(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            with contextlib.suppress(orjson.JSONDecodeError):  # (a body that is not JSON: as it is)
                body = orjson.dumps(self.change(orjson.loads(body))) if body else body
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, buffered)


def _with_unknown_members(value: Any) -> Any:
    """A newer server's answer: members the docs do not name, in the payment objects and at the top."""
    if isinstance(value, list):
        return [_with_unknown_members(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _with_unknown_members(v) for k, v in value.items()}
    if "amount" in out and "currency" in out:  # a payment (expectedPayment, suppliedPayment)
        out["decimals"] = 6
        out["quote"] = {"provider": "example", "validUntil": "2026-06-09T12:05:00.000Z"}
    if "address" in out:  # a wallet or a payer
        out["label"] = "main"
    if "id" in out:
        out["links"] = {"self": "/api/v1/..."}
    return out


def _gzip(app: App) -> App:
    from starlette.middleware.gzip import GZipMiddleware

    return GZipMiddleware(app, minimum_size=0)


class SlowReads:
    """Holds each GET answer ``delay`` seconds after the app made it (a slow network, a busy proxy)."""

    def __init__(self, app: App, delay: float = 0.3) -> None:
        self.app = app
        self.delay = delay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        await asyncio.sleep(self.delay)
        for message in held:
            await send(message)


LAYERS: dict[str, Callable[[App], App]] = {
    "gzip": _gzip,  # every answer gzip-compressed (Content-Encoding: gzip), as nginx or a CDN does
    "unknown-members": lambda app: Rewrite(app, _with_unknown_members),
    "slow-reads": SlowReads,
}


class Mounted:
    """The app mounted at ``mount`` as Starlette's ``Mount`` does: ``root_path`` set, ``path`` kept whole.

    ``app`` sees both (the kit's middleware); ``served`` is the app the middleware wraps, which routes
    by its own view of the path (the mount stripped), as a framework's router does.
    """

    def __init__(self, app: App, mount: str) -> None:
        self.app = app
        self.mount = mount

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and path.startswith(self.mount + "/"):
            scope = {**scope, "root_path": scope.get("root_path", "") + self.mount}
        await self.app(scope, receive, send)


class OwnView:
    """Routes an app by the path below its mount (``root_path``): what a framework's router does."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        root = scope.get("root_path", "")
        if scope["type"] == "http" and root and scope["path"].startswith(root):
            scope = {**scope, "path": scope["path"][len(root) :], "root_path": ""}
        await self.app(scope, receive, send)


class _Findings:
    """``GET /_findings``: the watching middleware's errors and warnings so far, and how many it judged."""

    def __init__(self, app: App, watched: Any) -> None:
        self.app = app
        self.watched = watched

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/_findings":
            snapshot = self.watched.monitor.snapshot()
            problems = [
                f"{v.rule_id}: {v.message}" for v in snapshot.violations if v.severity.value != "info"
            ]
            body = orjson.dumps({"findings": problems, "exchanges": snapshot.exchanges})
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


def app() -> App:
    """The variant ``FIDELITY_VARIANTS`` names (uvicorn ``--factory``)."""
    from fsm.middleware import ASGIMiddleware
    from fsm.sandbox import asgi

    names = [n for n in os.environ.get("FIDELITY_VARIANTS", "").split(",") if n]
    faults = [n.removeprefix("fault:") for n in names if n.startswith("fault:")]
    served: App = asgi.app(seed=11, real_clock=True, faults=faults)  # (the monitors stamp the wall clock)
    for name in names:
        if name in LAYERS:
            served = LAYERS[name](served)
    if "watched" in names:
        watched = ASGIMiddleware(OwnView(served), mode="observe")
        served = _Findings(Mounted(watched, "/gateway") if "mounted" in names else watched, watched)
    return served


@contextlib.contextmanager
def serve(*variants: str) -> Iterator[str]:
    """Serve the variant of ``variants`` on a free port until the block ends; yields its URL."""
    port = free_port()
    env = {**os.environ, "FIDELITY_VARIANTS": ",".join(variants), "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-m", "uvicorn", "--factory", "tests.variant_servers:app"]
    args += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_answering(proc, url, 30)  # (the sandbox's own admin path answers under every layer)
        yield url
    finally:
        stop(proc)
