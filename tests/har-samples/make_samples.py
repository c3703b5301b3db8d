"""Capture the HAR samples in this folder with real tools (run by hand; the samples are committed).

A tiny ASGI server on 127.0.0.1 (port picked at run time) replays one generated, valid session;
Debian's Chromium (through Playwright, ``executable_path=/usr/bin/chromium``, never ``playwright
install``) loads a page from ``http://127.0.0.1:PORT`` that calls the API at
``http://localhost:PORT``, another origin: so the browser sends CORS preflights. The server also
answers one call with a 307 redirect (the browser follows it with the body), one GET twice (the
second a 304 revalidation) and a HEAD. The same page is captured by Playwright (embed, attach,
``.zip``) and through mitmproxy 11 as a reverse proxy (``.har`` and ``.zhar``), and once more
with the API behind a gateway prefix, and once of a server that accepts the same redeem twice.

Needs uvicorn, playwright and mitmproxy (a scratch virtual environment will do: mitmproxy pins
what the kit's test environment may not)::

    python -m fsm.cli generate --sessions 1 --seed 7 --vouchers-per-session 2 --complete -o /tmp/s.jsonl
    /path/to/scratch/bin/python tests/har-samples/make_samples.py /tmp/s.jsonl tests/har-samples
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from playwright.sync_api import sync_playwright

PAGE = """<!doctype html><title>replay</title><script>
async function run() {
  const plan = await (await fetch('/plan.json')).json();
  plan.api = 'http://api.test:' + location.port;  // another origin (Chromium maps it to 127.0.0.1)
  for (const call of plan.calls) {
    const init = {method: call.method, headers: call.headers};
    if (call.body !== undefined) init.body = JSON.stringify(call.body);
    await (await fetch(plan.api + call.path, init)).text();
  }
  await (await fetch(plan.api + plan.prefix + '/finance/networks')).text();
  await (await fetch(plan.api + plan.prefix + '/finance/networks', {cache: 'no-cache'})).text();
  await fetch(plan.api + plan.prefix + '/', {method: 'HEAD'});
  window.done = true;
}
run().catch(e => { window.failed = String(e); });
</script>"""

NETWORKS = [{"network": "ethereum", "type": "evm", "chainId": "1", "nativeCurrency": "ETH", "enabled": True}]
JSON = [(b"content-type", b"application/json")]
CORS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-headers", b"authorization, content-type"),
    (b"access-control-allow-methods", b"GET, POST, HEAD, OPTIONS"),
]


class Replay:
    """Answers each API call with the recorded answer of the next unused record of that method and path."""

    def __init__(self, records: list[dict[str, Any]], prefix: str, redirect: str) -> None:
        self.records = records
        self.prefix = prefix
        self.redirect = redirect  # path ending answered once with a 307
        self.used: set[int] = set()
        self.redirected = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return None
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        method, path = scope["method"], scope["path"]
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if path == "/" and method == "GET":
            return await _send(send, 200, PAGE.encode(), [(b"content-type", b"text/html")])
        if path == "/plan.json":
            plan = {"prefix": self.prefix, "calls": self.calls()}
            return await _send(send, 200, json.dumps(plan).encode(), [(b"content-type", b"application/json")])
        if method == "OPTIONS":
            return await _send(send, 204, b"", CORS)
        if method == "HEAD":
            return await _send(send, 200, b"", CORS)
        if path == self.prefix + "/finance/networks":
            if headers.get("if-none-match") == '"n1"':
                return await _send(send, 304, b"", [*CORS, (b"etag", b'"n1"')])
            json_ = [
                (b"content-type", b"application/json"),
                (b"etag", b'"n1"'),
                (b"cache-control", b"max-age=0"),
            ]
            return await _send(send, 200, json.dumps(NETWORKS).encode(), [*CORS, *json_])
        if path.endswith(self.redirect) and not self.redirected:
            self.redirected = True
            return await _send(send, 307, b"", [*CORS, (b"location", (path + "?followed=1").encode())])
        rel = "/api/v1" + path.removeprefix(self.prefix)
        for i, r in enumerate(self.records):
            if i not in self.used and r["request"]["method"] == method and r["request"]["path"] == rel:
                self.used.add(i)
                resp = r["response"]
                out = json.dumps(resp["body"]).encode() if "body" in resp else b""
                return await _send(send, resp["status"], out, [*CORS, (b"content-type", b"application/json")])
        return await _send(
            send, 404, b'{"code":"not_found"}', [*CORS, (b"content-type", b"application/json")]
        )

    def calls(self) -> list[dict[str, Any]]:
        out = []
        for r in self.records:
            req = r["request"]
            call = {
                "method": req["method"],
                "path": self.prefix + req["path"].removeprefix("/api/v1"),
                "headers": {k: v for k, v in req.get("headers", {}).items() if k != "host"},
            }
            if "body" in req:
                call["body"] = req["body"]
            out.append(call)
        return out


async def _send(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """The replay app served by uvicorn in a thread, on 127.0.0.1 and localhost."""

    def __init__(self, app: Replay) -> None:
        self.port = _free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def browse(url: str, har: Path, content: str) -> None:
    """Load the page in Chromium and let Playwright write the HAR (``content``: embed, attach, omit)."""
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium", args=["--host-resolver-rules=MAP api.test 127.0.0.1"]
        )
        context = browser.new_context(record_har_path=str(har), record_har_content=content)
        page = context.new_page()
        page.goto(url)
        page.wait_for_function("window.done || window.failed", timeout=20000)
        failed = page.evaluate("window.failed")
        if failed:
            raise RuntimeError(failed)
        context.close()
        browser.close()


def capture(records: list[dict[str, Any]], out: Path, prefix: str, name: str, modes: list[str]) -> None:
    """One capture per mode: ``embed``, ``attach`` (a folder), ``zip``, ``mitm``, ``zhar``."""
    for mode in modes:
        app = Replay(records, prefix, "/redeem-voucher")
        with Server(app) as server:
            base = f"http://127.0.0.1:{server.port}/"
            if mode == "embed":
                browse(base, out / f"{name}.har", "embed")
            elif mode == "attach":
                folder = out / f"{name}-attach"
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir()
                browse(base, folder / "capture.har", "attach")
            elif mode == "zip":
                browse(base, out / f"{name}.zip", "attach")
            else:
                suffix = "zhar" if mode == "zhar" else "har"
                mport = _free_port()
                target = out / f"{name}-mitmproxy.{suffix}"
                mitm = subprocess.Popen(
                    [
                        str(Path(sys.executable).parent / "mitmdump"),
                        "-q",
                        "--mode",
                        f"reverse:http://127.0.0.1:{server.port}/",
                        "--listen-host",
                        "127.0.0.1",
                        "-p",
                        str(mport),
                        "--set",
                        f"hardump={target}",
                    ],
                    start_new_session=True,
                )
                try:
                    _wait_port(mport)
                    with tempfile.TemporaryDirectory() as tmp:
                        browse(f"http://127.0.0.1:{mport}/", Path(tmp) / "browser.har", "omit")
                finally:
                    os.killpg(mitm.pid, signal.SIGINT)  # mitmdump writes the HAR as it stops
                    mitm.wait(20)
        print(f"captured {name} {mode}", file=sys.stderr)


def _wait_port(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z$")


def _shifted(value: Any, delta: timedelta) -> Any:
    """``value`` with every timestamp moved by ``delta`` (the recorded session happens now)."""
    if isinstance(value, str) and _TIME.match(value):
        moment = datetime.fromisoformat(value.replace("Z", "+00:00")) + delta
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    if isinstance(value, dict):
        return {k: _shifted(v, delta) for k, v in value.items()}
    if isinstance(value, list):
        return [_shifted(v, delta) for v in value]
    return value


def main() -> None:
    records = [json.loads(line) for line in Path(sys.argv[1]).read_text().splitlines() if line.strip()]
    start = datetime.fromisoformat(records[0]["time"].replace("Z", "+00:00"))
    records = _shifted(records, datetime.now(UTC) - start)
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    asyncio.set_event_loop_policy(None)
    capture(records, out, "/api/v1", "chromium", ["embed", "attach", "zip", "mitm", "zhar"])
    capture(records, out, "/gateway/api/v1", "gateway", ["embed"])
    # a broken server: it accepts the same redeem twice (the second must be refused, D16)
    redeem = next(i for i, r in enumerate(records) if r["request"]["path"].endswith("/redeem-voucher"))
    capture(
        [*records[: redeem + 1], records[redeem], *records[redeem + 1 :]], out, "/api/v1", "broken", ["mitm"]
    )


if __name__ == "__main__":
    main()
