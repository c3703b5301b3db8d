"""httpx transports that check each call against the protocol (observe) or refuse illegal ones (enforce)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from fsm.clients._common import before
from fsm.monitor import Captured, Monitor

__all__ = ["AsyncHTTPXTransport", "HTTPXTransport"]


def _body(request: httpx.Request) -> bytes | None:
    try:
        return request.content
    except httpx.RequestNotRead:  # a streamed upload: passed on as it is, not checked
        return None


def _answered(mon: Monitor, captured: Captured, response: httpx.Response) -> None:
    captured.status = response.status_code
    captured.resp_headers = {k.lower(): v for k, v in response.headers.items()}


class _Copy:
    """A response body copied as the caller reads it (up to the bound); fed once closed."""

    def __init__(self, mon: Monitor, captured: Captured) -> None:
        self.mon = mon
        self.captured = captured
        self.chunks: list[bytes] | None = []
        self.size = 0
        self.fed = False

    def add(self, chunk: bytes) -> None:
        if self.chunks is not None:
            self.size += len(chunk)
            if self.size > self.mon.body_limit:
                self.chunks = None
            else:
                self.chunks.append(chunk)

    def done(self) -> None:
        if not self.fed:
            self.fed = True
            self.captured.resp_body = None if self.chunks is None else b"".join(self.chunks)
            self.mon.feed(self.captured)


class _SyncStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, copy: _Copy) -> None:
        self.inner = inner
        self.copy = copy

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            self.copy.add(chunk)
            yield chunk

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            self.copy.done()


class _AsyncStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, copy: _Copy) -> None:
        self.inner = inner
        self.copy = copy

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            self.copy.add(chunk)
            yield chunk

    async def aclose(self) -> None:
        try:
            await self.inner.aclose()
        finally:
            self.copy.done()


class HTTPXTransport(httpx.BaseTransport):
    """``httpx.Client(transport=HTTPXTransport(view="payee", mode="enforce"))``.

    Wraps ``transport`` (default ``httpx.HTTPTransport()``); other keyword arguments are
    :class:`fsm.monitor.Monitor`'s, or pass ``monitor=``. ``self.monitor`` has ``snapshot()``
    and ``stats()``.
    """

    def __init__(
        self, transport: httpx.BaseTransport | None = None, *, monitor: Monitor | None = None, **settings: Any
    ) -> None:
        self.inner = transport if transport is not None else httpx.HTTPTransport()
        self.monitor = Monitor.given(monitor, settings)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        captured = before(self.monitor, request.method, str(request.url), request.headers, _body(request))
        response = self.inner.handle_request(request)
        if captured is None:
            return response
        _answered(self.monitor, captured, response)
        assert isinstance(response.stream, httpx.SyncByteStream)
        response.stream = _SyncStream(response.stream, _Copy(self.monitor, captured))
        return response

    def close(self) -> None:
        self.inner.close()


class AsyncHTTPXTransport(httpx.AsyncBaseTransport):
    """``httpx.AsyncClient(transport=AsyncHTTPXTransport(...))``; as :class:`HTTPXTransport`."""

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        monitor: Monitor | None = None,
        **settings: Any,
    ) -> None:
        self.inner = transport if transport is not None else httpx.AsyncHTTPTransport()
        self.monitor = Monitor.given(monitor, settings)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        captured = before(self.monitor, request.method, str(request.url), request.headers, _body(request))
        response = await self.inner.handle_async_request(request)
        if captured is None:
            return response
        _answered(self.monitor, captured, response)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _AsyncStream(response.stream, _Copy(self.monitor, captured))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()
