"""A server on 127.0.0.1 that answers a recorded exchange log, request by request.

Real capture tools (mitmproxy, Chromium through Playwright) need a real server to record. This ASGI
app replays the responses of a known exchange log (``examples/session-two-payments.jsonl`` answers
protocol-correct, ``examples/broken.jsonl`` breaks the protocol) in the log's order: the n-th API
request gets the n-th record's response, provided its method and path are the record's. It is a test
helper, not the kit's sandbox: it knows nothing of the protocol.

- Times: every timestamp in a response body is moved by one offset, fixed at the first API request,
  so the log's first record happens "now" and ``expiresAt`` lies as far ahead of the capture as it
  lay ahead of the log (capture tools stamp entries with the wall clock).
- CORS: the browser page lives on another origin, so preflights (``OPTIONS`` with
  ``Access-Control-Request-Method``) are answered 204 with the headers a browser needs, and every
  API answer carries ``Access-Control-Allow-Origin``. Preflights consume no record.
- Redirects: an API path with a trailing slash is answered ``307 Temporary Redirect`` to the path
  without it, as Starlette's ``redirect_slashes`` does; the client follows (a 307 keeps method and
  body) and gets the record's answer. Redirects consume no record.
- ``GET /app`` is the page that calls the API with ``fetch()`` (the plan of calls is ``GET /plan.json``:
  the log's requests); ``GET /static/*`` are non-API resources for a capture with no API traffic.
- ``GET /_replay/status`` says how many records were answered and what went wrong (for the driver).

Configured by environment variables, read when uvicorn builds the app (``--factory``):
``REPLAY_LOG`` (the JSONL log), ``REPLAY_PREFIX`` (where the API is served; default the log's own
``/api/v1``, e.g. ``/gateway/api/v1`` for an API behind a gateway).
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LOG_PREFIX = "/api/v1"
_ISO = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)(Z|[+-]\d\d:\d\d)$")

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>replay client</title></head>
<body><p id="state">running</p>
<script>
async function run() {
  const params = new URLSearchParams(location.search);
  const api = params.get("api");
  const plan = params.get("calls") === "0" ? [] : await (await fetch("/plan.json")).json();
  const results = [];
  for (const call of plan) {
    const init = {method: call.method, headers: call.headers};
    if (call.body !== null) init.body = call.body;
    const answer = await fetch(api + call.path, init);
    results.push(answer.status);
    await answer.text();
  }
  for (const name of (params.get("static") || "").split(",")) {
    if (name) await (await fetch("/static/" + name)).text();
  }
  window.replayResults = results;
  document.getElementById("state").textContent = "done";
}
run().catch(e => { document.getElementById("state").textContent = "failed: " + e; });
</script></body></html>
"""


def parse_time(text: str) -> datetime | None:
    """A timestamp of the log, or None when the string is not one."""
    m = _ISO.match(text)
    if not m:
        return None
    return datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(2) == "Z" else m.group(2)))


def shift_times(value: Any, by: Any) -> Any:
    """``value`` with every timestamp string moved by the timedelta ``by`` (same format, UTC)."""
    if isinstance(value, dict):
        return {k: shift_times(v, by) for k, v in value.items()}
    if isinstance(value, list):
        return [shift_times(v, by) for v in value]
    if isinstance(value, str) and (t := parse_time(value)) is not None:
        return (t + by).astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return value


def load_log(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL exchange log."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plan(records: list[dict[str, Any]], prefix: str = LOG_PREFIX) -> list[dict[str, Any]]:
    """The requests of the log as a client sends them: path under ``prefix``, body as JSON text."""
    calls = []
    for r in records:
        req = r["request"]
        body = req.get("body")
        headers = {k: v for k, v in (req.get("headers") or {}).items() if k.lower() != "content-length"}
        calls.append(
            {
                "method": req["method"],
                "path": prefix + req["path"].removeprefix(LOG_PREFIX),
                "headers": headers,
                "body": None if body is None else json.dumps(body),
            }
        )
    return calls


class Replay:
    """The ASGI app: answers the log's responses in order."""

    def __init__(self, records: list[dict[str, Any]], prefix: str = LOG_PREFIX) -> None:
        self.records = records
        self.prefix = prefix.rstrip("/")
        self.answered = 0
        self.problems: list[str] = []
        self.offset: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        status, content_type, body = self.answer(scope["method"], scope["path"], headers)
        out = [(b"content-type", content_type.encode())]
        if status == 307:
            out.append((b"location", scope["path"].rstrip("/").encode()))
        origin = headers.get("origin")
        if origin:
            out += [(b"access-control-allow-origin", origin.encode()), (b"vary", b"Origin")]
        if status == 204 and scope["method"] == "OPTIONS":
            out += [
                (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
                (b"access-control-allow-headers", b"authorization, content-type"),
                (b"access-control-max-age", b"0"),
            ]
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": body})

    def answer(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, str, bytes]:
        """Status, content type and body for one request."""
        if method == "OPTIONS" and "access-control-request-method" in headers:
            return 204, "text/plain", b""
        if path == "/app":
            return 200, "text/html; charset=utf-8", PAGE.encode()
        if path == "/plan.json":
            return 200, "application/json", json.dumps(plan(self.records, self.prefix)).encode()
        if path == "/_replay/status":
            state = {"answered": self.answered, "records": len(self.records), "problems": self.problems}
            return 200, "application/json", json.dumps(state).encode()
        if path.startswith("/static/"):
            return 200, "text/css", b"body { margin: 0 }\n"
        if not path.startswith(self.prefix + "/"):
            return 404, "text/plain", b"not found\n"
        if path.endswith("/"):
            return 307, "text/plain", b""
        return self.replay(method, path)

    def replay(self, method: str, path: str) -> tuple[int, str, bytes]:
        """The next record's response, if the request is the next record's request."""
        if self.answered >= len(self.records):
            self.problems.append(f"{method} {path}: the log has no more records")
            return 500, "text/plain", b"replay: no more records\n"
        record = self.records[self.answered]
        want = (record["request"]["method"], self.prefix + record["request"]["path"].removeprefix(LOG_PREFIX))
        if (method, path) != want:
            self.problems.append(
                f"record {self.answered + 1}: got {method} {path}, expected {' '.join(want)}"
            )
            return 500, "text/plain", b"replay: not the next request of the log\n"
        if self.offset is None:
            first = parse_time(self.records[0]["time"])
            assert first is not None
            self.offset = datetime.now(UTC) - first
        self.answered += 1
        response = record["response"]
        body = response.get("body")
        data = b"" if body is None else json.dumps(shift_times(body, self.offset)).encode()
        ctype = (response.get("headers") or {}).get("content-type", "application/json")
        return response["status"], ctype, data


def app() -> Replay:
    """The app uvicorn serves (``uvicorn --factory tests.realtools.replay:app``)."""
    return Replay(load_log(Path(os.environ["REPLAY_LOG"])), os.environ.get("REPLAY_PREFIX", LOG_PREFIX))
