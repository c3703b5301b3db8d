"""Capture traffic with real tools from the replay server (tests/realtools/replay.py).

Each capture starts its own processes on 127.0.0.1 (ports picked at run time), bounds them in time,
and stops them by PID:

- ``mitm-client``: an httpx client calls the API through mitmproxy as a reverse proxy; mitmproxy
  writes the HAR when it stops (``--set hardump=FILE``).
- ``mitm-client-redirect``: the same client calls each path with a trailing slash; the server
  redirects (307) to the path without it and the client follows, all through mitmproxy.
- ``chromium-embed`` / ``chromium-attach-zip``: a page on one origin calls the API on another with
  ``fetch()`` (so CORS preflights appear) in Debian's Chromium driven by Playwright
  (``executable_path``, never ``playwright install``), which records the HAR
  (``record_har_content="embed"``, or ``"attach"`` into a ``.zip``).
- ``chromium-omit`` / ``chromium-minimal`` / ``chromium-minimal-omit``: the same page, Playwright's
  ``record_har_content="omit"`` (no bodies, sizes kept) and ``record_har_mode="minimal"`` (no
  sizes, timings, pages or cookies), alone and together.
- ``chromium-mitm``: the same page, its API calls through mitmproxy, which writes the HAR.
- ``chromium-mitm-h2`` / ``chromium-h2``: the page calls the API over HTTPS through mitmproxy,
  which speaks HTTP/2 to Chromium (ALPN) and HTTP/1.1 to the server; mitmproxy's HAR
  (``HTTP/2.0`` requests), or Playwright's (``:authority``, ``:method``, ``:path``, ``:scheme``).
- ``chromium-no-api``: the page loads only non-API resources.

``python -m tests.realtools.capture`` rewrites the committed corpus in tests/captures/ (the
expected verdicts in its index.json are written by hand, from the protocol, never from a run).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from tests.realtools.replay import LOG_PREFIX, load_log, plan

REPO = Path(__file__).resolve().parents[2]
CAPTURES = REPO / "tests" / "captures"
CHROMIUM = Path("/usr/bin/chromium")
TIMEOUT = 30.0  # seconds any one process may take to start, or one capture to finish


def mitmdump_path() -> Path | None:
    """mitmproxy's mitmdump: $VOUCHER_FSM_MITMDUMP, the repository's .venv-mitm (.ci/run), or PATH."""
    for candidate in (
        os.environ.get("VOUCHER_FSM_MITMDUMP"),
        str(REPO / ".venv-mitm" / "bin" / "mitmdump"),
        shutil.which("mitmdump"),
    ):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def mitmproxy_version() -> str:
    """The version mitmdump reports (``Mitmproxy: 11.0.2``)."""
    exe = mitmdump_path()
    assert exe is not None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=TIMEOUT, check=True)
    return out.stdout.split("\n", 1)[0].split(":", 1)[1].strip()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {TIMEOUT} s")


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Stop one process we started, by its PID; kill it if it does not stop in time."""
    if proc.poll() is None:
        os.kill(proc.pid, sig)
        try:
            proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=TIMEOUT)


@contextlib.contextmanager
def replay_server(log: Path, prefix: str = LOG_PREFIX) -> Iterator[int]:
    """uvicorn serving the replay of ``log`` on a free port; yields the port."""
    port = free_port()
    env = {**os.environ, "REPLAY_LOG": str(log), "REPLAY_PREFIX": prefix}
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "tests.realtools.replay:app"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env)
    try:
        _wait_for_port(port, proc, "the replay server")
        yield port
    finally:
        _stop(proc)


def replay_status(port: int) -> dict[str, Any]:
    """How many records the replay server answered, and what went wrong."""
    import httpx

    return dict(httpx.get(f"http://127.0.0.1:{port}/_replay/status", timeout=TIMEOUT).json())


