"""Memory of the CLI at any log length (issue 16, D27).

Peak RSS, its slope per million exchanges, bytes per live entity, and the time the spilling of
finished entities costs:

    python benchmarks/bench_memory.py --sizes 1000000,3000000            # the slopes
    python benchmarks/bench_memory.py --sizes 10000000 --formats text --modes 1  # the 10M peak
    python benchmarks/bench_memory.py --live 100000,1000000               # bytes per live entity

The log is never kept: a generator process (:func:`fsm.generate.generate`, every flow finished)
writes it into a named pipe that ``voucher-fsm validate PIPE -o /dev/null`` reads, run in a fresh
child process per measurement so that its peak is its own (``--parallel``: plus the peak of the
worker process it forks, shared pages counted twice: an upper bound). Each run prints wall and CPU
seconds (user + system, the worker's too) and the seconds spent in the spill (writing finished
entities to disk and reading them back). ``--spill-off`` runs (finished entities all in RAM) of
the same sizes, in the same session, give the spilling's time cost as a ratio.

``--live N`` feeds sessions whose vouchers are reserved and redeemed with a payment, never resolved
(the heavy live entity: a payment recorded, two exchanges remembered), 20 a session, until N
entities are live, with no cap, and divides what ``tracemalloc`` counts after the run (less before)
by the live entities.

Targets: peak under 300 MB at 10M exchanges, slope under 20 MB per million, under 1 KB per live
entity. ``--compiled`` measures the mypyc build (made as ``bench_validate.py --compiled`` makes it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def generate_into(path: str, exchanges: int, seed: int) -> None:
    """Write ``exchanges`` generated exchanges (every flow finished) into ``path`` (a pipe)."""
    from fsm.generate import generate

    n = 0
    with open(path, "wb", buffering=1 << 20) as fh:
        for record in generate(exchanges // 10 + 10, seed=seed, partial=False):
            fh.write(orjson.dumps(record) + b"\n")
            n += 1
            if n >= exchanges:
                break


def validate_child(pipe: str, fmt: str, two: bool, spill: bool) -> None:
    """Run the CLI over ``pipe`` in this process; print one JSON line of figures."""
    import fsm._spill
    import fsm.pipeline
    import fsm.stepper
    from fsm.cli import cli

    spills: list[fsm._spill.Spill] = []
    made = fsm._spill.Spill.__init__

    def keep(self: fsm._spill.Spill, timed: bool = False) -> None:
        made(self, timed)
        spills.append(self)

    fsm._spill.Spill.__init__ = keep  # type: ignore[method-assign]  # (to read its seconds)
    samples: dict[int, float] = {}  # exchanges read -> peak so far (MB), this process and its worker
    feed_file = fsm.pipeline.Validator.feed_file

    def sampled(self: Any, path: str, **kwargs: Any) -> None:
        def progress(n: int, fraction: float | None) -> None:
            if n % 1_000_000 < 4096:
                samples[n - n % 1_000_000] = _peaks_mb()

        feed_file(self, path, **{**kwargs, "on_progress": progress})
        samples[-1] = _peaks_mb()  # (the end of the reading, before the report is written)

    fsm.pipeline.Validator.feed_file = sampled  # type: ignore[method-assign]  # (peaks at each million)
    if not spill:
        fsm.pipeline.FINISHED_IN_RAM = 0  # type: ignore[attr-defined]  # (all finished entities in RAM)
    args = ["validate", pipe, "--format", fmt, "-o", os.devnull, "--no-progress"]
    args.append("--parallel" if two else "--no-parallel")
    start, cpu = time.perf_counter(), os.times()
    try:
        cli.main(args, standalone_mode=False)
    except SystemExit as exit_:
        code = exit_.code
    else:
        code = 0
    wall = time.perf_counter() - start
    end = os.times()
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss if two else 0
    print(
        json.dumps(
            {
                "exit": code,
                "wall": wall,
                "cpu": (end.user - cpu.user) + (end.system - cpu.system),
                "cpu_worker": (end.children_user - cpu.children_user)
                + (end.children_system - cpu.children_system),
                "peak_mb": (own + worker) / 1024,
                "spill_s": sum(s.seconds for s in spills),
                "spilled": sum(s.keys for s in spills),
                "build": "compiled (mypyc)" if not fsm.stepper.__file__.endswith(".py") else "pure Python",
                "samples": samples,
            }
        )
    )


def _peaks_mb() -> float:
    """The peak RSS (VmHWM) of this process and of its children now, in MB."""
    me = os.getpid()
    pids = [me]
    try:
        with open(f"/proc/{me}/task/{me}/children") as fh:
            pids += [int(p) for p in fh.read().split()]
    except OSError:
        pass
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as fh:
                total += next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
        except (OSError, StopIteration):
            pass
    return total / 1024


def generate_live_into(path: str, target: int) -> None:
    """Sessions of 20 vouchers reserved and redeemed, never resolved, until ``target`` are live."""
    from fsm.generate import TrafficBuilder

    b = TrafficBuilder(11)
    live = 0
    with open(path, "wb", buffering=1 << 20) as fh:
        while live < target:
            o = b.open_session()
            records = o.records
            for _ in range(20):
                voucher, rec = b.session_reserve(o.payee, o.session)
                records += [rec, b.redeem_simple(o.payee, voucher, "EURC", "5")]
            fh.write(b"".join(orjson.dumps(r) + b"\n" for r in records))
            live += 22


def live_child(pipe: str) -> None:
    """Bytes per live entity (tracemalloc) after reading ``pipe``; print one JSON line."""
    import gc
    import tracemalloc

    from fsm.pipeline import Validator

    v = Validator(max_live=0)
    v.feed({"request": {"method": "GET", "path": "/api/v1/finance/currencies"}, "response": {"status": 200}})
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    start, cpu = time.perf_counter(), time.process_time()
    v.feed_file(pipe)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    store = v._stepper.store
    print(
        json.dumps(
            {
                "live": store.live,
                "bytes_per_live": (after - before) / store.live,
                "packed": sum(1 for e in store.entities.values() if e.packed is not None),
                "wall": time.perf_counter() - start,
                "cpu": time.process_time() - cpu,
            }
        )
    )


def _piped(command: list[str], generator: list[str]) -> dict[str, Any]:
    """Run ``command`` + [a pipe] while ``generator`` + [the pipe] writes into it; its JSON line."""
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        pipe = os.path.join(tmp, "log.jsonl")
        os.mkfifo(pipe)
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        gen = subprocess.Popen([sys.executable, __file__, *generator, pipe], env=env)
        out = subprocess.run([*command, pipe], capture_output=True, text=True, env=env)
        gen.wait()
    if out.returncode != 0:
        sys.exit(out.stderr)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run_validate(python: str, exchanges: int, fmt: str, two: bool, spill: bool, seed: int) -> dict[str, Any]:
    """One measurement: a generator process into a pipe, a validating child process reading it."""
    how = [fmt, "2" if two else "1", "spill" if spill else "ram"]
    return _piped([python, __file__, "--child", *how], ["--generate", str(exchanges), str(seed)])


def main() -> None:
    """Parse arguments, run the measurements, print the tables."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,300000", help="exchanges per log, comma-separated")
    ap.add_argument(
        "--formats", default="text,json,junit,sarif", help="report formats (--format), comma-separated"
    )
    ap.add_argument(
        "--modes",
        default="1,2",
        help="processes: 1 (--no-parallel), 2 (--parallel: a parse worker), comma-separated",
    )
    ap.add_argument(
        "--spill-off", action="store_true", help="also run each size in text, one process, all in RAM"
    )
    ap.add_argument(
        "--live", default="", help="live entities to measure bytes per live entity at, comma-separated"
    )
    ap.add_argument("--seed", type=int, default=1, help="the generator's seed")
    ap.add_argument(
        "--python", default=sys.executable, help="the interpreter to validate with (another install, say)"
    )
    ap.add_argument("--compiled", action="store_true", help="measure the compiled (mypyc) build")
    ap.add_argument("--generate", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--generate-live", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--live-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate:
        generate_into(args.generate[2], int(args.generate[0]), int(args.generate[1]))
        return
    if args.generate_live:
        generate_live_into(args.generate_live[1], int(args.generate_live[0]))
        return
    if args.child:
        fmt, procs, spill, pipe = args.child
        validate_child(pipe, fmt, procs == "2", spill == "spill")
        return
    if args.live_child:
        live_child(args.live_child)
        return
    if args.compiled:
        from bench_validate import compiled_python

        args.python = compiled_python()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print(f"# voucher-fsm memory benchmark  python {sys.version.split()[0]}  interpreter {args.python}")
    if sizes:
        print(
            "| exchanges | format | procs | spill | peak MB | wall s | CPU s (worker) | spill s | spilled |"
        )
        print("|---:|:---|---:|:---|---:|---:|---:|---:|---:|")
    peaks: dict[tuple[str, int, str], dict[int, float]] = {}
    cost: dict[int, dict[str, dict[str, Any]]] = {}
    build = ""
    for n in sizes:
        runs = [(fmt, int(m), True) for fmt in args.formats.split(",") for m in args.modes.split(",")]
        if args.spill_off:
            runs.append(("text", 1, False))
        for fmt, procs, spill in runs:
            print(
                f"\r  {n:,} {fmt} {procs} {'spill' if spill else 'ram'}   ",
                end="",
                file=sys.stderr,
                flush=True,
            )
            r = run_validate(args.python, n, fmt, procs == 2, spill, args.seed)
            label = "on" if spill else "off"
            peaks.setdefault((fmt, procs, label), {})[n] = r["peak_mb"]
            if fmt == "text" and procs == 1:
                cost.setdefault(n, {})[label] = r
            build = r["build"]
            marks = {int(k): v for k, v in r["samples"].items() if int(k) > 0}
            if "-1" in r["samples"]:
                marks[n] = r["samples"]["-1"]  # (the end of the reading)
            if 1_000_000 in marks and n > 1_000_000:
                where = ", ".join(f"{k / 1e6:g}M {v:.1f}" for k, v in sorted(marks.items()))
                read = (marks[n] - marks[1_000_000]) / (n / 1e6 - 1)
                whole = (r["peak_mb"] - marks[1_000_000]) / (n / 1e6 - 1)
                print(
                    f"\r  ({fmt}, {procs} process(es): peak while reading at {where} MB; "
                    f"{r['peak_mb']:.1f} MB with the report written: per million exchanges from 1M, "
                    f"{read:.1f} MB while reading, {whole:.1f} MB to the peak with the report)"
                )
            print(
                f"\r| {n:,} | {fmt} | {procs} | {label} | {r['peak_mb']:.1f} | {r['wall']:.1f} | "
                f"{r['cpu']:.1f} ({r['cpu_worker']:.1f}) | {r['spill_s']:.2f} | {r['spilled']:,} |",
                flush=True,
            )
    if sizes:
        print(f"build measured: {build}")
    if len(sizes) >= 2:
        low, high = min(sizes), max(sizes)
        print(f"\nslope of the peak per million exchanges, {low:,} -> {high:,} (target < 20 MB):")
        for (fmt, procs, label), by_size in peaks.items():
            if low in by_size and high in by_size:
                slope = (by_size[high] - by_size[low]) / ((high - low) / 1e6)
                print(f"  {fmt:6} {procs} process(es), spill {label}: {slope:6.1f} MB per million")
    for n, pair in cost.items():
        if "on" in pair and "off" in pair:
            on, off = pair["on"], pair["off"]
            print(
                f"spilling at {n:,}: wall {on['wall']:.1f} s vs {off['wall']:.1f} s all in RAM "
                f"({on['wall'] / off['wall']:.2f}x), CPU {on['cpu']:.1f} s vs {off['cpu']:.1f} s "
                f"({on['cpu'] / off['cpu']:.2f}x); {on['spill_s']:.2f} s inside the spill; "
                f"peak {on['peak_mb']:.0f} MB vs {off['peak_mb']:.0f} MB"
            )
    for target in (int(s) for s in args.live.split(",") if s):
        print(f"\r  live {target:,}   ", end="", file=sys.stderr, flush=True)
        r = _piped([args.python, __file__, "--live-child"], ["--generate-live", str(target)])
        print(
            f"\rlive entities {r['live']:,}: {r['bytes_per_live']:.0f} bytes each (target < 1024; "
            f"{r['packed']:,} resting, packed); {r['wall']:.0f} s wall, {r['cpu']:.0f} s CPU (tracemalloc on)"
        )


if __name__ == "__main__":
    main()
