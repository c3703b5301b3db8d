"""Load on the sandbox (``voucher-fsm serve``): server CPU per request, requests/s and p99 latency.

    python benchmarks/bench_sandbox.py --clients 1,10,50 --requests 6000 --seconds 10

The server runs in a process of its own (uvicorn with uvloop and httptools on 127.0.0.1, a free port);
the load comes from other processes on loopback. Two loads, each at every ``--clients`` level:

- ``flows``: whole two-voucher sessions, over and over (sign-in, context-open, payee sign-in,
  session-open, join, then two vouchers reserved, redeemed, polled three times and resolved, then
  session-close: 18 requests a session), each client on its own keep-alive connection. The clients
  are a raw asyncio HTTP/1.1 client (uvloop): requests are pre-encoded bytes with the session's
  ids and tokens filled in; of an answer only the status line and Content-Length are read, and the
  body is parsed (orjson) only where the flow needs an id, a code or a token. So the load
  generator costs far less CPU a request than the server, and the server, not the generator, is
  measured. ``--load-procs K`` spreads the clients over K processes; ``--httpx`` plays the same
  sessions from async httpx clients instead (about 1-3 ms of its own CPU a request).
- ``wrk``: Debian's ``wrk`` polling one voucher (GET, the polling target), when installed.

Each load runs first against a baseline (the same uvicorn, uvloop and httptools answering every
call with one canned JSON body) in the same run: the sandbox's own cost is its figure minus the
baseline's, whatever else the machine is doing. Each level is bounded by ``--requests`` and
``--seconds``; the flows start after ``--warmup`` requests. ``--in-process N`` also plays N
sessions through ``Sandbox.handle`` in this process (no HTTP) and prints its CPU per request.

Printed per level: requests answered, wall seconds, requests/s, median and p99 latency (ms), the
server's CPU seconds (user + system, from /proc/PID/stat) and per request in microseconds (the
figure least disturbed by other work on a shared machine), and the load generator's own CPU
(seconds and per request); the load average before and after. Targets (issue 17): under 300 us of
server CPU a request; 2,000 requests/s at 10 clients with p99 under 20 ms. ``--record`` makes the
server record (JSONL) as it answers. ``--compiled`` serves from the optional compiled (mypyc) build
of this checkout, made once (and again when the sources change) in a virtual environment under
``benchmarks/out/`` with the ``serve`` extra (a C compiler, about a minute); ``--python EXE`` serves
from another environment's install. The first line says which build served.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fsm.sandbox.serve import free_port, running  # noqa: E402

PREFIX = "/api/v1"
PAY = {
    "network": "polygon",
    "currency": "EURC",
    "currencyAddress": "0x73b3db5a96a4b9d9bcfc22b8f1b3d85a5e5b5e5b",
    "amount": "100",
    "wallet": {"address": "0x" + "2" * 40},
}
_TICK = os.sysconf("SC_CLK_TCK")
_CANNED = b'{"authorization": {"token": "t"}, "code": "ABC123", "id": "vch_1", "status": "OPEN"}'

Step = tuple[str, str, bytes | None, str, bool]
"""(method, path under the prefix, JSON body or None, bearer token or "", whether the answer is read)."""
Flow = Generator[Step, Any, None]
"""A session: yields its requests, is sent each answer's parsed body (None where it reads none)."""

_OPEN = orjson.dumps({"format": "alphanum", "payers": [{"address": "0x" + "1" * 40}]})
_REDEEM = orjson.dumps({"expectedPayment": PAY})
_RESOLVE = orjson.dumps({"receipts": [{"paymentId": "pay_1"}]})


def session(n: int) -> Flow:
    """One two-voucher session of user ``n``: 18 requests."""
    device = orjson.dumps(
        {"type": "mobile-device", "data": {"installationId": f"{n:040x}", "password": "p" * 40}}
    )
    payer = (yield ("POST", "/auth/sign-in", device, "", True))["authorization"]["token"]
    code = (yield ("POST", "/vouchers/contexts/context-open", _OPEN, payer, True))["code"]
    resource = orjson.dumps({"type": "resource", "data": {"resource": "voucher::context::code::" + code}})
    payee = (yield ("POST", "/auth/sign-in", resource, "", True))["authorization"]["token"]
    opened = orjson.dumps({"code": code, "type": "SESSION_DEFAULT"})
    sid = (yield ("POST", "/vouchers/sessions/session-open", opened, payee, True))["id"]
    yield ("POST", f"/vouchers/sessions/{sid}/session-join", b"{}", payer, False)
    for _ in range(2):
        vid = (yield ("POST", f"/vouchers/sessions/{sid}/reserve-voucher", b"{}", payee, True))["id"]
        yield ("POST", f"/vouchers/{vid}/redeem-voucher", _REDEEM, payee, False)
        for _ in range(3):
            yield ("GET", f"/vouchers/{vid}", None, payer, False)
        yield ("POST", f"/vouchers/{vid}/resolve-voucher", _RESOLVE, payer, False)
    yield ("POST", f"/vouchers/sessions/{sid}/session-close", b"{}", payee, False)


