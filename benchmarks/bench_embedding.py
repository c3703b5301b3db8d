"""The middleware's own cost per exchange, and its effect on a real server's throughput.

    python benchmarks/bench_embedding.py --exchanges 5000 --requests 1500

1. In process (``pure``): a fixed request mix (``fsm.generate`` flows, their answers' times moved to
   now) goes through ``ASGIMiddleware`` (observe, then enforce) and ``WSGIMiddleware`` (observe)
   around an app that answers each request with its recorded response, its messages made beforehand:
   the app and the server's stand-ins do nothing but hand them over, so the whole call is the
   middleware's own time per exchange (its ``receive``/``send``/``wsgi.input``/``start_response``
   wrappers included; the app's own share is well under a microsecond), wall
   time (``perf_counter_ns``) and CPU time (``thread_time_ns``) side by side; median and p99 in
   microseconds. The ASGI app is driven without an event loop (nothing in it awaits I/O), so the
   figure is the middleware's and the validator's, not asyncio's. Target (pure build): median under
   25 us, p99 under 60 us.

2. End to end (``--requests N``; 0 skips it): uvicorn serves the same replaying app, once bare and once
   in ``ASGIMiddleware`` (observe), with a handler that burns about 1 ms of CPU, and once more each
   with no handler cost ("bare app" figures); a client process sends the request mix (each request
   once, each answered with its own recorded answer) over 4 keep-alive connections, whole flows at a
   time so that every flow reaches the server in its order (as in process: the mix causes no
   findings, and the monitor's counts are printed to show it), with a raw HTTP/1.1 client so that
   the server is what is measured, after 400 requests of other flows that warm the server up. The
   log's times start when each server starts, so no voucher has expired by the wall clock the
   monitor stamps exchanges with. Throughput is requests per
   second of wall time, beside the server's CPU time per request (user + system, from /proc,
   steadier than throughput on a shared machine); the four servers run in one invocation, one after
   the other. Target: under 5% drop with the 1 ms handler.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def request_mix(exchanges: int, seed: int = 1) -> list[dict[str, Any]]:
    """``exchanges`` records of whole generated flows, starting now so that nothing has expired."""
    from fsm.generate import generate

    flows = generate(exchanges // 8 + 10, seed=seed, partial=False, start=datetime.now(UTC))
    return list(itertools.islice(flows, exchanges))


def _percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


# --------------------------------------------------------------------------- in process
def in_process(records: list[dict[str, Any]], mode: str, kind: str) -> dict[str, float]:
    """Per-exchange cost of the middleware alone (µs), wall and CPU, median and p99."""
    from fsm.middleware import ASGIMiddleware, WSGIMiddleware

    starts, bodies, wsgi_answers = [], [], []
    for r in records:  # (made beforehand: the app only hands over what it is given)
        status, body = r["response"]["status"], json.dumps(r["response"].get("body")).encode()
        headers = [(b"content-type", b"application/json")]
        starts.append({"type": "http.response.start", "status": status, "headers": headers})
        bodies.append({"type": "http.response.body", "body": body})
        wsgi_answers.append((f"{status} X", [("Content-Type", "application/json")], [body]))
    current = [0]

    async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send(starts[current[0]])
        await send(bodies[current[0]])

    def wsgi_app(environ: Any, start_response: Any) -> list[bytes]:
        environ["wsgi.input"].read()
        status, headers, body = wsgi_answers[current[0]]
        start_response(status, headers)
        return body

    import io

    mw: Any = ASGIMiddleware(asgi_app, mode=mode) if kind == "asgi" else WSGIMiddleware(wsgi_app, mode=mode)
    calls = []
    for r in records:
        q = r["request"]
        body = json.dumps(q["body"]).encode() if "body" in q else b""
        headers = {k.lower(): v for k, v in q.get("headers", {}).items()}
        calls.append((q["method"], q["path"], headers, body))
    wall: list[float] = []
    cpu: list[float] = []
    for n, (method, path, headers, body) in enumerate(calls):
        current[0] = n
        if kind == "asgi":
            scope = {"type": "http", "method": method, "path": path, "query_string": b"",
                     "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}  # fmt: skip

            async def receive(body: bytes = body) -> dict[str, Any]:
                return {"type": "http.request", "body": body, "more_body": False}

            async def send(message: Any) -> None:
                return None

            w, c = time.perf_counter_ns(), time.thread_time_ns()
            coro = mw(scope, receive, send)
            with contextlib.suppress(StopIteration):  # (nothing awaits I/O: one step runs it through)
                coro.send(None)
            w, c = time.perf_counter_ns() - w, time.thread_time_ns() - c
        else:
            environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "",
                       "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
                       **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}}  # fmt: skip
            w, c = time.perf_counter_ns(), time.thread_time_ns()
            result = mw(environ, lambda s, h, e=None: None)
            for _ in result:
                pass
            result.close()
            w, c = time.perf_counter_ns() - w, time.thread_time_ns() - c
        wall.append(w / 1000)
        cpu.append(c / 1000)
    stats = mw.monitor.stats()
    assert stats["internal_errors"] == 0, stats
    assert stats["exchanges"] == len(records), stats
    warm = len(wall) // 10  # the first tenth warms caches up
    (wm, wp), (cm, cp) = _percentiles(wall[warm:]), _percentiles(cpu[warm:])
    mean = statistics.fmean(cpu[warm:])  # (with the collector's passes, which the median leaves out)
    return {"wall_median": wm, "wall_p99": wp, "cpu_median": cm, "cpu_p99": cp, "cpu_mean": mean}


def feed_alone(records: list[dict[str, Any]]) -> dict[str, float]:
    """The same records fed straight to a Validator (the part of the cost that is the validator's)."""
    from fsm import Validator

    v = Validator()
    cpu = []
    for r in records:
        c = time.thread_time_ns()
        v.feed(r)
        cpu.append((time.thread_time_ns() - c) / 1000)
    warm = len(cpu) // 10
    median, p99 = _percentiles(cpu[warm:])
    return {"cpu_median": median, "cpu_p99": p99, "cpu_mean": statistics.fmean(cpu[warm:])}


# --------------------------------------------------------------------------- end to end
WARM = 400  # warm-up requests (other flows) before the timed ones: schemas compile, caches fill


def flows_of(records: list[dict[str, Any]]) -> list[list[int]]:
    """The indexes of ``records`` cut into whole flows (each ends with its context's close)."""
    flows: list[list[int]] = [[]]
    for n, r in enumerate(records):
        flows[-1].append(n)
        if r["request"]["path"].endswith("/context-close"):
            flows.append([])
    return [f for f in flows if f]


def serve_app(port: int, middleware: bool, handler_ms: float, log: str, told: str) -> None:
    """Run one uvicorn server (in a child process); on SIGTERM, write its monitor's counts to ``told``."""
    import signal

    import uvicorn

    records = [json.loads(line) for line in Path(log).read_text().splitlines()]
    answers = [(r["response"]["status"], json.dumps(r["response"].get("body")).encode()) for r in records]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        index = int(dict(scope["headers"]).get(b"x-bench-index", b"0"))
        if handler_ms:
            until = time.thread_time() + handler_ms / 1000
            while time.thread_time() < until:
                pass
        status, body = answers[index]
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    served: Any = app
    if middleware:
        from fsm.middleware import ASGIMiddleware

        served = ASGIMiddleware(app)

    def stop(*_: Any) -> None:  # (uvicorn re-raises the SIGTERM it caught once it has shut down)
        mon = served.monitor if middleware else None
        out = {"stats": mon.stats(), "by_rule": dict(mon.snapshot().by_rule)} if mon is not None else {}
        Path(told).write_text(json.dumps(out))
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    uvicorn.run(served, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def load(url: str, log: str, first: int, count: int) -> None:
    """Send the log's records ``first`` to ``first + count`` over 4 keep-alive connections; print req/s.

    Whole flows at a time: a connection takes the next flow and sends its calls in order, each after
    the answer to the one before, so the server sees every flow in its order, as a service's clients
    would make its calls (flows of different connections interleave). A raw HTTP/1.1 client (prepared
    request bytes, answers read by Content-Length): an ordinary client library costs more per
    request than the server measured, and would be the bottleneck.
    """
    import threading

    host, port = url.removeprefix("http://").split(":")
    records = [json.loads(line) for line in Path(log).read_text().splitlines()]
    prepared = []
    for n, r in enumerate(records):
        q = r["request"]
        body = json.dumps(q["body"]).encode() if "body" in q else b""
        head = f"{q['method']} {q['path']} HTTP/1.1\r\nhost: {host}\r\nx-bench-index: {n}\r\n"
        head += "".join(
            f"{k}: {v}\r\n"
            for k, v in q.get("headers", {}).items()
            if k.lower() not in ("host", "content-length", "connection", "transfer-encoding")
        )
        prepared.append((head + f"content-length: {len(body)}\r\n\r\n").encode() + body)
    flows = [[first + n for n in f] for f in flows_of(records[first : first + count])]
    flows.reverse()  # (popped from the end: the first flow first)
    lock = threading.Lock()

    def worker() -> None:
        with socket.create_connection((host, int(port))) as s:
            reader = s.makefile("rb")
            while True:
                with lock:
                    if not flows:
                        return
                    flow = flows.pop()
                for n in flow:
                    s.sendall(prepared[n])
                    length = 0
                    status = reader.readline().split(b" ", 2)
                    if len(status) < 2 or (status[1] == b"400" and b"Invalid" in status[-1]):
                        raise SystemExit(f"the server did not answer request {n} as HTTP: {status!r}")
                    while (line := reader.readline()) not in (b"\r\n", b""):
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    if len(reader.read(length)) != length:
                        raise SystemExit(f"the server closed the connection during request {n}")

    failures: list[BaseException] = []

    def guarded() -> None:
        try:
            worker()
        except BaseException as exc:  # (a thread's exception does not reach the caller by itself)
            failures.append(exc)

    start = time.perf_counter()
    threads = [threading.Thread(target=guarded) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise SystemExit(f"load failed: {failures[0]!r}")
    print(json.dumps({"rps": count / (time.perf_counter() - start)}))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(port: int, server: subprocess.Popen[bytes], seconds: float) -> str:
    """The server's URL once it answers on 127.0.0.1:``port`` (RuntimeError if it stops or is late)."""
    import httpx

    deadline = time.monotonic() + seconds
    while True:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
            return f"http://127.0.0.1:{port}"
        except httpx.TransportError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("the server did not start") from None
            time.sleep(0.1)


def end_to_end(tmp: Path, requests: int, handler_ms: float, middleware: bool) -> dict[str, Any]:
    """One server, warmed up, then timed over the mix: req/s, its CPU per request, its monitor's counts.

    The log (warm-up flows, then the mix) is made now, its times starting now, so that no voucher
    in it has expired by the wall clock the monitor stamps exchanges with; the server answers each
    request, warm-up and timed alike, with that request's own recorded answer.
    """
    log, told = tmp / "log.jsonl", tmp / "told.json"
    records = request_mix(WARM, seed=2) + request_mix(requests)
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    told.unlink(missing_ok=True)
    port = _port()
    me = [sys.executable, str(Path(__file__).resolve())]
    server = subprocess.Popen(
        [*me, "--serve", str(port), str(int(middleware)), str(handler_ms), str(log), str(told)], cwd=REPO
    )
    try:
        url = wait_for(port, server, 30)
        subprocess.run([*me, "--load", url, str(log), "0", str(WARM)], check=True, stdout=subprocess.DEVNULL)
        cpu = _cpu_seconds(server.pid)
        out = subprocess.run(
            [*me, "--load", url, str(log), str(WARM), str(requests)],
            capture_output=True,
            text=True,
            check=True,
        )
        used = _cpu_seconds(server.pid) - cpu
    finally:
        os.kill(server.pid, 15)
        server.wait(10)
    counts = json.loads(told.read_text()) if told.exists() else {}
    return {"rps": json.loads(out.stdout)["rps"], "cpu_us": used / requests * 1e6, **counts}


def soak(exchanges: int, every: int = 100_000, retain: float | None = -1.0) -> None:
    """Feed ``exchanges`` exchanges of ever-new flows through one Monitor; print the RSS as it goes.

    The memory issue's target: under 20 MB of growth per million exchanges after warm-up (finished
    entities forgotten after the monitor's retention time, live ones capped, D27). Beside the RSS,
    the rows of its spill file (finished entities on disk) and the file's size: flat once the
    retention time (``retain``; negative: the monitor's default, a day; None: keep all) has passed
    by the monitor's clock, which is the wall clock (it stamps each exchange when fed).
    """
    import resource

    from fsm.monitor import Captured, Monitor

    def rss_mb() -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    default = retain is not None and retain < 0
    monitor = Monitor(validator_options=None if default else {"retain_finished": retain})
    store = monitor.validator._stepper.store
    print(f"retention: {'none' if store.retain is None else f'{store.retain:g} s'} (by the wall clock)")
    fed, seed, marks = 0, 100, []
    start, wall = time.process_time(), time.perf_counter()
    while fed < exchanges:
        seed += 1
        for r in request_mix(2000, seed=seed):
            q, a = r["request"], r["response"]
            c = Captured(q["method"], q["path"], q.get("headers", {}), "", json.dumps(q.get("body")).encode()
                         if "body" in q else b"")  # fmt: skip
            c.status, c.resp_body = a["status"], json.dumps(a.get("body")).encode()
            monitor.feed(c)
            fed += 1
            if fed % every == 0:
                marks.append((fed, rss_mb()))
                cpu = time.process_time() - start
                spill = store.spill
                rows, size = (spill.rows, spill.file_bytes()) if spill is not None else (0, 0)
                print(
                    f"{fed:>10} exchanges  RSS {marks[-1][1]:7.1f} MB  spill {rows:>9,} rows "
                    f"{size / 2**20:7.1f} MB  forgotten {store.expired:>9,}  "
                    f"({cpu:.0f} s CPU, {time.perf_counter() - wall:.0f} s wall)"
                )
    if len(marks) >= 3:
        (n0, m0), (n1, m1) = marks[1], marks[-1]  # after the first mark (warm-up)
        print(f"growth after warm-up: {(m1 - m0) / (n1 - n0) * 1e6:.1f} MB per million exchanges")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--exchanges", type=int, default=5000, help="request mix size, in process")
    p.add_argument("--requests", type=int, default=1500, help="requests per server end to end (0: skip)")
    p.add_argument("--soak", type=int, default=0, help="feed N exchanges through one monitor, print RSS")
    p.add_argument(
        "--retain",
        default="default",
        help="the soak's retention time in seconds of wall clock ('none': keep all; default: the monitor's)",
    )
    p.add_argument("--serve", nargs=5, help=argparse.SUPPRESS)
    p.add_argument("--load", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        port, middleware, handler_ms, log, told = args.serve
        serve_app(int(port), middleware == "1", float(handler_ms), log, told)
        return
    if args.load:
        load(args.load[0], args.load[1], int(args.load[2]), int(args.load[3]))
        return
    if args.soak:
        retain = {"default": -1.0, "none": None}[args.retain] if args.retain in ("default", "none") else None
        soak(args.soak, retain=float(args.retain) if retain is None and args.retain != "none" else retain)
        return
    from fsm._version import __version__

    compiled = any(p.suffix == ".so" for p in Path(__import__("fsm").__file__).parent.rglob("*.so"))
    print(f"voucher-fsm {__version__} ({'compiled' if compiled else 'pure'} build), {os.cpu_count()} cores")
    records = request_mix(args.exchanges)
    print(
        f"\nin process: the middleware's own cost per exchange, {len(records)} exchanges "
        "(the first tenth warms up)"
    )
    print(
        f"{'':22} {'wall median':>12} {'wall p99':>9} {'CPU median':>11} {'CPU p99':>8} {'CPU mean':>9}  (µs)"
    )
    for kind, mode in (("asgi", "observe"), ("asgi", "enforce"), ("wsgi", "observe")):
        r = in_process(records, mode, kind)
        print(
            f"{kind.upper()} {mode:17} {r['wall_median']:12.1f} {r['wall_p99']:9.1f} "
            f"{r['cpu_median']:11.1f} {r['cpu_p99']:8.1f} {r['cpu_mean']:9.1f}"
        )
    r = feed_alone(records)
    print(
        f"{'(Validator.feed alone)':22} {'':22} "
        f"{r['cpu_median']:11.1f} {r['cpu_p99']:8.1f} {r['cpu_mean']:9.1f}"
    )
    if not args.requests:
        return
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print(
            f"\nend to end under uvicorn: {args.requests} requests per server (after {WARM} of other flows), "
            "whole flows over 4 client connections"
        )
        for handler_ms in (1.0, 0.0):
            bare = end_to_end(Path(tmp), args.requests, handler_ms, False)
            with_mw = end_to_end(Path(tmp), args.requests, handler_ms, True)
            drop = 100 * (1 - with_mw["rps"] / bare["rps"])
            what = "handler ~1 ms CPU" if handler_ms else "bare app (no handler cost)"
            print(
                f"{what:28} without {bare['rps']:6.0f} req/s ({bare['cpu_us']:5.0f} µs CPU/req)   "
                f"with observe {with_mw['rps']:6.0f} req/s ({with_mw['cpu_us']:5.0f} µs CPU/req)   "
                f"drop {drop:5.1f}%"
            )
            stats = with_mw.get("stats", {})
            print(
                f"{'':28} (the middleware's monitor: {stats.get('exchanges', '?')} exchanges, "
                f"{stats.get('findings', '?')} findings {with_mw.get('by_rule', {})}, "
                f"{stats.get('internal_errors', '?')} internal errors)"
            )


if __name__ == "__main__":
    main()
