"""Instructions the embedding executes per exchange, counted by valgrind's cachegrind (not timed).

    python benchmarks/embedding_instructions.py            # in process (about 15 minutes)
    python benchmarks/embedding_instructions.py --server   # uvicorn, bare app and observing (about 10)

On a shared machine CPU times of the same code move by 30-50% from run to run; instruction counts
do not. Each figure is the difference of two runs under ``valgrind --tool=cachegrind
--cache-sim=no`` (1,000 and 200 exchanges of ``bench_embedding.py``'s mix, after 400 of other
flows that warm up), divided by 800: start-up, imports, the mix's making and the schemas'
compiling cancel out. ``PYTHONHASHSEED=0``; every module is compiled to bytecode before the first
counted run (a run that compiles a module counts its compiling).

In process, the loop of ``bench_embedding.py`` (the app and the server's stand-ins hand over
messages made beforehand); ``bare`` is that harness around the app alone, ``stub`` replaces
``Validator.feed`` and ``Validator.predict`` by functions that return at once, leaving the
middleware's and the monitor's own work (and the harness's). ``--server``: one uvicorn server a
run (``bench_embedding.py --serve``, no handler cost), fed by its raw HTTP/1.1 client; the whole
server process is counted.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_embedding as bench  # noqa: E402

SMALL, LARGE = 200, 1000
CASES = (
    ("bare", "observe", False),
    ("asgi", "observe", False),
    ("asgi", "observe", True),
    ("asgi", "enforce", False),
    ("asgi", "enforce", True),
    ("wsgi", "observe", False),
    ("feed", "observe", False),
)


def loop(kind: str, mode: str, n: int, stub: bool) -> None:
    """Run ``n`` exchanges of the mix (after the warm-up) through one middleware (or the validator)."""
    if stub:
        from fsm import Prediction, pipeline

        answer = Prediction("stub", True)
        pipeline.Validator.feed = lambda self, record, **_: []  # type: ignore[method-assign]
        pipeline.Validator.predict = lambda self, *_, **__: answer  # type: ignore[method-assign]
    from fsm import Validator
    from fsm.middleware import ASGIMiddleware, WSGIMiddleware

    warm = bench.request_mix(bench.WARM, seed=2)
    records = warm + bench.request_mix(2000)
    n += len(warm)
    if kind == "feed":
        v = Validator()
        for r in records[:n]:
            v.feed(r)
        return
    current = [0]
    answers = []
    for r in records:
        status, body = r["response"]["status"], json.dumps(r["response"].get("body")).encode()
        answers.append((status, body))

    async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
        status, body = answers[current[0]]
        await receive()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def wsgi_app(environ: Any, start_response: Any) -> list[bytes]:
        environ["wsgi.input"].read()
        status, body = answers[current[0]]
        start_response(f"{status} X", [("Content-Type", "application/json")])
        return [body]

    async def send(message: Any) -> None:
        return None

    mw: Any = asgi_app
    if kind == "asgi":
        mw = ASGIMiddleware(asgi_app, mode=mode)
    elif kind == "wsgi":
        mw = WSGIMiddleware(wsgi_app, mode=mode)
    calls = []
    for r in records:  # (made before, all of them: the same work in both runs, whatever n)
        q = r["request"]
        body = json.dumps(q["body"]).encode() if "body" in q else b""
        headers = {k.lower(): v for k, v in q.get("headers", {}).items()}
        calls.append((q["method"], q["path"], headers, body))
    for i, (method, path, headers, body) in enumerate(calls[:n]):
        current[0] = i
        if kind == "wsgi":
            environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "",
                       "CONTENT_LENGTH": str(len(body)), "wsgi.input": io.BytesIO(body),
                       **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}}  # fmt: skip
            result = mw(environ, lambda s, h, e=None: None)
            for _ in result:
                pass
            result.close()
            continue
        scope = {"type": "http", "method": method, "path": path, "query_string": b"",
                 "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}  # fmt: skip

        async def receive(body: bytes = body) -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        coro = mw(scope, receive, send)
        with contextlib.suppress(StopIteration):  # (nothing awaits I/O: one step runs it through)
            coro.send(None)
    if kind != "bare":
        stats = mw.monitor.stats()
        if stats["findings"] or stats["internal_errors"]:
            raise SystemExit(f"the mix should cause no findings and no errors: {stats}")


def summary(out: Path) -> int:
    """The instructions a cachegrind output file counts."""
    for line in out.read_text().splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise RuntimeError(f"no summary in {out}")


def counted(args: list[str], out: Path, env: dict[str, str] | None = None) -> int:
    """Instructions a command executes under cachegrind (its whole process)."""
    subprocess.run(
        ["valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={out}", *args],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env or {**os.environ, "PYTHONHASHSEED": "0"},
    )
    return summary(out)


def in_process(tmp: Path) -> None:
    me = [sys.executable, __file__, "--loop"]
    subprocess.run([*me, "asgi", "enforce", "10", "0"], check=True)  # (every module compiled first)
    print(f"instructions per exchange ({LARGE} minus {SMALL} exchanges, after {bench.WARM} of warm-up)")
    for kind, mode, stub in CASES:
        small, large = (
            counted([*me, kind, mode, str(n), str(int(stub))], tmp / f"{kind}.{n}") for n in (SMALL, LARGE)
        )
        what = f"{kind} {mode if kind in ('asgi', 'wsgi') else ''}{' (validator stubbed)' if stub else ''}"
        print(f"{what:40} {(large - small) / (LARGE - SMALL):10,.0f}", flush=True)


def server(tmp: Path, middleware: bool, requests: int) -> int:
    """Instructions one uvicorn server executes for ``WARM + requests`` requests (its whole life)."""
    log = tmp / f"log.{requests}.jsonl"
    records = bench.request_mix(bench.WARM, seed=2) + bench.request_mix(requests)
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    port, out, told = bench._port(), tmp / f"server.{int(middleware)}.{requests}", tmp / "told.json"
    me = [sys.executable, str(HERE / "bench_embedding.py")]
    cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no", f"--cachegrind-out-file={out}"]
    cmd += [*me, "--serve", str(port), str(int(middleware)), "0", str(log), str(told)]
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONHASHSEED": "0"})
    try:
        url = bench.wait_for(port, proc, 900)
        subprocess.run(
            [*me, "--load", url, str(log), "0", str(bench.WARM)], check=True, stdout=subprocess.DEVNULL
        )
        subprocess.run(
            [*me, "--load", url, str(log), str(bench.WARM), str(requests)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    finally:
        proc.terminate()
        proc.wait(300)
    if middleware:
        stats = json.loads(told.read_text())["stats"]
        if stats["findings"] or stats["exchanges"] != bench.WARM + requests:
            raise SystemExit(f"the server's monitor should judge every request, with no findings: {stats}")
    return summary(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--server", action="store_true", help="count a uvicorn server's instructions instead")
    p.add_argument("--loop", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.loop:
        kind, mode, n, stub = args.loop
        loop(kind, mode, int(n), stub == "1")
        return
    with tempfile.TemporaryDirectory() as tmp:
        if not args.server:
            in_process(Path(tmp))
            return
        print(
            f"instructions per request of a uvicorn server ({LARGE} minus {SMALL} requests, "
            f"after {bench.WARM} of warm-up)"
        )
        for middleware in (False, True):
            small, large = (server(Path(tmp), middleware, n) for n in (SMALL, LARGE))
            what = "observing middleware" if middleware else "bare app"
            print(f"{what:40} {(large - small) / (LARGE - SMALL):10,.0f}", flush=True)


if __name__ == "__main__":
    main()
