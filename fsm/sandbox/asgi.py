"""The sandbox as an ASGI application: the API under the spec's prefix, CORS, and ``/_sandbox/`` control.

Plain ASGI (no framework): uvicorn serves it (``voucher-fsm serve``). Every answer is JSON; nothing a
client sends gets a 500 or a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

import orjson

from fsm.errors import FsmError
from fsm.sandbox.core import FAULTS, Sandbox, _iso

__all__ = ["SandboxApp", "app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

ADMIN = "/_sandbox"
_MOST_BODY = 1 << 20  # bytes: a larger request body is refused
_KEPT_HEADERS = ("authorization", "content-type")  # the request headers an exchange record keeps
_READ = {  # the request headers the sandbox reads, by their names as uvicorn gives them (lower case)
    k.encode(): k for k in ("authorization", "content-type", "origin", "access-control-request-method")
}
_CORS_METHODS = b"GET, POST, OPTIONS"
_CORS_HEADERS = b"authorization, content-type"
_JSON = (b"content-type", b"application/json")


class SandboxApp:
    """The ASGI callable; ``.sandbox`` is its :class:`~fsm.sandbox.core.Sandbox` (state, clock, faults)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.preflights = 0  # CORS preflights answered (transport, D22: never recorded)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            return
        headers = {}  # only the headers the sandbox reads
        for k, v in scope["headers"]:
            name = _READ.get(k)
            if name is not None:
                headers[name] = v.decode("latin-1")
        origin = headers.get("origin")
        method = scope["method"]
        path = scope["path"]
        if method == "OPTIONS" and "access-control-request-method" in headers:
            self.preflights += 1
            await _send(
                send, 204, b"", [*_cors(origin or "*"), (b"access-control-max-age", b"600")], preflight=True
            )
            return
        raw, too_big = await _body(receive)
        try:
            if path == ADMIN or path.startswith(ADMIN + "/"):
                status, out, extra, ctype = self._admin(method, path[len(ADMIN) :], raw)
            elif too_big:
                status, out, extra, ctype = 400, _err("validation_failed", "the body is over 1 MB"), {}, None
            else:
                qs = scope["query_string"]
                query = dict(parse_qsl(qs.decode("latin-1"), keep_blank_values=True)) if qs else {}
                kept = {k: headers[k] for k in _KEPT_HEADERS if k in headers}
                status, out, extra = self.sandbox.handle(method, path, query, kept, raw)
                ctype = None
        except Exception as exc:  # a bug of the sandbox's: said in one line, never a traceback
            print(f"voucher-fsm sandbox: {type(exc).__name__} answering {method} {path}", file=sys.stderr)
            status, out, extra, ctype = (
                500,
                _err("unexpected", "the sandbox failed on this request"),
                {},
                None,
            )
        body = out if isinstance(out, bytes) else orjson.dumps(out) if out is not None else b""
        head = _cors(origin) if origin else []  # (a browser sends Origin; other clients need no CORS)
        if extra:
            head += [(k.encode(), v.encode()) for k, v in extra.items()]
        await _send(send, status, body, head, ctype=ctype)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.sandbox.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ------------------------------------------------------------------ admin
    def _admin(self, method: str, rest: str, raw: bytes) -> tuple[int, Any, dict[str, str], bytes | None]:
        sb = self.sandbox
        try:
            args = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            return 400, _err("validation_failed", "the body is not JSON"), {}, None
        if not isinstance(args, dict):
            return 400, _err("validation_failed", "the body must be a JSON object"), {}, None
        parts = [unquote(p) for p in rest.strip("/").split("/")] if rest.strip("/") else []
        try:
            if method == "GET" and not parts:
                return 200, self._summary(), {}, None
            if parts[:1] == ["entities"] and len(parts) == 3 and method == "GET":
                found = sb.inspect(parts[1], parts[2])
                if found is None:
                    return 404, _err("not_found", f"no {parts[1]} {parts[2]}"), {}, None
                return 200, found, {}, None
            if parts == ["reset"] and method == "POST":
                context = args.get("context")
                if not sb.reset(context if isinstance(context, str) else None):
                    return 404, _err("not_found", f"no context {context}"), {}, None
                return 200, self._summary(), {}, None
            if parts == ["clock"]:
                if method == "POST":
                    if "advance" in args:
                        sb.clock.advance(float(args["advance"]))
                    elif "set" in args:
                        sb.clock.set(datetime.fromisoformat(str(args["set"]).replace("Z", "+00:00")))
                    else:
                        return (
                            400,
                            _err("validation_failed", 'give {"advance": seconds} or {"set": time}'),
                            {},
                            None,
                        )
                return 200, {"now": _iso(sb.clock.peek()), "real": sb.clock.real}, {}, None
            if parts == ["faults"]:
                if method == "POST":
                    sb.set_faults(on=list(args.get("on", [])), off=list(args.get("off", [])))
                return 200, sb.faults_state(), {}, None
            if parts == ["recording"] and method == "GET":
                if sb.recorder is None:
                    return (
                        404,
                        _err("not_found", "the sandbox is not recording (start it with --record FILE)"),
                        {},
                        None,
                    )
                ctype = b"application/har+json" if sb.recorder.har else b"application/x-ndjson"
                return 200, sb.recorder.content(), {}, ctype
        except (FsmError, ValueError, TypeError, OverflowError) as exc:
            return 400, _err("validation_failed", str(exc)), {}, None
        return 404, _err("not_found", f"no admin call {method} {ADMIN}{rest}"), {}, None

    def _summary(self) -> dict[str, Any]:
        sb = self.sandbox
        return {
            "exchanges": sb.exchanges,
            "preflights": self.preflights,
            "contexts": len(sb.contexts),
            "clock": _iso(sb.clock.peek()),
            "faults": sorted(sb.faults),
            "known_faults": sorted(FAULTS),
            "recording": str(sb.recorder.path) if sb.recorder is not None else None,
            "self_findings": sb.self_findings,
        }