def advance(flow: Flow, answer: Any) -> Step | None:
    """The session's next request, given the answer to the last one (None: the session is over)."""
    try:
        return flow.send(answer)
    except StopIteration:
        return None


def headers_of(token: str, body: bytes | None) -> dict[str, str]:
    """The request headers a client sends: its token, and the type of a body."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    if body is not None:
        headers["content-type"] = "application/json"
    return headers


# ------------------------------------------------------------------ the cheap client
class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time; reads status, Content-Length, body."""

    def __init__(self, host: bytes) -> None:
        self.host = host
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.tokens: dict[str, bytes] = {"": b""}  # token -> its encoded header line

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            self.buf = buf
            return
        head = buf[:end].lower() + b"\r\n"
        at = head.find(b"\r\ncontent-length:")
        size = int(head[at + 17 : head.find(b"\r\n", at + 17)]) if at >= 0 else 0
        if len(buf) < end + 4 + size:
            self.buf = buf
            return
        self.buf = buf[end + 4 + size :]
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((int(buf[9:12]), buf[end + 4 : end + 4 + size]))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("the server closed the connection"))

    def request(
        self, method: str, path: str, body: bytes | None, token: str
    ) -> asyncio.Future[tuple[int, bytes]]:
        """Send one request; the future gives (status, body)."""
        auth = self.tokens.get(token)
        if auth is None:
            auth = self.tokens[token] = b"authorization: Bearer " + token.encode() + b"\r\n"
        line = b"%s %s HTTP/1.1\r\nhost: %s\r\n%s" % (
            method.encode(),
            (PREFIX + path).encode(),
            self.host,
            auth,
        )
        if body is not None:
            line += b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
        else:
            line += b"\r\n"
        self.waiter = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(line)
        return self.waiter


@dataclass
class Tally:
    """Answers counted until the budget of requests or seconds is spent."""

    left: int
    deadline: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0

    def more(self) -> bool:
        return self.left > 0 and time.monotonic() < self.deadline


Ask = Callable[[str, str, bytes | None, str, bool], Awaitable[tuple[int, Any]]]
"""One request on a client's connection: (status, the parsed body where the flow reads it, else None)."""


@contextlib.asynccontextmanager
async def raw_client(host: str, port: int) -> AsyncIterator[Ask]:
    """The cheap client: one :class:`Connection`."""
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(lambda: Connection(host.encode()), host, port)

    async def ask(method: str, path: str, body: bytes | None, token: str, want: bool) -> tuple[int, Any]:
        status, raw = await conn.request(method, path, body, token)
        return status, orjson.loads(raw) if want else None

    try:
        yield ask
    finally:
        if conn.transport is not None:
            conn.transport.close()


@contextlib.asynccontextmanager
async def httpx_client(host: str, port: int) -> AsyncIterator[Ask]:
    """The costly client: one async httpx client (its own keep-alive connection)."""
    import httpx

    async with httpx.AsyncClient(base_url=f"http://{host}:{port}{PREFIX}", timeout=30) as client:

        async def ask(method: str, path: str, body: bytes | None, token: str, want: bool) -> tuple[int, Any]:
            r = await client.request(method, path, content=body, headers=headers_of(token, body))
            return r.status_code, r.json() if want else None

        yield ask


async def _clients(
    client: Callable[[str, int], contextlib.AbstractAsyncContextManager[Ask]],
    host: str,
    port: int,
    clients: int,
    tally: Tally,
    first: int,
) -> None:
    clock = time.perf_counter
    lat = tally.latencies

    async def worker(k: int) -> None:
        async with client(host, port) as ask:
            n = first + k * 1_000_000
            while tally.more():
                flow = session(n)
                step = next(flow)
                while step is not None:
                    start = clock()
                    status, answer = await ask(*step)
                    lat.append(clock() - start)
                    tally.left -= 1
                    if status != 200:
                        tally.errors += 1
                    step = advance(flow, answer)
                n += 1

    await asyncio.gather(*(worker(k) for k in range(clients)))


