"""Load on the sandbox (``voucher-fsm serve``): server CPU per request, requests/s and p99 latency.

    python benchmarks/bench_sandbox.py --clients 1,10,50 --requests 4000 --seconds 20

The server runs in a process of its own (uvicorn on 127.0.0.1, a free port); this process is the load
generator: ``--clients`` concurrent asyncio tasks, each with its own keep-alive connection (httpx), each
playing whole sessions over and over (sign-in, context-open, payee sign-in, session-open, join, then two
vouchers reserved, redeemed, polled three times and resolved, then session-close: 18 requests a session).
Each level is bounded by ``--requests`` and ``--seconds`` and starts after a warm-up.

With Debian's ``wrk`` installed, the same levels also poll one voucher (GET, the polling target) from
wrk, whose own CPU cost is far below httpx's. Each load runs first against a baseline (the same uvicorn,
uvloop and httptools answering every call with one canned JSON body) in the same run: the sandbox's own
cost is its figure minus the baseline's, whatever else the machine is doing.

Printed per level: requests answered, wall seconds, requests/s, median and p99 latency (ms), and the
server's CPU time (user + system, from /proc/PID/stat) per request in microseconds, which is the figure
least disturbed by other work on a shared machine; the load generator's own CPU is printed beside it.
Targets (issue 17): under 300 us of server CPU a request; 2,000 requests/s at 10 clients with p99 under
20 ms. ``--record`` makes the server record (JSONL) as it answers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fsm.sandbox.serve import free_port, running  # noqa: E402

PAY = {
    "network": "polygon",
    "currency": "EURC",
    "currencyAddress": "0x73b3db5a96a4b9d9bcfc22b8f1b3d85a5e5b5e5b",
    "amount": "100",
    "wallet": {"address": "0x" + "2" * 40},
}
_TICK = os.sysconf("SC_CLK_TCK")
_CANNED = b'{"authorization": {"token": "t"}, "code": "ABC123", "id": "vch_1", "status": "OPEN"}'


async def baseline_app(scope: dict, receive: Any, send: Any) -> None:
    """The floor: the same uvicorn answering every call with one canned JSON body, reading nothing."""
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_CANNED)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _CANNED})


@contextlib.contextmanager
def baseline() -> Iterator[tuple[str, int]]:
    """Serve :func:`baseline_app` with uvicorn (uvloop and httptools as the sandbox) on a free port."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench_sandbox:baseline_app",
            "--app-dir",
            str(HERE),
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(400):
            try:
                httpx.get(url + "/")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait()


def wrk(url: str, path: str, token: str, clients: int, seconds: float) -> tuple[int, float, float]:
    """(requests, requests/s, p99 ms) of Debian's wrk polling ``path`` with ``clients`` connections."""
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{clients}",
            f"-d{max(1, int(seconds))}s",
            "--latency",
            "-H",
            f"authorization: Bearer {token}",
            url + path,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = out.splitlines()
    n = int(next(line for line in lines if "requests in" in line).split()[0])
    rps = float(next(line for line in lines if line.startswith("Requests/sec")).split()[1])
    p99 = next(line for line in lines if line.strip().startswith("99%")).split()[1]
    value = float(p99.rstrip("msu"))
    scale = 1e-3 if p99.endswith("us") else 1e3 if p99.endswith("s") and not p99.endswith("ms") else 1.0
    return n, rps, value * scale


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


class Load:
    """Counts answers and their latencies until the budget of requests or seconds is spent."""

    def __init__(self, requests: int, seconds: float) -> None:
        self.left = requests
        self.deadline = time.monotonic() + seconds
        self.latencies: list[float] = []
        self.errors = 0

    def more(self) -> bool:
        return self.left > 0 and time.monotonic() < self.deadline

    async def call(
        self, client: httpx.AsyncClient, method: str, path: str, body: object = None, token: str = ""
    ) -> dict:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        start = time.perf_counter()
        r = await client.request(method, "/api/v1" + path, json=body, headers=headers)
        self.latencies.append(time.perf_counter() - start)
        self.left -= 1
        if r.status_code != 200:
            self.errors += 1
        out: dict = r.json()
        return out


async def session(load: Load, client: httpx.AsyncClient, n: int) -> None:
    """One two-voucher session: 18 requests."""
    c = load.call
    device = {"installationId": f"{n:040x}", "password": "p" * 40}
    payer = (await c(client, "POST", "/auth/sign-in", {"type": "mobile-device", "data": device}))[
        "authorization"
    ]["token"]
    ctx = await c(
        client,
        "POST",
        "/vouchers/contexts/context-open",
        {"format": "alphanum", "payers": [{"address": "0x" + "1" * 40}]},
        payer,
    )
    resource = {"type": "resource", "data": {"resource": "voucher::context::code::" + ctx["code"]}}
    payee = (await c(client, "POST", "/auth/sign-in", resource))["authorization"]["token"]
    s = await c(
        client,
        "POST",
        "/vouchers/sessions/session-open",
        {"code": ctx["code"], "type": "SESSION_DEFAULT"},
        payee,
    )
    await c(client, "POST", f"/vouchers/sessions/{s['id']}/session-join", {}, payer)
    for _ in range(2):
        v = await c(client, "POST", f"/vouchers/sessions/{s['id']}/reserve-voucher", {}, payee)
        await c(client, "POST", f"/vouchers/{v['id']}/redeem-voucher", {"expectedPayment": PAY}, payee)
        for _ in range(3):
            await c(client, "GET", f"/vouchers/{v['id']}", None, payer)
        await c(
            client,
            "POST",
            f"/vouchers/{v['id']}/resolve-voucher",
            {"receipts": [{"paymentId": "pay_1"}]},
            payer,
        )
    await c(client, "POST", f"/vouchers/sessions/{s['id']}/session-close", {}, payee)


