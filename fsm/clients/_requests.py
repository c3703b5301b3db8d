"""A requests ``HTTPAdapter`` that checks each call against the protocol, or refuses illegal ones."""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter

from fsm.clients._common import before
from fsm.monitor import Monitor

__all__ = ["RequestsAdapter"]


class RequestsAdapter(HTTPAdapter):
    """``session.mount("https://", RequestsAdapter(view="payee", mode="enforce"))``.

    Keyword arguments are :class:`fsm.monitor.Monitor`'s (or pass ``monitor=``); ``adapter``
    options (``pool_connections``, ``max_retries``...) go in ``adapter_options``. A response
    read with ``stream=True`` is judged without its body (``input.body-not-checked``).
    """

    def __init__(
        self,
        *,
        monitor: Monitor | None = None,
        adapter_options: dict[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        super().__init__(**(adapter_options or {}))
        self.monitor = Monitor.given(monitor, settings)

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        body = request.body
        raw = body.encode("utf-8") if isinstance(body, str) else body if isinstance(body, bytes) else None
        if body is not None and raw is None:
            raw = None  # a file or generator: passed on as it is, not checked
        captured = before(
            self.monitor,
            request.method or "GET",
            request.url or "",
            dict(request.headers),
            raw if body is not None else b"",
        )
        response = super().send(request, **kwargs)
        if captured is None:
            return response
        captured.status = response.status_code
        captured.resp_headers = {k.lower(): v for k, v in response.headers.items()}
        if kwargs.get("stream"):
            captured.resp_body = None
        else:
            content = response.content
            captured.resp_body = content if len(content) <= self.monitor.body_limit else None
            captured.resp_decoded = True  # (requests undid the Content-Encoding)
        self.monitor.feed(captured)
        return response