@contextlib.contextmanager
def mitm_reverse(upstream_port: int, har: Path, *, flows: bool = False) -> Iterator[int]:
    """mitmdump as a reverse proxy to the server; writes ``har`` when it stops. Yields its port.

    With ``flows``, ``har`` is instead mitmproxy's own flow file (``-w``), as ``mitmdump -r`` reads it.
    """
    exe = mitmdump_path()
    if exe is None:
        raise RuntimeError("mitmdump is not installed (see .ci/run)")
    port = free_port()
    cmd = [str(exe), "-q", "--mode", f"reverse:http://127.0.0.1:{upstream_port}"]
    cmd += ["--listen-host", "127.0.0.1", "-p", str(port)]
    cmd += ["-w", str(har.resolve())] if flows else ["--set", f"hardump={har.resolve()}"]
    har.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(cmd, cwd=har.parent)
    try:
        _wait_for_port(port, proc, "mitmdump")
        yield port
    finally:
        _stop(proc, signal.SIGINT)  # mitmdump writes the HAR on a clean exit
    if not har.is_file():
        raise RuntimeError(f"mitmdump exited with {proc.returncode} and wrote no {har}")


def _client_calls(base: str, log: Path, prefix: str, slash: bool = False) -> None:
    import httpx

    with httpx.Client(base_url=base, timeout=TIMEOUT, follow_redirects=True) as client:
        for call in plan(load_log(log), prefix):
            path = call["path"] + ("/" if slash else "")
            client.request(call["method"], path, headers=call["headers"], content=call["body"])


def _check_replayed(port: int, log: Path, want_all: bool = True) -> None:
    state = replay_status(port)
    if state["problems"] or (want_all and state["answered"] != len(load_log(log))):
        raise RuntimeError(f"the replay of {log.name} went wrong: {state}")


def capture_mitm_client(
    log: Path, out: Path, prefix: str = LOG_PREFIX, *, flows: bool = False, slash: bool = False
) -> dict[str, str]:
    """An httpx client through mitmproxy (reverse proxy); mitmproxy's HAR (or flow file) at ``out``.

    With ``slash`` every path is called with a trailing slash, which the server redirects (307).
    """
    with replay_server(log, prefix) as port:
        with mitm_reverse(port, out, flows=flows) as proxy:
            _client_calls(f"http://127.0.0.1:{proxy}", log, prefix, slash)
        _check_replayed(port, log)
    return {
        "tool": "mitmproxy",
        "version": mitmproxy_version(),
        "client": f"httpx {metadata.version('httpx')}",
    }


def _browse(url: str, har: Path | None, content: str = "embed", mode: str = "full") -> str:
    """Open ``url`` in Chromium, wait for the page's calls to finish; returns Chromium's version.

    ``content`` and ``mode`` are Playwright's ``record_har_content`` (embed, attach, omit) and
    ``record_har_mode`` (full, minimal).
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), timeout=TIMEOUT * 1000)
        try:
            options: dict[str, Any] = {"ignore_https_errors": True}  # (mitmproxy's own certificate)
            if har is not None:
                options.update(record_har_path=str(har), record_har_content=content, record_har_mode=mode)
            context = browser.new_context(**options)
            page = context.new_page()
            page.goto(url, timeout=TIMEOUT * 1000)
            page.wait_for_function(
                "document.getElementById('state').textContent !== 'running'", timeout=TIMEOUT * 1000
            )
            state = page.text_content("#state")
            context.close()  # writes the HAR
            if state != "done":
                raise RuntimeError(f"the page's calls did not finish: {state}")
            return browser.version
        finally:
            browser.close()


def _page_url(port: int, api: str, calls: bool = True, static: str = "") -> str:
    # The page is served as localhost, the API as 127.0.0.1: two origins, so fetch() preflights.
    query = f"api={api}" + ("" if calls else "&calls=0") + (f"&static={static}" if static else "")
    return f"http://localhost:{port}/app?{query}"


def capture_chromium(log: Path, out: Path, content: str = "embed", mode: str = "full") -> dict[str, str]:
    """Chromium's page calling the API on another origin; Playwright's HAR (``.zip`` for attach)."""
    with replay_server(log) as port:
        version = _browse(_page_url(port, f"http://127.0.0.1:{port}"), out, content, mode)
        _check_replayed(port, log)
    return {"tool": "chromium", "version": version, "client": f"playwright {metadata.version('playwright')}"}


def capture_chromium_mitm(log: Path, out: Path, scheme: str = "http") -> dict[str, str]:
    """Chromium's page calling the API through mitmproxy; mitmproxy's HAR.

    With ``scheme="https"`` Chromium speaks TLS to mitmproxy, which answers with its own
    certificate and HTTP/2 (ALPN ``h2``); mitmproxy speaks HTTP/1.1 to the server.
    """
    with replay_server(log) as port:
        with mitm_reverse(port, out) as proxy:
            version = _browse(_page_url(port, f"{scheme}://127.0.0.1:{proxy}"), None)
        _check_replayed(port, log)
    return {"tool": "mitmproxy", "version": mitmproxy_version(), "client": f"chromium {version}"}


def capture_chromium_h2(log: Path, out: Path) -> dict[str, str]:
    """Chromium calling the API over HTTP/2 (TLS to mitmproxy); Playwright's HAR, pseudo-headers and all."""
    with replay_server(log) as port:
        with mitm_reverse(port, out.with_suffix(".mitm.har")) as proxy:
            version = _browse(_page_url(port, f"https://127.0.0.1:{proxy}"), out)
        out.with_suffix(".mitm.har").unlink()
        _check_replayed(port, log)
    return {"tool": "chromium", "version": version, "client": f"playwright {metadata.version('playwright')}"}