def load_process(
    host: str, port: int, clients: int, requests: int, seconds: float, first: int, use_httpx: bool
) -> tuple[list[float], int, float, float, float]:
    """One load process: (latencies, non-200 answers, its CPU seconds, its first and last instant)."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    tally = Tally(requests, time.monotonic() + seconds)
    cpu0, start = time.process_time(), time.monotonic()
    asyncio.run(_clients(httpx_client if use_httpx else raw_client, host, port, clients, tally, first))
    return tally.latencies, tally.errors, time.process_time() - cpu0, start, time.monotonic()


@dataclass
class Level:
    """What one level measured, across its load processes."""

    latencies: list[float]
    errors: int
    load_cpu: float
    wall: float


def run_load(
    url: str, clients: int, requests: int, seconds: float, first: int, procs: int, use_httpx: bool
) -> Level:
    """Sessions from ``clients`` clients spread over ``procs`` processes (each its share of the budget)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    procs = max(1, min(procs, clients))
    shares = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    jobs = [
        (host, int(port), share, requests * share // clients, seconds, first + i * 10_000_000, use_httpx)
        for i, share in enumerate(shares)
    ]
    with multiprocessing.get_context("spawn").Pool(procs) as pool:
        results = pool.starmap_async(load_process, jobs).get(timeout=seconds + 60)  # (a stuck client)
    latencies = [x for r in results for x in r[0]]
    return Level(
        latencies,
        sum(r[1] for r in results),
        sum(r[2] for r in results),
        max(r[4] for r in results) - min(r[3] for r in results),
    )


# ------------------------------------------------------------------ servers
async def baseline_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
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
            "--no-proxy-headers",  # (as voucher-fsm serve)
        ],
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(400):
            try:
                with urllib.request.urlopen(url + "/", timeout=1):
                    break
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def load_average() -> str:
    """The 1-minute load average (the machine may be shared)."""
    return Path("/proc/loadavg").read_text().split()[0]


# ------------------------------------------------------------------ levels
HEAD = (
    f"{'server':>8} {'load':>6} {'clients':>7} {'requests':>8} {'wall s':>7} {'req/s':>7} {'p50 ms':>7} "
    f"{'p99 ms':>7} {'srv CPU s':>9} {'srv us/req':>10} {'load CPU s':>10} {'load us/req':>11} "
    f"{'non-200':>7} {'loadavg':>7}"
)


def _row(
    name: str,
    load: str,
    clients: int,
    n: int,
    wall: float,
    rps: float,
    p50: str,
    p99: float,
    cpu: float,
    load_cpu: str,
    load_per: str,
    errors: str,
) -> None:
    print(
        f"{name:>8} {load:>6} {clients:>7} {n:>8} {wall:>7.2f} {rps:>7.0f} {p50:>7} {p99:>7.2f} "
        f"{cpu:>9.2f} {cpu / max(n, 1) * 1e6:>10.0f} {load_cpu:>10} {load_per:>11} {errors:>7} "
        f"{load_average():>7}",
        flush=True,
    )


