"""Load on the sandbox (``voucher-fsm serve``): server CPU per request, requests/s and p99 latency.

    python benchmarks/bench_sandbox.py --clients 1,10,50 --requests 4000 --seconds 20

The server runs in a process of its own (uvicorn on 127.0.0.1, a free port); this process is the load
generator: ``--clients`` concurrent asyncio tasks, each with its own keep-alive connection (httpx), each
playing whole sessions over and over (sign-in, context-open, payee sign-in, session-open, join, then two
vouchers reserved, redeemed, polled three times and resolved, then session-close: 18 requests a session).
Each level is bounded by ``--requests`` and ``--seconds`` and starts after a warm-up.

Printed per level: requests answered, wall seconds, requests/s, median and p99 latency (ms), and the
server's CPU time (user + system, from /proc/PID/stat) per request in microseconds, which is the figure
least disturbed by other work on a shared machine; the load generator's own CPU is printed beside it.
Targets (issue 17): under 300 us of server CPU a request; 2,000 requests/s at 10 clients with p99 under
20 ms. ``--record`` makes the server record (JSONL) as it answers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fsm.sandbox.serve import running  # noqa: E402

PAY = {
    "network": "polygon",
    "currency": "EURC",
    "currencyAddress": "0x73b3db5a96a4b9d9bcfc22b8f1b3d85a5e5b5e5b",
    "amount": "100",
    "wallet": {"address": "0x" + "2" * 40},
}
_TICK = os.sysconf("SC_CLK_TCK")


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

    async def call(self, client: httpx.AsyncClient, method: str, path: str, body: object = None, token: str = "") -> dict:
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
    payer = (await c(client, "POST", "/auth/sign-in", {"type": "mobile-device", "data": device}))["authorization"]["token"]
    ctx = await c(client, "POST", "/vouchers/contexts/context-open", {"format": "alphanum", "payers": [{"address": "0x" + "1" * 40}]}, payer)
    resource = {"type": "resource", "data": {"resource": "voucher::context::code::" + ctx["code"]}}
    payee = (await c(client, "POST", "/auth/sign-in", resource))["authorization"]["token"]
    s = await c(client, "POST", "/vouchers/sessions/session-open", {"code": ctx["code"], "type": "SESSION_DEFAULT"}, payee)
    await c(client, "POST", f"/vouchers/sessions/{s['id']}/session-join", {}, payer)
    for _ in range(2):
        v = await c(client, "POST", f"/vouchers/sessions/{s['id']}/reserve-voucher", {}, payee)
        await c(client, "POST", f"/vouchers/{v['id']}/redeem-voucher", {"expectedPayment": PAY}, payee)
        for _ in range(3):
            await c(client, "GET", f"/vouchers/{v['id']}", None, payer)
        await c(client, "POST", f"/vouchers/{v['id']}/resolve-voucher", {"receipts": [{"paymentId": "pay_1"}]}, payer)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", default="1,10,50", help="Concurrency levels, comma-separated.")
    ap.add_argument("--requests", type=int, default=4000, help="Requests a level (at most).")
    ap.add_argument("--seconds", type=float, default=20.0, help="Seconds a level (at most).")
    ap.add_argument("--warmup", type=int, default=300, help="Requests before the first level (not measured).")
    ap.add_argument("--record", action="store_true", help="The server records what it serves (JSONL).")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / "bench.jsonl" if args.record else None
        with running(seed=1, record=record) as server:
            asyncio.run(level(server.url, 4, args.warmup, 30, 900_000_000))
            print(f"sandbox at {server.url} (pid {server.pid}){', recording' if record else ''}")
            print(f"{'clients':>7} {'requests':>8} {'wall s':>7} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
                  f"{'server CPU us/req':>17} {'client CPU us/req':>17} {'non-200':>7}")
            for i, clients in enumerate(int(c) for c in args.clients.split(",")):
                cpu0, own0, wall0 = cpu_seconds(server.pid), time.process_time(), time.perf_counter()
                load = asyncio.run(level(server.url, clients, args.requests, args.seconds, i * 100_000_000))
                wall = time.perf_counter() - wall0
                cpu, own = cpu_seconds(server.pid) - cpu0, time.process_time() - own0
                n = len(load.latencies)
                lat = sorted(load.latencies)
                p99 = lat[min(n - 1, int(n * 0.99))] * 1e3
                print(f"{clients:>7} {n:>8} {wall:>7.2f} {n / wall:>7.0f} {statistics.median(lat) * 1e3:>7.2f} "
                      f"{p99:>7.2f} {cpu / n * 1e6:>17.0f} {own / n * 1e6:>17.0f} {load.errors:>7}")


if __name__ == "__main__":
    main()