async def level(url: str, clients: int, requests: int, seconds: float, first: int) -> Load:
    load = Load(requests, seconds)

    async def worker(k: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            n = first + k * 1_000_000
            while load.more():
                await session(load, client, n)
                n += 1

    await asyncio.gather(*(worker(k) for k in range(clients)))
    return load


HEAD = (
    f"{'server':>8} {'load':>6} {'clients':>7} {'requests':>8} {'wall s':>7} {'req/s':>7} {'p50 ms':>7} "
    f"{'p99 ms':>7} {'server CPU us/req':>17} {'client CPU us/req':>17} {'non-200':>7}"
)


def flows(name: str, url: str, pid: int, args: argparse.Namespace) -> None:
    """The session mix from async httpx clients, at each concurrency level."""
    asyncio.run(level(url, 4, args.warmup, 30, 900_000_000))
    for i, clients in enumerate(int(c) for c in args.clients.split(",")):
        cpu0, own0, wall0 = cpu_seconds(pid), time.process_time(), time.perf_counter()
        load = asyncio.run(level(url, clients, args.requests, args.seconds, i * 100_000_000))
        wall = time.perf_counter() - wall0
        cpu, own = cpu_seconds(pid) - cpu0, time.process_time() - own0
        n = len(load.latencies)
        lat = sorted(load.latencies)
        p99 = lat[min(n - 1, int(n * 0.99))] * 1e3
        print(
            f"{name:>8} {'flows':>6} {clients:>7} {n:>8} {wall:>7.2f} {n / wall:>7.0f} "
            f"{statistics.median(lat) * 1e3:>7.2f} {p99:>7.2f} {cpu / n * 1e6:>17.0f} {own / n * 1e6:>17.0f} "
            f"{load.errors:>7}",
            flush=True,
        )


def polls(name: str, url: str, pid: int, args: argparse.Namespace, path: str, token: str) -> None:
    """GET ``path`` (a voucher: the polling target) from Debian's wrk, at each concurrency level."""
    for clients in (int(c) for c in args.clients.split(",")):
        cpu0 = cpu_seconds(pid)
        n, rps, p99 = wrk(url, path, token, clients, args.seconds)
        cpu = cpu_seconds(pid) - cpu0
        print(
            f"{name:>8} {'wrk':>6} {clients:>7} {n:>8} {args.seconds:>7.2f} {rps:>7.0f} {'':>7} {p99:>7.2f} "
            f"{cpu / n * 1e6:>17.0f} {'(wrk)':>17} {'':>7}",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", default="1,10,50", help="Concurrency levels, comma-separated.")
    ap.add_argument("--requests", type=int, default=4000, help="Requests a level (at most).")
    ap.add_argument("--seconds", type=float, default=20.0, help="Seconds a level (at most).")
    ap.add_argument("--warmup", type=int, default=300, help="Requests before the first level (not measured).")
    ap.add_argument("--record", action="store_true", help="The server records what it serves (JSONL).")
    ap.add_argument(
        "--no-baseline", action="store_true", help="Skip the canned-answer app on the same uvicorn."
    )
    args = ap.parse_args()
    has_wrk = shutil.which("wrk") is not None
    print(HEAD)
    if not args.no_baseline:
        with baseline() as (url, pid):
            flows("baseline", url, pid, args)
            if has_wrk:
                polls("baseline", url, pid, args, "/api/v1/vouchers/vch_1", "t")
    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / "bench.jsonl" if args.record else None
        with running(seed=1, record=record) as server:
            flows("sandbox", server.url, server.pid, args)
            if has_wrk:
                token, path = asyncio.run(one_voucher(server.url))
                polls("sandbox", server.url, server.pid, args, path, token)
    if not has_wrk:
        print("(Debian's wrk is not installed: apt-get install -y wrk adds the polling figures)")


async def one_voucher(url: str) -> tuple[str, str]:
    """A payer's token and the path of a voucher reserved in its context."""
    load = Load(100, 30)
    async with httpx.AsyncClient(base_url=url) as client:
        c = load.call
        device = {"installationId": "f" * 40, "password": "p" * 40}
        payer = await c(client, "POST", "/auth/sign-in", {"type": "mobile-device", "data": device})
        token = payer["authorization"]["token"]
        ctx = await c(
            client,
            "POST",
            "/vouchers/contexts/context-open",
            {"format": "alphanum", "payers": [{"address": "0x" + "1" * 40}]},
            token,
        )
        v = await c(client, "POST", "/vouchers/reserve-voucher", {"code": ctx["code"]}, token)
    return token, f"/api/v1/vouchers/{v['id']}"


if __name__ == "__main__":
    main()