def capture_chromium_no_api(log: Path, out: Path) -> dict[str, str]:
    """Chromium loading a page and its resources, no API call; Playwright's HAR."""
    with replay_server(log) as port:
        url = _page_url(port, f"http://127.0.0.1:{port}", calls=False, static="site.css,theme.css")
        version = _browse(url, out)
        _check_replayed(port, log, want_all=False)
    return {"tool": "chromium", "version": version, "client": f"playwright {metadata.version('playwright')}"}


_PLAYWRIGHT = {  # kind: (record_har_content, record_har_mode)
    "chromium-embed": ("embed", "full"),
    "chromium-attach-zip": ("attach", "full"),
    "chromium-omit": ("omit", "full"),  # (record_har_omit_content=True: no text, sizes kept)
    "chromium-minimal": ("embed", "minimal"),  # (no sizes, timings, pages or cookies)
    "chromium-minimal-omit": ("omit", "minimal"),  # (no text and no sizes)
}


def tools_of(kind: str) -> set[str]:
    """The tools a capture kind runs: ``chromium``, ``mitmproxy`` or both."""
    tools = set() if kind.startswith("mitm-client") else {"chromium"}
    if "mitm" in kind or kind == "chromium-h2":  # (HTTP/2 from Chromium: TLS to mitmproxy)
        tools.add("mitmproxy")
    return tools


def capture(row: dict[str, Any], out: Path) -> dict[str, str]:
    """Take the capture an index row describes, into ``out``; returns tool, version and client."""
    log, kind = REPO / row["log"], row["capture"]
    if kind.startswith("mitm-client"):
        return capture_mitm_client(log, out, row.get("prefix", LOG_PREFIX), slash=kind.endswith("-redirect"))
    if kind in _PLAYWRIGHT:
        return capture_chromium(log, out, *_PLAYWRIGHT[kind])
    if kind in ("chromium-mitm", "chromium-mitm-h2"):
        return capture_chromium_mitm(log, out, "https" if kind.endswith("-h2") else "http")
    if kind == "chromium-h2":
        return capture_chromium_h2(log, out)
    if kind == "chromium-no-api":
        return capture_chromium_no_api(log, out)
    raise ValueError(f"{row['file']}: no capture kind {kind!r}")


def index() -> list[dict[str, Any]]:
    """The corpus index: one row per capture file, with its expected verdict."""
    return list(json.loads((CAPTURES / "index.json").read_text())["captures"])


def main() -> None:
    """Re-take every capture of the corpus and record the tools' versions in the index."""
    doc = json.loads((CAPTURES / "index.json").read_text())
    for row in doc["captures"]:
        if row["capture"] == "hand-made":  # (python -m tests.realtools.handmade writes those)
            continue
        got = capture(row, CAPTURES / row["file"])
        row.update(got)
        print(f"{row['file']}: {got}")
    (CAPTURES / "index.json").write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
