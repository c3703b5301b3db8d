"""Real servers for the embedding tests: uvicorn and waitress in their own processes, on 127.0.0.1.

Ports are picked at run time; each server is stopped by its PID when the test is done.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]

COMMANDS = {
    "starlette": ["-m", "uvicorn", "--factory", "tests.embed_apps:starlette_app"],
    "fastapi": ["-m", "uvicorn", "--factory", "tests.embed_apps:fastapi_app"],
    "flask": ["-m", "waitress", "--threads=8", "--call", "tests.embed_apps:flask_app"],
    "django": ["-m", "waitress", "--threads=8", "--call", "tests.embed_apps:django_app"],
}
SERVER_OF = {"starlette": "uvicorn", "fastapi": "uvicorn", "flask": "waitress", "django": "waitress"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    kind: str
    url: str
    out: Path
    pid: int

    def state(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/_monitor", timeout=10).json()

    def findings(self) -> list[dict[str, Any]]:
        path = self.out / "findings.jsonl"
        import orjson

        return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


@contextlib.contextmanager
def serve(
    kind: str, out: Path, logs: list[Path], *, mode: str = "observe", limit: int = 1 << 20
) -> Iterator[Server]:
    """Run the fake Bleepay of ``kind`` in its real server until the block ends."""
    port = free_port()
    out.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "FAKE_BLEEPAY_LOG": os.pathsep.join(str(p) for p in logs),
        "FAKE_BLEEPAY_OUT": str(out),
        "FAKE_BLEEPAY_MODE": mode,
        "FAKE_BLEEPAY_LIMIT": str(limit),
        "PYTHONPATH": str(REPO),
    }
    where = (
        ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
        if SERVER_OF[kind] == "uvicorn"
        else [f"--listen=127.0.0.1:{port}"]
    )
    args = [sys.executable, *COMMANDS[kind][:-1], *where, COMMANDS[kind][-1]]
    log = (out / "server.log").open("wb")
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{kind} server exited: {(out / 'server.log').read_text()[-2000:]}")
            try:
                httpx.get(f"{url}/_monitor", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{kind} server did not start in 30 s") from None
                time.sleep(0.1)
        yield Server(kind, url, out, proc.pid)
    finally:
        os.kill(proc.pid, 15)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, 9)
            proc.wait(5)
        log.close()
