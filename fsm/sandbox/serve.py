"""Start ``voucher-fsm serve`` in a process of its own, on a free port, for tests and benchmarks."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunningSandbox", "free_port", "running", "stop", "wait_answering"]


@dataclass(frozen=True)
class RunningSandbox:
    """A sandbox server process: its URL, its process id, and its recording (if any)."""

    url: str
    pid: int
    record: Path | None


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (picked by the system)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def running(
    *,
    seed: int = 0,
    record: str | Path | None = None,
    faults: Sequence[str] = (),
    real_clock: bool = False,
    keep_secrets: bool = False,
    timeout: float = 30.0,
    host: str = "127.0.0.1",
    python: str | None = None,
) -> Iterator[RunningSandbox]:
    """Serve a sandbox on a free port of ``host`` until the block ends; stopped by its process id.

    ``python``: the interpreter that serves it (default: this one), e.g. a virtual environment's
    with the compiled build; its own install of voucher-fsm is used, never one in the working
    directory. Raises ``RuntimeError`` when it does not answer within ``timeout`` seconds.
    """
    port = free_port(host)
    exe = [sys.executable] if python is None else [python, "-P"]  # (-P: nothing from the working dir)
    args = [*exe, "-m", "fsm", "serve", "--host", host, "--port", str(port), "--seed", str(seed)]
    if record is not None:
        args += ["--record", str(record)]
    for name in faults:
        args += ["--fault", name]
    if real_clock:
        args.append("--real-clock")
    if keep_secrets:
        args.append("--keep-secrets")
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://{host}:{port}"
    try:
        wait_answering(proc, url, timeout)
        yield RunningSandbox(url, proc.pid, Path(record) if record is not None else None)
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server process by its id (SIGTERM, then SIGKILL after 10 s) and close its error pipe."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()


def wait_answering(proc: subprocess.Popen[bytes], url: str, timeout: float) -> None:
    """Wait until the sandbox at ``url`` answers ``/_sandbox/``; RuntimeError if it exits or is late."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"the sandbox exited with {proc.returncode}: {err.strip()[-500:]}")
        try:
            with urllib.request.urlopen(url + "/_sandbox/", timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    raise RuntimeError(f"the sandbox did not answer at {url} within {timeout} s")
