"""What the httpx and requests wrappers share: settings, and the call each makes before sending."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from fsm.monitor import Captured, Monitor, ProtocolViolation, now_iso

__all__ = ["before"]


def before(
    mon: Monitor, method: str, url: str, headers: Mapping[str, str], body: bytes | None
) -> Captured | None:
    """The exchange being started (None when its path is not checked); raises when enforce refuses it."""
    parts = urlsplit(url)
    path = parts.path or "/"
    if not mon.wants(path):
        return None
    captured = Captured(
        method=method.upper(),
        path=path + (f"?{parts.query}" if parts.query else ""),
        headers={k.lower(): v for k, v in headers.items()},
        time=now_iso(),
        body=body if body is None or len(body) <= mon.body_limit else None,
    )
    refused = mon.refusal(captured.method, captured.path, captured.headers, captured.body, captured.time)
    if refused is not None:
        mon.count("enforced")
        raise ProtocolViolation(refused, captured.method, captured.path)
    return captured
