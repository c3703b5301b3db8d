"""The stepping cost per exchange, apart from the stages before it; this checkout against a revision.

    python benchmarks/bench_stepper.py --exchanges 100000 --base main

Generates a log with fsm.generate, then in a fresh child process per run:

- front: type each record (``build_exchange``), route it and check its schemas, once, outside the clock
  of the stepping figure (their own cost is printed beside it);
- step: a new ``Stepper`` steps every prepared exchange (``clock`` then ``step``), as the validator does.

``--count`` also counts, in the first round, the Python bytecodes and Python function calls per exchange
(:func:`sys.settrace` with opcode events, over a second stepper stepping the same exchanges): slow, but
the same figure on any machine, however busy.

``--collector validator`` steps inside :func:`fsm._collector.fewer_collections`, as ``Validator.feed_file``
does (the cycle collector every 50,000 new objects); the default keeps Python's (every 700), where a
full collection over the prepared exchanges lands now and then, and its cost moves with where it lands.

Each figure is the run with the least CPU time (user + system of the process) of ``--repeat`` runs, in
microseconds per exchange, CPU time first and wall time in brackets (on a shared machine CPU time is the
one to compare: wall time carries other processes' turns). ``--base REV`` measures the same figures for
the sources of git revision ``REV`` (exported to a temporary directory, put first on ``PYTHONPATH``) in
the same run, the two alternating, so both are measured under the same conditions; the ratio is each
side's CPU figure over the base's. ``--python EXE`` adds a side: the install of another environment
(the compiled build, say: see docs/performance.md), run by that interpreter in turn with the others.
The Stepper's constructor and ``clock``/``step`` are the interface measured: every side must have them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def counted(step: Any, prepared: list[Any]) -> tuple[float, float]:
    """Python bytecodes and Python function calls per exchange while ``step`` steps ``prepared``.

    Counted with :func:`sys.settrace` (opcode events): slow, but the same on any machine, busy or not.
    """
    ops = calls = 0

    def trace(frame: Any, event: str, arg: Any) -> Any:
        nonlocal ops, calls
        if event == "opcode":
            ops += 1
        elif event == "call":
            calls += 1
            frame.f_trace_opcodes = True
        return trace

    sys.settrace(trace)
    try:
        for ex, routed in prepared:
            step(ex, routed)
    finally:
        sys.settrace(None)
    return ops / len(prepared), calls / len(prepared)


def child(exchanges: int, seed: int, collector: str = "default", count: bool = False) -> None:
    """Measure in this process; print one JSON line."""
    import contextlib

    from fsm._collector import fewer_collections
    from fsm.exchange import Exchange, build_exchange
    from fsm.generate import generate
    from fsm.machines import engines_for
    from fsm.matcher import Match, Matcher, Router
    from fsm.schemacheck import SchemaChecker
    from fsm.spec import load_spec
    from fsm.stepper import Stepper

    spec = load_spec()
    records = []
    for record in generate(exchanges // 10 + 10, seed=seed, partial=False):
        records.append(record)
        if len(records) >= exchanges:
            break
    matcher, schemas = Matcher(Router(spec)), SchemaChecker(spec)
    prepared: list[tuple[Exchange, Match]] = []
    wall, cpu = time.perf_counter(), time.process_time()
    for n, record in enumerate(records):
        ex = build_exchange(record, n, "bench.jsonl", n + 1, False)
        if not isinstance(ex, Exchange):
            continue
        routed = matcher.match(ex)
        if isinstance(routed, Match):
            schemas.check(ex, routed)
            prepared.append((ex, routed))
    front = (time.perf_counter() - wall, time.process_time() - cpu)
    stepper = Stepper(spec, engines_for(spec))
    findings = 0
    collecting = fewer_collections() if collector == "validator" else contextlib.nullcontext()
    with collecting:
        wall, cpu = time.perf_counter(), time.process_time()
        for ex, routed in prepared:
            stepper.clock(ex)
            findings += len(stepper.step(ex, routed))
        step = (time.perf_counter() - wall, time.process_time() - cpu)
    n = len(prepared)
    ops = calls = None
    if count:  # (a second stepper steps the same exchanges under the tracer)
        again = Stepper(spec, engines_for(spec))
        ops, calls = counted(lambda ex, routed: (again.clock(ex), again.step(ex, routed)), prepared)
    print(
        json.dumps(
            {
                "exchanges": n,
                "findings": findings,
                "front_us": front[0] / n * 1e6,
                "front_cpu_us": front[1] / n * 1e6,
                "step_us": step[0] / n * 1e6,
                "step_cpu_us": step[1] / n * 1e6,
                "bytecodes": ops,
                "calls": calls,
                "stepper": sys.modules["fsm.stepper"].__file__,
            }
        )
    )


def export(rev: str, into: Path) -> Path:
    """The sources of git revision ``rev`` (fsm/ and schemas/), written under ``into``."""
    root = HERE.parent
    archive = into / "src.tar"
    with archive.open("wb") as fh:
        subprocess.run(["git", "-C", str(root), "archive", rev, "fsm", "schemas"], stdout=fh, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "src", filter="data")
    return into / "src"


def run(
    pythonpath: str | None,
    exchanges: int,
    seed: int,
    collector: str = "default",
    count: bool = False,
    python: str = sys.executable,
) -> dict[str, Any]:
    """One measurement in a fresh child process (of ``python``, with ``pythonpath`` first if given)."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    out = subprocess.run(
        [python, __file__, "--child", str(exchanges), str(seed), "--collector", collector]
        + (["--count"] if count else []),
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=tempfile.gettempdir(),  # (not the checkout: the exported sources must win)
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Parse arguments, measure, print a table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exchanges", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--base", default=None, help="a git revision to measure beside this checkout")
    ap.add_argument(
        "--collector",
        choices=("default", "validator"),
        default="default",
        help="Python's collector settings, or the validator's while it steps (see above)",
    )
    ap.add_argument(
        "--count",
        action="store_true",
        help="also count Python bytecodes and calls per exchange (sys.settrace, in the first round)",
    )
    ap.add_argument(
        "--python",
        default=None,
        metavar="EXE",
        help="also measure the install of another environment's interpreter (e.g. the compiled build)",
    )
    ap.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.collector, args.count)
        return
    with tempfile.TemporaryDirectory() as tmp:
        sides: dict[str, tuple[str | None, str]] = {"this checkout": (str(HERE.parent), sys.executable)}
        if args.base:
            sides = {f"base {args.base}": (str(export(args.base, Path(tmp))), sys.executable), **sides}
        if args.python:
            sides[f"install of {args.python}"] = (None, args.python)
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in sides}
        for n in range(args.repeat):
            for name, (path, python) in sides.items():
                print(f"\r  round {n + 1}/{args.repeat}: {name}    ", end="", file=sys.stderr, flush=True)
                results[name].append(
                    run(path, args.exchanges, args.seed, args.collector, args.count and n == 0, python)
                )
        print(file=sys.stderr)
    print(
        f"# stepper benchmark  python {sys.version.split()[0]}  {args.exchanges:,} generated exchanges"
        f"  collector: {args.collector}"
    )
    print("| side | exchanges | findings | front µs CPU (wall) | step µs CPU (wall) | ratio | CPU runs |")
    print("|:-----|----------:|---------:|--------------------:|-------------------:|------:|:---------|")
    first = min(next(iter(results.values())), key=lambda r: r["step_cpu_us"])["step_cpu_us"]
    for name, runs in results.items():
        best = min(runs, key=lambda r: r["step_cpu_us"])
        spread = ", ".join(f"{r['step_cpu_us']:.2f}" for r in runs)
        front = min(runs, key=lambda r: r["front_cpu_us"])
        print(
            f"| {name} | {best['exchanges']:,} | {best['findings']} | "
            f"{front['front_cpu_us']:.2f} ({front['front_us']:.2f}) | "
            f"{best['step_cpu_us']:.2f} ({best['step_us']:.2f}) | "
            f"{best['step_cpu_us'] / first:.2f} | {spread} |"
        )
    if args.count:
        print("\n| side | Python bytecodes per exchange | Python calls per exchange |")
        print("|:-----|-----------------------------:|--------------------------:|")
        for name, runs in results.items():
            print(f"| {name} | {runs[0]['bytecodes']:,.0f} | {runs[0]['calls']:.1f} |")
    verdicts = {(r["exchanges"], r["findings"]) for runs in results.values() for r in runs}
    if len(verdicts) != 1:
        sys.exit(f"the sides disagree on the findings: {sorted(verdicts)}")


if __name__ == "__main__":
    main()
