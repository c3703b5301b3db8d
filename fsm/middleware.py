"""Server-side embedding: plain ASGI and WSGI middleware around any app (Starlette, FastAPI, Django, Flask).

``observe`` never changes the request or the response: each finished exchange is fed to a
long-lived :class:`fsm.monitor.Monitor` and its findings go to the sinks. ``enforce`` also answers,
before the app sees it, a request the model says must be refused, with the status and error envelope
the spec predicts; a response already sent is never taken back, only reported.

Request bodies are read once and handed on unchanged; response bodies pass through chunk by chunk
(a copy is kept up to ``body_limit``; past it the body is reported as not checked). An error inside
the kit never breaks a request (fail open: counted, logged once with its traceback).
"""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any

from fsm.monitor import Captured, Monitor, now_iso

__all__ = ["ASGIMiddleware", "WSGIMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _Body:
    """A body copied as it passes, up to a bound; None once it went past it (not checked)."""

    __slots__ = ("chunks", "limit", "size")

    def __init__(self, limit: int) -> None:
        self.chunks: list[bytes] | None = []
        self.limit = limit
        self.size = 0

    def add(self, chunk: bytes) -> None:
        if self.chunks is None or not chunk:
            return
        self.size += len(chunk)
        if self.size > self.limit:
            self.chunks = None
        else:
            self.chunks.append(chunk)

    def value(self) -> bytes | None:
        return None if self.chunks is None else b"".join(self.chunks)


class ASGIMiddleware:
    """ASGI middleware (not Starlette's ``BaseHTTPMiddleware``): ``ASGIMiddleware(app, mode="observe")``.

    Keyword arguments are :class:`fsm.monitor.Monitor`'s (``mode``, ``modes``, ``sinks``,
    ``config``, ``severity``, ``view``, ``api_prefix``, ``skip_paths``, ``skip_operations``,
    ``body_limit``), or pass ``monitor=`` to share one monitor between apps. ``self.monitor`` has
    ``snapshot()`` and ``stats()``.
    """

    def __init__(self, app: ASGIApp, *, monitor: Monitor | None = None, **settings: Any) -> None:
        self.app = app
        self.monitor = Monitor.given(monitor, settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        mon = self.monitor
        try:
            path = mon.app_path(scope.get("path", ""), scope.get("root_path", ""))
            wanted = mon.wants(path)
        except Exception:
            mon.failed("asgi scope")
            wanted = False
        if not wanted:
            await self.app(scope, receive, send)
            return
        enforcing = mon.enforcing
        try:
            query = scope.get("query_string", b"")
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            captured = Captured(
                scope["method"],
                path + "?" + query.decode("latin-1") if query else path,
                headers,
                now_iso() if enforcing else "",  # (stamped again when fed)
            )
        except Exception:
            mon.failed("asgi request")
            await self.app(scope, receive, send)
            return
        limit = mon.body_limit
        request = _Body(limit)
        response = _Body(limit)
        # the request body was read to its end (by us or the app); a request that declares no body
        # (no Content-Length, or 0, and no Transfer-Encoding: RFC 9112 6.3) has it whole already
        complete = "transfer-encoding" not in headers and headers.get("content-length", "0").strip() in (
            "",
            "0",
        )
        pending: list[Message] = []

        if enforcing:  # read the body first (up to the bound), then hand the same messages on
            try:
                while True:
                    message = await receive()
                    pending.append(message)
                    if message["type"] != "http.request":
                        break
                    request.add(message.get("body", b""))
                    if not message.get("more_body", False):
                        complete = True
                        break
                    if request.chunks is None:
                        break  # past the bound: the rest streams to the app unread
                refused = (
                    mon.refusal(
                        captured.method, captured.path, captured.headers, request.value(), captured.time
                    )
                    if complete
                    else None
                )
            except Exception:
                mon.failed("asgi enforce")
                refused = None
            if refused is not None:
                answer = mon.refuse(refused)
                await send(
                    {
                        "type": "http.response.start",
                        "status": answer.status,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(answer.body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": answer.body})
                captured.answered_by(answer, request.value())
                mon.feed(captured)
                return

        async def receive_wrapper() -> Message:
            nonlocal complete
            if pending:
                return pending.pop(0)
            message = await receive()
            if message["type"] == "http.request":
                request.add(message.get("body", b""))
                if not message.get("more_body", False):
                    complete = True
            return message

        async def send_wrapper(message: Message) -> None:
            try:
                kind = message["type"]
                if kind == "http.response.start":
                    captured.status = message["status"]
                    captured.resp_headers = {
                        k.decode("latin-1").lower(): v.decode("latin-1")
                        for k, v in message.get("headers", ())
                    }
                elif kind == "http.response.body":
                    response.add(message.get("body", b""))
            except Exception:
                mon.failed("asgi response")
            await send(message)

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        finally:
            if captured.status:
                captured.body = request.value() if complete else None
                captured.resp_body = response.value()
                mon.feed(captured)


class _Input:
    """A WSGI input stream that copies what the app reads (up to a bound)."""

    def __init__(self, stream: Any, body: _Body, length: int | None) -> None:
        self.stream = stream
        self.body = body
        self.left = length
        self.done = length == 0

    def _seen(self, data: bytes, asked: int | None) -> bytes:
        self.body.add(data)
        if self.left is not None:
            self.left -= len(data)
            if self.left <= 0:
                self.done = True
        elif not data or (asked is not None and asked > 0 and len(data) < asked):
            self.done = True
        return data

    def read(self, size: int | None = -1) -> bytes:
        data: bytes = self.stream.read() if size is None or size < 0 else self.stream.read(size)
        return self._seen(data, size if size is not None and size >= 0 else None)

    def readline(self, size: int | None = -1) -> bytes:
        data: bytes = self.stream.readline() if size is None or size < 0 else self.stream.readline(size)
        return self._seen(data, None)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return [self._seen(line, None) for line in self.stream.readlines(hint)]

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class WSGIMiddleware:
    """WSGI middleware: ``app.wsgi_app = WSGIMiddleware(app.wsgi_app, mode="observe")`` (Flask).

    Settings as :class:`ASGIMiddleware`.
    """

    def __init__(self, app: WSGIApp, *, monitor: Monitor | None = None, **settings: Any) -> None:
        self.app = app
        self.monitor = Monitor.given(monitor, settings)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        mon = self.monitor
        try:
            mount = environ.get("SCRIPT_NAME", "")
            path = mon.app_path(mount + environ.get("PATH_INFO", ""), mount)
            if not mon.wants(path):
                return self.app(environ, start_response)
            query = environ.get("QUERY_STRING", "")
            headers = {
                k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")
            }
            if environ.get("CONTENT_TYPE"):
                headers["content-type"] = environ["CONTENT_TYPE"]
            captured = Captured(
                method=environ["REQUEST_METHOD"],
                path=path + ("?" + query if query else ""),
                headers=headers,
                time=now_iso() if mon.enforcing else "",  # (stamped again when fed)
            )
            length_text = environ.get("CONTENT_LENGTH") or ""
            chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
            # (PEP 3333: an empty or absent CONTENT_LENGTH is no body, unless the body is chunked)
            length = int(length_text) if length_text.isdigit() else None if chunked else 0
            request = _Body(mon.body_limit)
            stream = environ["wsgi.input"]
            if length is not None and length <= mon.body_limit:
                data = stream.read(length) if length else b""  # read once, handed on unchanged
                environ["wsgi.input"] = io.BytesIO(data)
                request.add(data)
                tee = None
            else:
                tee = _Input(stream, request, length)
                environ["wsgi.input"] = tee
            refused = (
                mon.refusal(captured.method, captured.path, headers, request.value(), captured.time)
                if tee is None
                else None
            )
        except Exception:
            mon.failed("wsgi request")
            return self.app(environ, start_response)
        if refused is not None:
            try:
                answer = mon.refuse(refused)
                captured.answered_by(answer, request.value())
                mon.feed(captured)
                start_response(
                    f"{answer.status} Refused",
                    [("Content-Type", "application/json"), ("Content-Length", str(len(answer.body)))],
                )
                return [answer.body]
            except Exception:
                mon.failed("wsgi enforce")
        response = _Body(mon.body_limit)

        def capture_start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            try:
                captured.status = int(status.split(" ", 1)[0])
                captured.resp_headers = {k.lower(): v for k, v in headers}
            except Exception:
                mon.failed("wsgi response")
            if exc_info is not None:
                return start_response(status, headers, exc_info)
            return start_response(status, headers)

        def finish() -> None:
            captured.body = request.value() if tee is None or tee.done else None
            captured.resp_body = response.value()
            if captured.status:
                mon.feed(captured)

        return _Passing(self.app(environ, capture_start), response, finish)


class _Passing:
    """The app's response iterable, passed through chunk by chunk; fed to the monitor once closed."""

    def __init__(self, inner: Iterable[bytes], body: _Body, finish: Callable[[], None]) -> None:
        self.inner = inner
        self.body = body
        self._finish: Callable[[], None] | None = finish

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            self.body.add(chunk)
            yield chunk
        self._done()  # (whole: judged now, even where a server is late to call close)

    def close(self) -> None:
        try:
            close = getattr(self.inner, "close", None)
            if close is not None:
                close()
        finally:
            self._done()

    def _done(self) -> None:
        finish, self._finish = self._finish, None
        if finish is not None:
            finish()