def app(
    *,
    seed: int = 0,
    record: str | None = None,
    faults: tuple[str, ...] | list[str] = (),
    real_clock: bool = False,
    keep_secrets: bool = False,
) -> SandboxApp:
    """A stateful Bleepay sandbox as an ASGI app (serve it with uvicorn).

    Arguments as :class:`fsm.sandbox.Sandbox`: ``seed`` fixes ids, codes and tokens; ``record`` a
    JSONL (or ``.har``) file for the served traffic, secrets fingerprinted; ``faults`` names of
    deliberate bugs switched on; ``real_clock`` the wall clock instead of the fixed one;
    ``keep_secrets`` records tokens and passwords as they were (D29: only on purpose).
    """
    return SandboxApp(
        Sandbox(seed=seed, faults=faults, record=record, real_clock=real_clock, keep_secrets=keep_secrets)
    )


def _err(code: str, message: str) -> dict[str, str]:
    return {"code": code, "message": message}


def _cors(origin: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-allow-methods", _CORS_METHODS),
        (b"access-control-allow-headers", _CORS_HEADERS),
        (b"access-control-expose-headers", b"x-sandbox-fault"),
        (b"vary", b"origin"),
    ]


async def _body(receive: Receive) -> tuple[bytes, bool]:
    message = await receive()
    if message["type"] != "http.request":
        return b"", False
    chunk = message.get("body", b"")
    if not message.get("more_body", False):  # (the whole body in one message: most requests)
        return (chunk, False) if len(chunk) <= _MOST_BODY else (b"", True)
    return await _more_body(receive, chunk)


async def _more_body(receive: Receive, first: bytes) -> tuple[bytes, bool]:
    chunks: list[bytes] = [first] if len(first) <= _MOST_BODY else []
    size = len(first)
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"", False
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= _MOST_BODY:
            chunks.append(chunk)
        if not message.get("more_body", False):
            return (b"".join(chunks), False) if size <= _MOST_BODY else (b"", True)


async def _send(
    send: Send,
    status: int,
    body: bytes,
    headers: list[tuple[bytes, bytes]],
    *,
    ctype: bytes | None = None,
    preflight: bool = False,
) -> None:
    head = headers if preflight else [(b"content-type", ctype or _JSON[1]), *headers]
    head.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})