def flows(name: str, url: str, pid: int, args: argparse.Namespace) -> None:
    """The session mix at each concurrency level (after a warm-up)."""
    run_load(url, 4, args.warmup, 30, 900_000_000, 1, args.httpx)
    for i, clients in enumerate(int(c) for c in args.clients.split(",")):
        cpu0 = cpu_seconds(pid)
        level = run_load(
            url, clients, args.requests, args.seconds, i * 100_000_000, args.load_procs, args.httpx
        )
        cpu = cpu_seconds(pid) - cpu0
        lat = sorted(level.latencies)
        n = len(lat)
        p50, p99 = lat[n // 2] * 1e3, lat[min(n - 1, int(n * 0.99))] * 1e3
        _row(
            name,
            "httpx" if args.httpx else "flows",
            clients,
            n,
            level.wall,
            n / level.wall,
            f"{p50:.2f}",
            p99,
            cpu,
            f"{level.load_cpu:.2f}",
            f"{level.load_cpu / n * 1e6:.0f}",
            str(level.errors),
        )


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


def polls(name: str, url: str, pid: int, args: argparse.Namespace, path: str, token: str) -> None:
    """GET ``path`` (a voucher: the polling target) from Debian's wrk, at each concurrency level."""
    for clients in (int(c) for c in args.clients.split(",")):
        cpu0 = cpu_seconds(pid)
        n, rps, p99 = wrk(url, path, token, clients, args.seconds)
        cpu = cpu_seconds(pid) - cpu0
        _row(name, "wrk", clients, n, n / rps, rps, "", p99, cpu, "(wrk)", "", "")


def one_voucher(url: str) -> tuple[str, str]:
    """A payer's token and the path of a voucher reserved in its context (plain urllib)."""

    def call(path: str, body: dict[str, Any], token: str = "") -> Any:
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        req = urllib.request.Request(url + PREFIX + path, orjson.dumps(body), headers, method="POST")
        with urllib.request.urlopen(req, timeout=30) as r:
            return orjson.loads(r.read())

    device = {"installationId": "f" * 40, "password": "p" * 40}
    token = call("/auth/sign-in", {"type": "mobile-device", "data": device})["authorization"]["token"]
    ctx = call("/vouchers/contexts/context-open", orjson.loads(_OPEN), token)
    v = call("/vouchers/reserve-voucher", {"code": ctx["code"]}, token)
    return token, f"{PREFIX}/vouchers/{v['id']}"


def in_process(sessions: int) -> None:
    """Play ``sessions`` sessions through ``Sandbox.handle`` (no HTTP) and print CPU a request."""
    import gc

    from fsm.sandbox import Sandbox

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)  # (as voucher-fsm serve)
    sandbox = Sandbox(seed=1)

    def play(count: int, first: int) -> int:
        done = 0
        for n in range(first, first + count):
            flow = session(n)
            step = next(flow)
            while step is not None:
                method, path, body, token, want = step
                status, out, _ = sandbox.handle(
                    method, PREFIX + path, {}, headers_of(token, body), body or b""
                )
                done += 1
                if status != 200:
                    raise SystemExit(f"in-process: {method} {path} answered {status}: {out}")
                step = advance(flow, orjson.loads(orjson.dumps(out)) if want else None)
        return done

    play(max(10, sessions // 10), 800_000_000)  # (warm-up)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    n = play(sessions, 0)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(
        f"in-process Sandbox.handle: {n} requests ({sessions} sessions), {cpu:.2f} s CPU in "
        f"{wall:.2f} s wall: {cpu / n * 1e6:.0f} us CPU a request (load average {load_average()})",
        flush=True,
    )


def build_of(python: str) -> str:
    """Which build of voucher-fsm ``python`` imports: compiled (mypyc) or pure Python."""
    probe = "import fsm.pipeline as p; print(p.__file__)"
    where = subprocess.run([python, "-P", "-c", probe], capture_output=True, text=True, check=True).stdout
    return "pure Python" if where.strip().endswith(".py") else "compiled (mypyc)"


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--clients", default="1,10,50", help="Concurrency levels, comma-separated.")
    ap.add_argument("--requests", type=int, default=6000, help="Requests a level (at most).")
    ap.add_argument("--seconds", type=float, default=10.0, help="Seconds a level (at most).")
    ap.add_argument("--warmup", type=int, default=300, help="Requests before the first level (not measured).")
    ap.add_argument(
        "--load-procs", type=int, default=1, help="Processes the session clients are spread over."
    )
    ap.add_argument(
        "--httpx", action="store_true", help="Sessions from async httpx clients (costly) instead."
    )
    ap.add_argument("--no-wrk", action="store_true", help="Skip the wrk polling load.")
    ap.add_argument("--no-flows", action="store_true", help="Skip the session mix.")
    ap.add_argument(
        "--in-process", type=int, default=0, metavar="N", help="Also N sessions via Sandbox.handle."
    )
    ap.add_argument("--record", action="store_true", help="The server records what it serves (JSONL).")
    ap.add_argument(
        "--no-baseline", action="store_true", help="Skip the canned-answer app on the same uvicorn."
    )
    ap.add_argument(
        "--compiled",
        action="store_true",
        help="Serve from the compiled (mypyc) build.",
    )
    ap.add_argument("--python", metavar="EXE", help="Serve from this interpreter's install of voucher-fsm.")
    args = ap.parse_args()
    if args.compiled:
        from bench_validate import compiled_python

        args.python = compiled_python("serve")
    has_wrk = shutil.which("wrk") is not None and not args.no_wrk
    revision = subprocess.run(
        ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    served = "" if args.python is None else " (the script's; --python serves that install's sources)"
    print(f"revision {revision or '?'}{served}, load average {load_average()} on {os.cpu_count()} cores")
    print(f"the sandbox served by {args.python or sys.executable}: {build_of(args.python or sys.executable)}")
    if args.in_process:
        in_process(args.in_process)
    print(HEAD)
    if not args.no_baseline:
        with baseline() as (url, pid):
            if not args.no_flows:
                flows("baseline", url, pid, args)
            if has_wrk:
                polls("baseline", url, pid, args, PREFIX + "/vouchers/vch_1", "t")
    with tempfile.TemporaryDirectory() as tmp:
        record = Path(tmp) / "bench.jsonl" if args.record else None
        with running(seed=1, record=record, python=args.python) as server:
            if not args.no_flows:
                flows("sandbox", server.url, server.pid, args)
            if has_wrk:
                token, path = one_voucher(server.url)
                polls("sandbox", server.url, server.pid, args, path, token)
    if shutil.which("wrk") is None:
        print("(Debian's wrk is not installed: apt-get install -y wrk adds the polling figures)")
    print(f"load average at the end {load_average()}")


if __name__ == "__main__":
    main()
